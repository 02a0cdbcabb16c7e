/**
 * Every ref state converges: after any push, each replica's `git
 * for-each-ref` equals the origin's, including pushes that need no new
 * objects (tags and branches at existing commits, deletions), and an envoy
 * that was down during such pushes converges once it is back.
 */

import assert from "node:assert/strict";
import {
  type Envoy,
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
  stopAgent,
} from "../scripts/fleet.ts";
import { withGitback } from "./support/cli.ts";
import { foundProject } from "./support/fleet_steps.ts";
import { runCommand } from "../src/platform/process.ts";
import { waitUntil } from "./support/wait.ts";

const PASS = "convergence passphrase";

/** `envoy`'s refs of the project: object, type and name, one per line. */
async function refsOn(envoy: Envoy, projectId: string): Promise<string> {
  const out = await runCommand("git", {
    args: [
      "-C",
      `${envoy.root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`,
      "for-each-ref",
      "--format=%(objectname) %(objecttype) %(refname)",
    ],
  });
  return out.code === 0 ? out.stdout : `(no repository: ${out.stderr})`;
}

/** Waits until every envoy in `replicas` lists exactly `origin`'s refs. */
async function converged(
  origin: Envoy,
  replicas: Envoy[],
  projectId: string,
): Promise<string> {
  const expected = await refsOn(origin, projectId);
  for (const replica of replicas) {
    await waitUntil(
      `${replica.name}'s refs to equal ${origin.name}'s:\n${expected}`,
      async () => await refsOn(replica, projectId) === expected,
    );
  }
  return expected;
}

Deno.test({
  name:
    "ref convergence: tags, branches at existing commits, deletions and forced updates reach every replica",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-converge-" });
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, { envoys: 3 });
      const [a, b, c] = fleet.envoys;
      const projectId = await foundProject(a, dir, "work", PASS);
      const work = `${dir}/work/work`;
      Deno.mkdirSync(`${dir}/tools`);
      const env = withGitback(`${dir}/tools`)(a.env);
      const git = async (...args: string[]) => {
        const out = await runCommand("git", {
          args,
          env,
          clearEnv: true,
          cwd: work,
        });
        assert.equal(out.code, 0, `git ${args.join(" ")}: ${out.stderr}`);
        return out.stdout.trim();
      };
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
          await stopAgent(fleet!, c);
          await git("push", "--quiet", "swarm", ":refs/tags/v2");
          await git("tag", "v3");
          await git("push", "--quiet", "swarm", "refs/tags/v3");
          await converged(a, [b], projectId);
          assert.notEqual(
            await refsOn(c, projectId),
            await refsOn(a, projectId),
          );
          await startAgent(fleet!, c);
          // No further push: the missed deliveries are retried.
          const refs = await converged(a, [c], projectId);
          assert.match(refs, /refs\/tags\/v3\n/);
          assert.doesNotMatch(refs, /refs\/tags\/v2/);
        },
      );
    } finally {
      if (fleet) await fleetDown(`${dir}/fleet`);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
