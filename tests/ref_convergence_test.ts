/**
 * Every ref state converges: after any push, each replica's `git
 * for-each-ref` equals the origin's, including pushes that need no new
 * objects (tags and branches at existing commits, deletions), and an envoy
 * that was down during such pushes converges once it is back.
 */

import assert from "node:assert/strict";
import { type Envoy, startAgent, stopAgent } from "../scripts/fleet.ts";
import { vigo, withGitback } from "./support/cli.ts";
import { readRefStates, roleOf } from "../src/gitback/ref_state.ts";
import { lostRefName } from "../src/gitback/ref_apply.ts";
import {
  foundProject,
  initAndUnlockPuddle,
  inviteAndJoin,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { repoOf } from "./support/envoy_files.ts";
import { waitUntil } from "./support/wait.ts";
import { gitIn } from "./support/git.ts";
import { converged as convergedOn, refListing } from "./support/converge.ts";

const PASS = "convergence passphrase";

/** `envoy`'s refs of the project: object, type and name, one per line. */
const refsOn = refListing("%(objectname) %(objecttype) %(refname)");
const converged = (origin: Envoy, replicas: Envoy[], projectId: string) =>
  convergedOn(origin, replicas, projectId, refsOn);

fleetTest(
  "ref convergence: tags, branches at existing commits, deletions and forced updates reach every replica",
  { prefix: "vigo-converge-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    const projectId = await foundProject(a, dir, "work", PASS);
    const work = `${dir}/work/work`;
    Deno.mkdirSync(`${dir}/tools`);
    const git = gitIn(withGitback(`${dir}/tools`)(a.env), work);
    const commit = async (text: string) => {
      await git("commit", "--quiet", "--allow-empty", "-m", text);
      return await git("rev-parse", "HEAD");
    };
    await converged(a, [b, c], projectId);

    await t.step("a lightweight tag on an existing commit", async () => {
      await git("tag", "v1");
      await git("push", "--quiet", "swarm", "refs/tags/v1");
      const refs = await converged(a, [b, c], projectId);
      assert.match(refs, / commit refs\/tags\/v1\n/);
    });

    await t.step("an annotated tag on an existing commit", async () => {
      await git("tag", "-a", "-m", "release two", "v2");
      await git("push", "--quiet", "swarm", "refs/tags/v2");
      const refs = await converged(a, [b, c], projectId);
      assert.match(refs, / tag refs\/tags\/v2\n/);
    });

    await t.step("a new branch at an existing commit", async () => {
      await git("push", "--quiet", "swarm", "main:refs/heads/topic");
      const refs = await converged(a, [b, c], projectId);
      assert.match(refs, / refs\/heads\/topic\n/);
    });

    await t.step("branch and tag deletion", async () => {
      await git("push", "--quiet", "swarm", ":refs/heads/topic");
      await git("push", "--quiet", "swarm", ":refs/tags/v1");
      const refs = await converged(a, [b, c], projectId);
      assert.doesNotMatch(refs, /refs\/heads\/topic|refs\/tags\/v1/);
    });

    await t.step("a forced update by an admin", async () => {
      const base = await git("rev-parse", "HEAD");
      await commit("to be dropped");
      await git("push", "--quiet", "swarm", "main");
      await converged(a, [b, c], projectId);
      await git("reset", "--quiet", "--hard", base);
      const replacement = await commit("replacement");
      await git("push", "--quiet", "--force", "swarm", "main");
      const refs = await converged(a, [b, c], projectId);
      assert.match(refs, new RegExp(`${replacement} commit refs/heads/main`));
      // An intended force-update drops the old tip: nothing kept as lost.
      assert.doesNotMatch(refs, /refs\/gitback\//);
    });

    await t.step(
      "an envoy down during a deletion and a tag push converges once back",
      async () => {
        await stopAgent(fleet, c);
        await git("push", "--quiet", "swarm", ":refs/tags/v2");
        await git("tag", "v3");
        await git("push", "--quiet", "swarm", "refs/tags/v3");
        await converged(a, [b], projectId);
        assert.notEqual(
          await refsOn(c, projectId),
          await refsOn(a, projectId),
        );
        await startAgent(fleet, c);
        // No further push: the missed deliveries are retried.
        const refs = await converged(a, [c], projectId);
        assert.match(refs, /refs\/tags\/v3\n/);
        assert.doesNotMatch(refs, /refs\/tags\/v2/);
      },
    );
  },
);

/**
 * Waits until all `envoys` list the same refs, and those match `shape`;
 * returns them. For states no single envoy is the source of.
 */
async function agreeing(
  envoys: Envoy[],
  projectId: string,
  shape: RegExp,
): Promise<string> {
  let seen: string[] = [];
  try {
    await waitUntil(`${envoys.map((e) => e.name)} to agree`, async () => {
      seen = await Promise.all(envoys.map((e) => refsOn(e, projectId)));
      return seen.every((refs) => refs === seen[0]) && shape.test(seen[0]);
    });
  } catch (error) {
    throw new Error(
      `${(error as Error).message}; they have:\n${seen.join("--\n")}`,
    );
  }
  return seen[0];
}

fleetTest(
  "ref convergence: conflicting pushes on two envoys converge by one rule and the losing tip is kept and shown",
  { prefix: "vigo-conflict-", envoys: 3 },
  async ({ dir, fleet }) => {
    const [a, b, c] = fleet.envoys;
    // P1 founds on envoy-a; P2, a member, works on envoy-b.
    const projectId = await foundProject(a, dir, "shared", PASS);
    const workA = `${dir}/shared/work`;
    await initAndUnlockPuddle(b, "p2");
    await inviteAndJoin(a, b, "shared", projectId, dir);
    Deno.mkdirSync(`${dir}/tools-a`);
    Deno.mkdirSync(`${dir}/tools-b`);
    const envA = withGitback(`${dir}/tools-a`)(a.env);
    const envB = withGitback(`${dir}/tools-b`)(b.env);
    const workB = `${dir}/clone-b`;
    await converged(a, [b, c], projectId);
    await gitIn(envB, dir)(
      "clone",
      "--quiet",
      `gitback://${projectId}/shared`,
      workB,
    );
    const gitA = gitIn(envA, workA);
    const gitB = gitIn(envB, workB);

    // Each envoy accepts a push the other cannot see: envoy-b is down
    // during P1's push on envoy-a, envoy-a is down during P2's on envoy-b.
    await stopAgent(fleet, b);
    await gitA("commit", "--quiet", "--allow-empty", "-m", "P1's work");
    await gitA("push", "--quiet", "swarm", "main");
    const tipA = await gitA("rev-parse", "HEAD");
    await stopAgent(fleet, a);
    await startAgent(fleet, b);
    await gitB("commit", "--quiet", "--allow-empty", "-m", "P2's work");
    await gitB("push", "--quiet", "origin", "main");
    const tipB = await gitB("rev-parse", "HEAD");
    await startAgent(fleet, a);

    // Every envoy ends with the same refs: one tip on main by the rule,
    // the other kept under refs/gitback/lost/.
    const refs = await agreeing(
      [a, b, c],
      projectId,
      /refs\/gitback\/lost\//,
    );
    const main = /^([0-9a-f]{40}) commit refs\/heads\/main$/m.exec(refs)![1];
    const lost =
      /^([0-9a-f]{40}) commit (refs\/gitback\/lost\/[0-9a-f]{16}\/heads\/main)$/m
        .exec(refs);
    assert.ok(lost, `no lost tip in:\n${refs}`);
    assert.deepEqual(
      new Set([main, lost[1]]),
      new Set([tipA, tipB]),
      "both tips are kept",
    );
    // At equal seq an admin's state wins over a member's (then the
    // smaller id): P1 founded the project, P2 is a member.
    const stored = readRefStates(repoOf(a, projectId));
    const winner = stored.current!;
    const loser = stored.recent.find((s) =>
      s.body.seq === winner.body.seq && s.id !== winner.id
    );
    assert.ok(loser, "envoy-a keeps the losing state");
    assert.equal(roleOf(winner), "admin");
    assert.equal(roleOf(loser), "member");
    assert.equal(main, tipA);
    assert.equal(winner.body.refs["refs/heads/main"], main);
    assert.equal(lost[2], lostRefName(loser, "refs/heads/main"));

    // `project status` shows the kept tip to both users.
    for (const [envoy, handle] of [[a, "shared"], [b, "shared"]] as const) {
      const status = await vigo(envoy.env, [
        "swarm",
        "gitback",
        "project",
        "status",
        handle,
      ]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /lost tips: +1 /);
      assert.match(status.stdout, new RegExp(`${lost[1]}  ${lost[2]}`));
    }
    // The next push builds on the winner everywhere; the lost tip stays.
    await gitB("pull", "--quiet", "--no-rebase", "origin", "main");
    await gitB("commit", "--quiet", "--allow-empty", "-m", "after");
    await gitB("push", "--quiet", "origin", "main");
    const after = await converged(b, [a, c], projectId);
    assert.match(after, new RegExp(`${lost[1]} commit ${lost[2]}`));
  },
);
