/**
 * A puddle that is a member (not the founder) of a project gets the project
 * on a freshly paired envoy without manual steps: the agent finds its chain
 * on a peer and writes it into the user's state.
 */

import assert from "node:assert/strict";
import { makeUserEnv, vigo, withGitback } from "./support/cli.ts";
import { generateSeed } from "../src/crypto/ed25519.ts";
import { projectId } from "../src/gitback/project_id.ts";
import { mintBootstrapToken } from "../src/gitback/tokens.ts";
import { runCommand } from "../src/platform/process.ts";
import { waitForLine, waitForPath } from "./support/wait.ts";
import {
  catchUpPassesAfter,
  foundProject,
  initAndUnlockPuddle,
  invite,
  inviteAndJoin,
  pairPuddle,
  puddleKey,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";

fleetTest(
  "a member's freshly paired envoy adopts the project and can clone it",
  { prefix: "vigo-member-", envoys: 3 },
  async ({ dir, fleet }) => {
    const [a, b, c] = fleet.envoys;
    const withGit = withGitback(dir);
    // Two different puddles: P1 founds on envoy-a, P2 lives on envoy-b.
    const projectId = await foundProject(a, dir, "shared", "p1");
    await initAndUnlockPuddle(b, "p2");
    const p2 = await inviteAndJoin(a, b, "shared", projectId, dir);

    // P2 pairs envoy-c. Nobody touches gitback there by hand. P2 unlocks
    // there, as after any join: that proves to envoy-c's agent that its
    // user holds P2's key, which adoption acts on.
    await pairPuddle(b, c, "p2");

    await waitForPath(`${c.home}/.vigo-gitback/${projectId}/tokens.json`);
    await waitForLine(c.log, /INFO adopted membership user=\S+ project=/);
    const status = await vigo(c.env, [
      "swarm",
      "gitback",
      "project",
      "status",
      "shared",
    ]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`leaf: +member, subject ${p2}`));

    // And P2 clones on envoy-c.
    const clone = await runCommand("git", {
      args: [
        "clone",
        "--quiet",
        `gitback://${projectId}/shared`,
        `${dir}/clone-c`,
      ],
      env: withGit(c.env),
      clearEnv: true,
      cwd: dir,
    });
    assert.equal(clone.code, 0, clone.stderr);
  },
);

Deno.test("the adoption verb refuses bad input and writes nothing", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-adopt-" });
  try {
    const { env, home } = makeUserEnv(base);
    const init = await vigo(
      env,
      ["swarm", "puddle", "init"],
      "pw-adopt\npw-adopt\n",
    );
    assert.equal(init.code, 0, init.stderr);
    // A real chain, but for somebody else's key.
    const other = seedSigner(generateSeed());
    const id = await projectId(other.publicKey, "theirs");
    const foreign = [await mintBootstrapToken(other, "theirs")];
    const adopt = (pid: string, stdin: string) =>
      vigo(env, ["swarm", "gitback", "_adopt-project", pid], stdin);

    const badId = await adopt("xyz", "{}");
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /64 hex digits/);
    const notJson = await adopt(id, "{not json");
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /^error: standard input is not JSON/m);
    const noChain = await adopt(id, "null");
    assert.notEqual(noChain.code, 0);
    const wrongKey = await adopt(
      id,
      JSON.stringify({ chain: foreign, scope: "swarm-wide" }),
    );
    assert.notEqual(wrongKey.code, 0);
    assert.match(wrongKey.stderr, /^error: /m);
    const otherProject = await adopt(
      "0".repeat(64),
      JSON.stringify({ chain: foreign, scope: "swarm-wide" }),
    );
    assert.notEqual(otherProject.code, 0);
    let entries: string[] = [];
    try {
      entries = [...Deno.readDirSync(`${home}/.vigo-gitback`)].map((e) =>
        e.name
      );
    } catch {
      // Never created: nothing written.
    }
    assert.deepEqual(entries, []);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

fleetTest(
  "an invitation nobody accepted is never adopted on the invitee's envoys",
  { prefix: "vigo-consent-", envoys: 2 },
  async ({ dir, fleet }) => {
    const [a, b] = fleet.envoys;
    // P1 founds on envoy-a; P2 is another puddle, on envoy-b, unlocked
    // there (so envoy-b's agent knows P2's key and would adopt for it).
    const id = await foundProject(a, dir, "shared", "p1");
    await initAndUnlockPuddle(b, "p2");
    // P1 invites P2; the invitation is recorded in envoy-a's issued.json,
    // but P2 never runs `join`.
    await invite(a, "shared", await puddleKey(b));
    // Envoy-b confirms the project and runs whole catch-up passes, each of
    // which asks envoy-a for chains ending at P2's key.
    await catchUpPassesAfter(b, id, 3);
    assert.throws(
      () => Deno.statSync(`${b.home}/.vigo-gitback/${id}`),
      Deno.errors.NotFound,
      "envoy-b adopted an invitation P2 never accepted",
    );
  },
);
