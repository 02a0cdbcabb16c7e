/**
 * A fetch's pack goes from `git upload-pack` straight to git: the remote
 * helper hands git's pipes to the agent with a one-time ticket
 * (agent/fetch_handoff.ts), after the last handshake line and before git
 * has said anything, so nothing is in flight to lose or interleave. Many
 * fetches in a row, small and large, each get exactly the refs and objects
 * they asked for, and every one went through the hand-off.
 */

import assert from "node:assert/strict";
import { withGitback } from "./support/cli.ts";
import { foundProject } from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { runCommand } from "../src/platform/process.ts";

const PASS = "handoff passphrase";
const ROUNDS = 20;

fleetTest(
  "fetches through the hand-off get exactly what they asked for, round after round",
  { prefix: "vigo-handoff-", envoys: 1 },
  async ({ dir, fleet }) => {
    const [a] = fleet.envoys;
    const projectId = await foundProject(a, dir, "work", PASS);
    Deno.mkdirSync(`${dir}/tools`);
    const env = withGitback(`${dir}/tools`)(a.env);
    // A hand-off that raced the agent for the caller's bytes would hang
    // git: each command gets a deadline far beyond its need, so that it
    // fails instead.
    const git = async (args: string[], cwd = dir) => {
      const out = await runCommand("timeout", {
        args: ["120", "git", ...args],
        env,
        clearEnv: true,
        cwd,
      });
      assert.equal(out.code, 0, `git ${args.join(" ")}: ${out.stderr}`);
      return out.stdout;
    };
    const work = `${dir}/work/work`;
    const url = `gitback://${projectId}/work`;
    // A pack of several MiB, so that output and the caller's requests are
    // in flight at once.
    const blob = new Uint8Array(4 * 1024 * 1024);
    for (let at = 0; at < blob.length; at += 65536) {
      crypto.getRandomValues(blob.subarray(at, at + 65536));
    }
    Deno.writeFileSync(`${work}/big.bin`, blob);
    await git(["add", "big.bin"], work);
    await git(["commit", "--quiet", "-m", "big"], work);
    await git(["push", "--quiet", "swarm", "main"], work);
    const tip = (await git(["rev-parse", "HEAD"], work)).trim();

    for (let round = 0; round < ROUNDS; round++) {
      const listed = await git(["ls-remote", url]);
      assert.match(listed, new RegExp(`^${tip}\\trefs/heads/main$`, "m"));
      if (round % 5 === 0) {
        const clone = `${dir}/clone-${round}`;
        await git(["clone", "--quiet", url, clone]);
        assert.equal((await git(["rev-parse", "HEAD"], clone)).trim(), tip);
        await git(["fsck", "--full", "--strict"], clone);
        assert.deepEqual(Deno.readFileSync(`${clone}/big.bin`), blob);
        Deno.removeSync(clone, { recursive: true });
      }
    }
    // Every one of them went through the hand-off, none through a relay.
    const handed = Deno.readTextFileSync(a.log).split("\n").filter((line) =>
      line.includes("fetch handed off") && line.includes(projectId)
    );
    assert.equal(handed.length, ROUNDS + ROUNDS / 5);
  },
);
