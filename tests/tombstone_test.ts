/**
 * Tombstones on a real three-envoy fleet, one puddle: the founder signs a
 * tombstone naming the project's successor and queues it on envoy-a; the
 * sweep stores it there and gossip carries it to envoy-b and envoy-c,
 * where git through the real remote helper is refused with the successor
 * in the message, as on envoy-a, and the agent's status says so. A
 * tombstone signed by anyone but the founder (a member's key) is refused
 * by the gossip route and changes nothing; a second, different tombstone
 * of the founder's is not stored over the first.
 *
 * Before tombstones were signed statements, nothing made a project
 * tombstoned on any envoy: the queued file was ignored and every fetch
 * went on working.
 */

import assert from "node:assert/strict";
import type { Envoy } from "../scripts/fleet.ts";
import { withGitback } from "./support/cli.ts";
import { foundProject, pairPuddle, puddleKey } from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { gitbackDir, repoOf, tlsOf } from "./support/envoy_files.ts";
import { git } from "./support/git.ts";
import { waitForLine, waitForPath, waitUntil } from "./support/wait.ts";
import { unwrapSeed } from "../src/crypto/wrap.ts";
import {
  seedSigner,
  type Signer,
  signObject,
} from "../src/crypto/signed_object.ts";
import { SIGN_CONTEXTS } from "../src/crypto/signed.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { askAgentStatus } from "../src/gitback/envoy_status.ts";
import { projectId as makeProjectId } from "../src/gitback/project_id.ts";
import {
  signTombstone,
  TOMBSTONE_PENDING,
  type TombstoneWire,
} from "../src/gitback/tombstone.ts";
import { runCommand } from "../src/platform/process.ts";

const PASS = "tombstone passphrase";
const HANDLE = "work";

/** The tombstone `envoy` stores for `projectId`, or null. */
function storedOn(envoy: Envoy, projectId: string): TombstoneWire | null {
  try {
    return JSON.parse(
      Deno.readTextFileSync(`${gitbackDir(envoy)}/tombstones/${projectId}`),
    );
  } catch {
    return null;
  }
}

/** What `from` is answered when it posts `wire` to `to` as a tombstone. */
async function post(
  from: Envoy,
  to: Envoy,
  projectId: string,
  wire: unknown,
): Promise<{ status: number; text: string }> {
  const response = await swarmRequest(
    tlsOf(from),
    `https://${to.address}:1531/swarm/gitback/envelopes/${projectId}/tombstones`,
    {
      method: "POST",
      body: JSON.stringify(wire),
      headers: { "content-type": "application/json" },
      timeoutMs: 10_000,
    },
  );
  return {
    status: response.status,
    text: new TextDecoder().decode(response.body),
  };
}

/** `envoy`'s envelope digest of `projectId`. */
async function digestOn(envoy: Envoy, projectId: string): Promise<string> {
  const response = await swarmRequest(
    tlsOf(envoy),
    `https://${envoy.address}:1531/swarm/gitback/envelopes/${projectId}/digest`,
    { timeoutMs: 10_000 },
  );
  assert.equal(response.status, 200);
  return response.json<{ digest: string }>().digest;
}

fleetTest(
  "the founder's tombstone travels to every envoy, which refuse git naming the successor; a member's is refused, and the first tombstone stays",
  { prefix: "vigo-tombstone-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    const projectId = await foundProject(a, dir, HANDLE, PASS);
    const founderKey = await puddleKey(a);
    await pairPuddle(a, b, PASS);
    await pairPuddle(a, c, PASS);
    for (const envoy of [b, c]) {
      await waitForPath(
        `${envoy.home}/.vigo-gitback/${projectId}/tokens.json`,
      );
      await waitForPath(repoOf(envoy, projectId));
    }

    // A clone on every envoy, through the real remote helper.
    Deno.mkdirSync(`${dir}/tools`);
    const withGit = withGitback(`${dir}/tools`);
    const cloneOf = (envoy: Envoy) => `${dir}/clone-${envoy.name}`;
    const gitOn = (envoy: Envoy, args: string[]) =>
      runCommand("git", {
        args,
        env: withGit(envoy.env),
        clearEnv: true,
        cwd: cloneOf(envoy),
      });
    for (const envoy of [a, b, c]) {
      await git(
        [
          "clone",
          "--quiet",
          `gitback://${projectId}/${HANDLE}`,
          cloneOf(envoy),
        ],
        { env: withGit(envoy.env) },
      );
    }
    const fetchWorks = async (envoy: Envoy) => {
      const out = await gitOn(envoy, ["fetch", "origin"]);
      assert.equal(out.code, 0, `${envoy.name}: ${out.stderr}`);
    };

    // The founder's seed, as only the founder could have it.
    const puddle = `${a.home}/.vigo-puddle`;
    const founder = seedSigner(
      await unwrapSeed(
        Deno.readFileSync(`${puddle}/identity.wrapped`),
        new TextEncoder().encode(PASS),
        Deno.readFileSync(`${puddle}/identity.salt`),
      ),
    );
    assert.equal(formatPublicKey(founder.publicKey), founderKey);
    const successor = await makeProjectId(
      seedSigner(generateSeed()).publicKey,
      HANDLE,
    );
    const fields = {
      projectId,
      handle: HANDLE,
      genesis: founder.publicKey,
    };
    /** A tombstone body signed by `signer`, whoever that is. */
    const forge = (signer: Signer) =>
      signObject(signer, SIGN_CONTEXTS.gitbackTombstone, {
        v: 1,
        kind: "gitback-tombstone",
        project_id: projectId,
        handle: HANDLE,
        genesis: founderKey,
        signer: formatPublicKey(signer.publicKey),
        successor,
        at: Math.floor(Date.now() / 1000),
      });

    await t.step(
      "a tombstone signed by a member's key is refused by the gossip route and changes nothing",
      async () => {
        const member = seedSigner(generateSeed());
        const before = await digestOn(b, projectId);
        for (const target of [b, c]) {
          const answer = await post(a, target, projectId, await forge(member));
          assert.equal(answer.status, 403, answer.text);
          assert.match(answer.text, /not the project's founder/);
          assert.equal(storedOn(target, projectId), null);
        }
        assert.equal(await digestOn(b, projectId), before);
        await waitForLine(b.log, /signature failure on gossiped tombstone/);
        for (const envoy of [a, b, c]) await fetchWorks(envoy);
      },
    );

    const first = await signTombstone(founder, { ...fields, successor });
    const refusal = new RegExp(
      `project ${projectId} is tombstoned \\(re-founded as ${successor}\\); use gitback://${successor}/${HANDLE}`,
    );

    await t.step(
      "the founder's tombstone, queued on envoy-a, reaches envoy-b and envoy-c, and every envoy refuses git naming the successor",
      async () => {
        const pending =
          `${a.home}/.vigo-gitback/${projectId}/${TOMBSTONE_PENDING}`;
        Deno.writeTextFileSync(pending, JSON.stringify([first]), {
          mode: 0o600,
        });
        await waitUntil(
          "envoy-a's sweep to store the tombstone and remove the queue",
          () => {
            try {
              Deno.lstatSync(pending);
              return false;
            } catch {
              return storedOn(a, projectId) !== null;
            }
          },
        );
        for (const envoy of [b, c]) {
          await waitUntil(
            `${envoy.name} to hold the tombstone`,
            () => storedOn(envoy, projectId) !== null,
          );
        }
        for (const envoy of [a, b, c]) {
          assert.deepEqual(storedOn(envoy, projectId), first, envoy.name);
          const fetch = await gitOn(envoy, ["fetch", "origin"]);
          assert.notEqual(fetch.code, 0, `${envoy.name} fetched`);
          assert.match(fetch.stderr, refusal, envoy.name);
          const status = await askAgentStatus(
            `${envoy.root}/var/run/vigo/gitback.sock`,
          );
          const project = status?.projects.find((p) =>
            p.project_id === projectId
          );
          assert.equal(project?.tombstoned, true, envoy.name);
          assert.equal(project?.successor, successor, envoy.name);
        }
        // Pushes are refused too (the git socket's other service).
        const push = await gitOn(a, ["push", "origin", "HEAD:refs/heads/late"]);
        assert.notEqual(push.code, 0, "envoy-a took a push");
        assert.match(push.stderr, refusal);
      },
    );

    await t.step(
      "a second, different tombstone of the founder's is not stored over the first",
      async () => {
        const second = await signTombstone(founder, {
          ...fields,
          successor: null,
        });
        assert.notDeepEqual(second, first);
        const answer = await post(a, b, projectId, second);
        assert.equal(answer.status, 200, answer.text);
        assert.deepEqual(JSON.parse(answer.text), { stored: false });
        await waitForLine(b.log, /tombstone conflict; the first one stays/);

        const pending =
          `${a.home}/.vigo-gitback/${projectId}/${TOMBSTONE_PENDING}`;
        Deno.writeTextFileSync(pending, JSON.stringify([second]), {
          mode: 0o600,
        });
        await waitForLine(a.log, /tombstone conflict; the first one stays/);
        // A member's forgery changes nothing now either.
        const forged = await post(
          a,
          c,
          projectId,
          await forge(seedSigner(generateSeed())),
        );
        assert.equal(forged.status, 403, forged.text);
        for (const envoy of [a, b, c]) {
          assert.deepEqual(storedOn(envoy, projectId), first, envoy.name);
          const fetch = await gitOn(envoy, ["fetch", "origin"]);
          assert.match(fetch.stderr, refusal, envoy.name);
        }
      },
    );
  },
);
