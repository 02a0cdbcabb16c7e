/**
 * Project recovery on a real three-envoy fleet, two puddles: Dan (envoy-a
 * and envoy-b) founds a project and invites Ann (envoy-c).
 *
 * The multi-puddle ceremony: Dan rotates his key on envoy-b, where Ann's
 * invitation was not issued (envoy-b adopted the project with a bootstrap
 * token of its own), so the rotation's seal does not hold her chain: her
 * next push is refused, naming `rejoin`. Dan re-invites, Ann
 * rejoins and pushes, and all three envoys converge.
 *
 * Then Dan re-founds the project: a new id under his current key with
 * every ref, the old id tombstoned on every envoy (git there refused,
 * naming the successor), his other envoy serving the new project with no
 * manual step, and `project push` re-pointing his `swarm` remote.
 */

import assert from "node:assert/strict";
import type { Envoy } from "../scripts/fleet.ts";
import { VIGO, vigo, withGitback } from "./support/cli.ts";
import {
  foundProject,
  initAndUnlockPuddle,
  inviteAndJoin,
  pairPuddle,
  puddleKey,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { converged as convergedOn, refListing } from "./support/converge.ts";
import { gitIn } from "./support/git.ts";
import { waitForPath, waitUntil } from "./support/wait.ts";
import { runCommand } from "../src/platform/process.ts";
import { parsePublicKey } from "../src/crypto/ed25519.ts";
import { projectId as computeProjectId } from "../src/gitback/project_id.ts";

const DAN = "dan's passphrase";
const ANN = "ann's passphrase";

/** An envoy's refs of a project, without the agent's own lost tips. */
const refsOn = refListing(undefined, false);
const converged = (origin: Envoy, replicas: Envoy[], projectId: string) =>
  convergedOn(origin, replicas, projectId, refsOn);

fleetTest(
  "project recovery: re-invite-all and rejoin after a founder's rotation, then re-found with every ref and the old id tombstoned everywhere",
  { prefix: "vigo-recovery-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    Deno.mkdirSync(`${dir}/tools`);
    const withGit = withGitback(`${dir}/tools`);
    const projectId = await foundProject(a, dir, "team", DAN);
    await pairPuddle(a, b, DAN);
    await waitForPath(`${b.home}/.vigo-gitback/${projectId}/tokens.json`);
    await initAndUnlockPuddle(c, ANN);
    const annKey = await inviteAndJoin(a, c, "team", projectId, dir);

    const work = `${dir}/team/work`;
    const dan = gitIn(withGit(a.env), work);
    const annClone = `${dir}/ann-team`;
    await gitIn(withGit(c.env), dir)(
      "clone",
      "--quiet",
      `gitback://${projectId}/team`,
      annClone,
    );
    const ann = gitIn(withGit(c.env), annClone);
    const annGit = (...args: string[]) =>
      runCommand("git", {
        args,
        env: withGit(c.env),
        clearEnv: true,
        cwd: annClone,
      });
    /**
     * Ann pulls, commits and pushes; returns the first git result that
     * failed, else the push's, without failing the test.
     */
    const annPushes = async (message: string) => {
      const pulled = await annGit(
        "pull",
        "--quiet",
        "--rebase",
        "origin",
        "main",
      );
      if (pulled.code !== 0) return pulled;
      await ann("commit", "--quiet", "--allow-empty", "-m", message);
      return await annGit("push", "--quiet", "origin", "main");
    };

    await t.step("Ann pushes; all three envoys converge", async () => {
      const pushed = await annPushes("ann's first");
      assert.equal(pushed.code, 0, pushed.stderr);
      await converged(c, [a, b], projectId);
    });

    await t.step(
      "Dan rotates on envoy-b; Ann's next push is refused, naming rejoin",
      async () => {
        const rotated = await vigo(
          b.env,
          ["swarm", "puddle", "rekey-pair"],
          `${DAN}\n`,
        );
        assert.equal(rotated.code, 0, rotated.stderr);
        const code = /rekey code: (\d{4}-\d{4})/.exec(rotated.stdout)![1];
        const rekey = await vigo(
          a.env,
          ["swarm", "puddle", "rekey", "--from", b.name],
          `${code}\n${DAN}\n`,
        );
        assert.equal(rekey.code, 0, rekey.stderr);
        const unlock = await vigo(
          a.env,
          ["swarm", "puddle", "unlock"],
          `${DAN}\n`,
        );
        assert.equal(unlock.code, 0, unlock.stderr);
        // Dan pushes under the new key; envoy-c learns the rotation.
        await dan("pull", "--quiet", "--rebase", "swarm", "main");
        await dan("commit", "--quiet", "--allow-empty", "-m", "dan, rotated");
        await dan("push", "--quiet", "swarm", "main");
        await converged(a, [b], projectId);
        await waitUntil("envoy-c to refuse Ann's unsealed token", async () => {
          const refused = await annPushes("ann, before rejoining");
          if (refused.code === 0) return false;
          assert.match(refused.stderr, /did not seal it/);
          assert.match(refused.stderr, /project rejoin/);
          return true;
        });
      },
    );

    await t.step(
      "Dan re-invites, Ann rejoins and pushes; all three converge",
      async () => {
        const reinvite = await runCommand(VIGO, {
          args: ["swarm", "gitback", "project", "re-invite-all"],
          env: a.env,
          clearEnv: true,
        });
        assert.equal(reinvite.code, 0, reinvite.stderr);
        assert.match(
          reinvite.stderr,
          new RegExp(`re-invite for project 'team' → ${annKey}`),
        );
        assert.match(reinvite.stderr, /✓ 1 re-invite invitation\(s\)/);
        const invitation = `${dir}/re-invite.json`;
        Deno.writeTextFileSync(invitation, reinvite.stdout);
        const rejoin = await vigo(c.env, [
          "swarm",
          "gitback",
          "project",
          "rejoin",
          "team",
          "--invitation",
          invitation,
        ]);
        assert.equal(rejoin.code, 0, rejoin.stderr);
        assert.match(rejoin.stdout, /Re-joined project team/);
        assert.match(rejoin.stdout, /Delegations: 1 hop\(s\)/);
        const pushed = await annPushes("ann, rejoined");
        assert.equal(pushed.code, 0, pushed.stderr);
        await converged(c, [a, b], projectId);
      },
    );

    let newId = "";
    await t.step(
      "Dan re-founds: a new id with every ref, the old one tombstoned on every envoy",
      async () => {
        await dan("pull", "--quiet", "--rebase", "swarm", "main");
        await dan("tag", "-a", "-m", "release", "v1");
        await dan("push", "--quiet", "swarm", "refs/tags/v1");
        const old = await converged(a, [b, c], projectId);
        const refound = await runCommand(VIGO, {
          args: [
            "swarm",
            "gitback",
            "project",
            "re-found",
            "team",
            "--force",
            "--confirm",
            "team",
          ],
          env: withGit(a.env),
          clearEnv: true,
          cwd: dir,
        });
        assert.equal(refound.code, 0, refound.stderr);
        newId = /Re-founded team as ([0-9a-f]{64})/.exec(refound.stdout)![1];
        assert.equal(
          newId,
          await computeProjectId(parsePublicKey(await puddleKey(a)), "team"),
        );
        assert.equal(await refsOn(a, newId), old);
        // Dan's other envoy serves the new project without a manual step.
        await converged(a, [b], newId);
        for (const envoy of [a, b, c]) {
          await waitUntil(
            `${envoy.name} to refuse git on the old id`,
            async () => {
              const fetched = await runCommand("git", {
                args: [
                  "ls-remote",
                  `gitback://${projectId}/team`,
                ],
                env: withGit(envoy.env),
                clearEnv: true,
                cwd: dir,
              });
              return fetched.code !== 0 &&
                fetched.stderr.includes(`re-founded as ${newId}`);
            },
          );
        }
        const status = await vigo(a.env, [
          "swarm",
          "gitback",
          "project",
          "status",
          projectId,
        ]);
        assert.match(status.stdout, /TOMBSTONED: .*re-founded as gitback:/);
        // Dan's other envoy knows it from the agent alone: no invitation.
        const invite = await vigo(b.env, [
          "swarm",
          "gitback",
          "project",
          "invite",
          projectId,
          "--puddle",
          annKey,
          "--role",
          "member",
        ]);
        assert.equal(invite.code, 1, invite.stdout);
        assert.match(
          invite.stderr,
          new RegExp(`is tombstoned \\(re-founded as ${newId}\\)`),
        );
      },
    );

    await t.step(
      "project push re-points Dan's swarm remote to the new project",
      async () => {
        await dan("commit", "--quiet", "--allow-empty", "-m", "on the new id");
        const pushed = await runCommand(VIGO, {
          args: ["swarm", "gitback", "project", "push"],
          env: withGit(a.env),
          clearEnv: true,
          cwd: work,
        });
        assert.equal(pushed.code, 0, pushed.stderr);
        assert.match(
          pushed.stdout,
          /repointed → gitback:\/\/[0-9a-f]{64}\/team/,
        );
        assert.equal(
          await dan("remote", "get-url", "swarm"),
          `gitback://${newId}/team`,
        );
        await converged(a, [b], newId);
      },
    );
  },
);
