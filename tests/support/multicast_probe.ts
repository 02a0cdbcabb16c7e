/**
 * Run inside a network namespace whose loopback carries multicast: starts
 * two announcers that know no hosts (so only multicast can carry their
 * announcements), and prints what each heard as JSON.
 *
 * @module
 */

import {
  PeerIndex,
  recordProjectMeta,
  startAnnouncer,
} from "../../src/agent/announce.ts";
import type { AgentConfig } from "../../src/envoy/config.ts";
import { announcerConfig } from "./agent_config.ts";
import type { Logger } from "../../src/platform/log.ts";
import { generateSeed } from "../../src/crypto/ed25519.ts";
import { projectId as computeProjectId } from "../../src/gitback/project_id.ts";
import { signScopeStatement } from "../../src/gitback/scope_statement.ts";
import { seedSigner } from "../../src/crypto/signed_object.ts";

const quiet: Logger = { info() {}, warn() {}, error() {} };
const base = Deno.makeTempDirSync({ prefix: "vigo-mc-" });
const port = 20_000 + Math.floor(Math.random() * 20_000);

async function envoy(
  name: string,
): Promise<{ config: AgentConfig; projectId: string }> {
  // A project founded by a fresh key, swarm-wide by its founder's word.
  const founder = seedSigner(generateSeed());
  const projectId = await computeProjectId(founder.publicKey, name);
  const statement = await signScopeStatement(founder, {
    projectId,
    handle: name,
    scope: "swarm-wide",
  });
  const root = `${base}/${name}`;
  Deno.mkdirSync(
    `${root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`,
    { recursive: true },
  );
  const config = announcerConfig({
    hostname: name,
    root,
    listen: "0.0.0.0",
    port,
    periodSeconds: 0.2,
  });
  // Held projects are announced with their recorded handle and scope.
  recordProjectMeta(config, {
    projectId,
    handle: name,
    scope: "swarm-wide",
    statement,
  });
  return { config, projectId };
}

const { config: a, projectId: heldByA } = await envoy("envoy-a");
const { config: b, projectId: heldByB } = await envoy("envoy-b");
const heardByA = new PeerIndex(10_000);
const heardByB = new PeerIndex(10_000);
// What travels is under test here, not whom to believe: every name heard
// counts as confirmed (tests/announce_trust_test.ts checks the real check).
const confirm = () => Promise.resolve();
const announcers = [
  await startAnnouncer(a, quiet, heardByA, { confirm }),
  await startAnnouncer(b, quiet, heardByB, { confirm }),
];
for (
  let i = 0;
  i < 50 && (heardByA.all().length === 0 || heardByB.all().length === 0);
  i++
) {
  await new Promise((r) => setTimeout(r, 100));
}
for (const announcer of announcers) announcer.stop();
Deno.removeSync(base, { recursive: true });
console.log(
  JSON.stringify({
    a: heardByA.all(),
    b: heardByB.all(),
    held: { a: heldByA, b: heldByB },
  }),
);
