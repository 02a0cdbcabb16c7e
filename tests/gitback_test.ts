/**
 * Gitback end to end on one envoy: real git through git-remote-gitback and
 * the agent's socket, three real Unix users, token chains and revocation.
 */

import assert from "node:assert/strict";
import {
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
  stopAgent,
} from "../scripts/fleet.ts";
import { VIGO, vigo } from "./support/cli.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  runAs,
  type TestUser,
  unlockAs,
  type UserSession,
} from "./support/unix_users.ts";
import { waitForLine, waitForPath, waitUntil } from "./support/wait.ts";
import { writePolicies } from "../src/envoy/policy.ts";
import { exists } from "../src/platform/fs.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const PASS = "gitback passphrase";

function sh(cmd: string[], cwd: string, env: Record<string, string>) {
  const out = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  })
    .outputSync();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function mustSh(cmd: string[], cwd: string, env: Record<string, string>) {
  const result = sh(cmd, cwd, env);
  assert.equal(result.code, 0, `${cmd.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@example.invalid",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@example.invalid",
};

Deno.test({
  name: "gitback: found, invite, clone, push, fetch, refuse, revoke",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-gitback-" });
    Deno.chmodSync(dir, 0o755);
    const users: TestUser[] = [];
    const sessions: UserSession[] = [];
    let fleet: Fleet | undefined;
    try {
      // The agent acts only on the users its agent.yaml lists: create bob
      // and eve first, then name them.
      const bob = createUser(dir, "vgtb");
      users.push(bob);
      const eve = createUser(dir, "vgte");
      users.push(eve);
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 1,
        homes: { [bob.name]: bob.home, [eve.name]: eve.home },
      });
      const [a] = fleet.envoys;
      const paths = systemPathsUnder(a.root);
      // git finds the remote helper on PATH.
      const bin = `${dir}/bin`;
      Deno.mkdirSync(bin);
      Deno.symlinkSync(VIGO, `${bin}/git-remote-gitback`);
      Deno.chmodSync(`${dir}/fleet`, 0o755);
      for (const p of [a.root, `${a.root}/var`, `${a.root}/var/run`]) {
        Deno.chmodSync(p, 0o755);
      }
      const founderEnv = {
        ...a.env,
        ...GIT_IDENTITY,
        PATH: `${bin}:${a.env.PATH}`,
      };

      for (const u of [bob, eve]) {
        Object.assign(u.env, GIT_IDENTITY, {
          VIGO_ROOT: a.root,
          PATH: `${bin}:${u.env.PATH}`,
        });
      }
      writePolicies(paths, [
        { user: bob.name, home: bob.home, puddle: true, gitback: true },
        { user: eve.name, home: eve.home, puddle: true, gitback: false },
      ], "test");

      // The founder (the fleet's user) creates a puddle and a sample repo.
      assert.equal(
        (await vigo(a.env, ["swarm", "puddle", "init"], `${PASS}\n${PASS}\n`))
          .code,
        0,
      );
      assert.equal(
        (await vigo(a.env, ["swarm", "puddle", "unlock"], `${PASS}\n`)).code,
        0,
      );
      const work = `${dir}/sample`;
      Deno.mkdirSync(work);
      mustSh(["git", "init", "--quiet", "-b", "main"], work, founderEnv);
      Deno.writeTextFileSync(`${work}/README`, "hello swarm\n");
      mustSh(["git", "add", "README"], work, founderEnv);
      mustSh(["git", "commit", "--quiet", "-m", "first"], work, founderEnv);
      mustSh(["git", "tag", "v1"], work, founderEnv);

      let projectId = "";
      let url = "";
      await t.step(
        "project init founds the project and pushes the work tree",
        async () => {
          const result = await vigo(founderEnv, [
            "swarm",
            "gitback",
            "project",
            "init",
            "sample",
            "--repo",
            work,
          ]);
          assert.equal(result.code, 0, result.stderr);
          url = /URL: +(gitback:\/\/\S+)/.exec(result.stdout)![1];
          projectId = url.slice("gitback://".length, "gitback://".length + 64);
          assert.match(result.stdout, /Published/);
          const bare =
            `${a.root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`;
          assert.equal(Deno.statSync(bare).mode! & 0o777, 0o700);
          const refs = mustSh(
            ["git", "-C", bare, "for-each-ref", "--format=%(refname)"],
            dir,
            founderEnv,
          );
          assert.match(refs, /refs\/heads\/main/);
          assert.match(refs, /refs\/tags\/v1/);
          const state = `${a.home}/.vigo-gitback/${projectId}`;
          assert.equal(Deno.statSync(state).mode! & 0o777, 0o700);
          assert.equal(
            Deno.statSync(`${state}/tokens.json`).mode! & 0o777,
            0o600,
          );
          const list = await vigo(a.env, [
            "swarm",
            "gitback",
            "project",
            "list",
            "--json",
          ]);
          assert.equal(JSON.parse(list.stdout)[0].project_id, projectId);
        },
      );

      let bobToken = "";
      // Bob's session stays open from here until the test locks it.
      let bobSession: UserSession | undefined;
      await t.step(
        "a second user joins with an invitation, clones and pushes",
        async () => {
          assert.equal(
            (await runAs(
              bob,
              [VIGO, "swarm", "puddle", "init"],
              `${PASS}\n${PASS}\n`,
            )).code,
            0,
          );
          bobSession = await unlockAs(bob, PASS);
          sessions.push(bobSession);
          const bobKey = (await runAs(bob, [VIGO, "swarm", "puddle", "pubkey"]))
            .stdout.trim();
          const invite = await vigo(a.env, [
            "swarm",
            "gitback",
            "project",
            "invite",
            "sample",
            "--puddle",
            bobKey,
            "--role",
            "member",
          ]);
          assert.equal(invite.code, 0, invite.stderr);
          bobToken = /token ([0-9a-f]{64})/.exec(invite.stderr)![1];
          const invitation = `${bob.home}/invite.json`;
          Deno.writeTextFileSync(invitation, invite.stdout);
          Deno.chownSync(invitation, bob.uid, bob.uid);

          const eveInit = await runAs(
            eve,
            [VIGO, "swarm", "puddle", "init"],
            `${PASS}\n${PASS}\n`,
          );
          assert.equal(eveInit.code, 0, eveInit.stderr);

          const join = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "join",
            projectId,
            "--invitation",
            invitation,
          ]);
          assert.equal(join.code, 0, join.stderr);
          const clone = await runAs(bob, [
            "git",
            "clone",
            "--quiet",
            url,
            `${bob.home}/sample`,
          ]);
          assert.equal(clone.code, 0, clone.stderr);
          assert.equal(
            Deno.readTextFileSync(`${bob.home}/sample/README`),
            "hello swarm\n",
          );
          Deno.writeTextFileSync(`${bob.home}/sample/BOB`, "from bob\n");
          Deno.chownSync(`${bob.home}/sample/BOB`, bob.uid, bob.uid);
          for (
            const cmd of [["add", "BOB"], ["commit", "--quiet", "-m", "bob"], [
              "push",
              "--quiet",
              "origin",
              "main",
            ]]
          ) {
            const r = await runAs(bob, [
              "git",
              "-C",
              `${bob.home}/sample`,
              ...cmd,
            ]);
            assert.equal(r.code, 0, `git ${cmd[0]}: ${r.stderr}`);
          }
          // The founder fetches bob's commit.
          mustSh(["git", "fetch", "--quiet", "swarm"], work, founderEnv);
          assert.match(
            mustSh(
              ["git", "log", "--format=%s", "swarm/main"],
              work,
              founderEnv,
            ),
            /^bob$/m,
          );
        },
      );

      await t.step(
        "wrong invitations are refused and change nothing",
        async () => {
          const invite = await vigo(a.env, [
            "swarm",
            "gitback",
            "project",
            "invite",
            "sample",
            "--puddle",
            "ed25519:" + "ab".repeat(32),
            "--role",
            "member",
          ]);
          assert.equal(invite.code, 0, invite.stderr);
          const file = `${bob.home}/other.json`;
          Deno.writeTextFileSync(file, invite.stdout);
          Deno.chownSync(file, bob.uid, bob.uid);
          const before =
            [...Deno.readDirSync(`${bob.home}/.vigo-gitback`)].length;
          const notMine = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "join",
            projectId,
            "--invitation",
            file,
          ]);
          assert.equal(notMine.code, 1);
          assert.match(notMine.stderr, /does not verify/);
          const wrongProject = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "join",
            "f".repeat(64),
            "--invitation",
            file,
          ]);
          assert.equal(wrongProject.code, 1);
          assert.match(wrongProject.stderr, /is for project/);
          Deno.writeTextFileSync(file, "{not json");
          const malformed = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "join",
            projectId,
            "--invitation",
            file,
          ]);
          assert.equal(malformed.code, 1);
          assert.match(malformed.stderr, /not valid JSON/);
          assert.equal(
            [...Deno.readDirSync(`${bob.home}/.vigo-gitback`)].length,
            before,
          );
        },
      );

      await t.step(
        "a user without the usercrate flag or a token is refused",
        async () => {
          const clone = (dest: string) =>
            runAs(eve, ["git", "clone", "--quiet", url, `${eve.home}/${dest}`]);
          // The CLI refuses gitback verbs without the usercrate flag.
          const gated = await runAs(eve, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "list",
          ]);
          assert.equal(gated.code, 1);
          assert.match(gated.stderr, /gitback is not enabled for user vgte/);
          // Eve's session must still answer at the impostor clone below.
          sessions.push(await unlockAs(eve, PASS));
          // No token at all.
          const noToken = await clone("sample0");
          assert.notEqual(noToken.code, 0);
          assert.match(noToken.stderr, /you hold no token for project/);
          // Eve gets hold of bob's chain.
          const stolen = `${eve.home}/.vigo-gitback/${projectId}`;
          Deno.mkdirSync(stolen, { recursive: true });
          Deno.copyFileSync(
            `${bob.home}/.vigo-gitback/${projectId}/tokens.json`,
            `${stolen}/tokens.json`,
          );
          for (
            const p of [
              `${eve.home}/.vigo-gitback`,
              stolen,
              `${stolen}/tokens.json`,
            ]
          ) {
            Deno.chownSync(p, eve.uid, eve.uid);
          }
          // The agent itself refuses a user without the flag.
          const flagOff = await clone("sample1");
          assert.notEqual(flagOff.code, 0);
          assert.match(flagOff.stderr, /gitback is not enabled for user vgte/);
          writePolicies(paths, [{
            user: eve.name,
            home: eve.home,
            puddle: true,
            gitback: true,
          }], "test");
          // With the flag, holding someone else's chain is still not enough:
          // the token's key must sign the agent's challenge.
          const impostor = await clone("sample2");
          assert.notEqual(impostor.code, 0);
          assert.match(impostor.stderr, /not signed by the token's subject/);
          await waitForLine(
            a.log,
            new RegExp(`WARN git socket signature failure user=${eve.name}`),
          );
        },
      );

      await t.step("a revoked member is refused after the sweep", async () => {
        const revoke = await vigo(a.env, [
          "swarm",
          "gitback",
          "project",
          "revoke",
          "sample",
          "--token-id",
          bobToken,
          "--reason",
          "test",
        ]);
        assert.equal(revoke.code, 0, revoke.stderr);
        await waitForPath(
          `${a.root}/var/lib/vigo/swarm/gitback/envelopes/${projectId}/revokes/${bobToken}.json`,
        );
        const fetch = await runAs(bob, [
          "git",
          "-C",
          `${bob.home}/sample`,
          "fetch",
          "origin",
        ]);
        assert.notEqual(fetch.code, 0);
        assert.match(fetch.stderr, /revoked/);
        // The founder is unaffected.
        mustSh(["git", "fetch", "--quiet", "swarm"], work, founderEnv);
      });

      await t.step(
        "status shows the envoy-wide view through the agent",
        async () => {
          const status = await vigo(a.env, ["swarm", "gitback", "status"]);
          assert.equal(status.code, 0, status.stderr);
          assert.match(
            status.stdout,
            /projects: +1 \(1 with a local bare repo\)/,
          );
          assert.match(status.stdout, /sample +swarm-wide +\d+ ref\(s\)/);
          assert.match(status.stdout, /1 revoke\(s\)/);
          assert.match(status.stdout, /socket present/);
          assert.doesNotMatch(status.stdout, /partial data/);
        },
      );

      await t.step(
        "without the agent, status says so and marks its data partial",
        async () => {
          await stopAgent(fleet!, a);
          const status = await vigo(a.env, ["swarm", "gitback", "status"]);
          assert.equal(status.code, 0, status.stderr);
          assert.match(status.stdout, /socket absent/);
          assert.match(status.stdout, /partial data:/);
          await startAgent(fleet!, a);
        },
      );

      await t.step("project push re-publishes the work tree", async () => {
        mustSh(
          ["git", "merge", "--quiet", "--ff-only", "swarm/main"],
          work,
          founderEnv,
        );
        Deno.writeTextFileSync(`${work}/CHANGES`, "more\n");
        mustSh(["git", "add", "CHANGES"], work, founderEnv);
        mustSh(["git", "commit", "--quiet", "-m", "more"], work, founderEnv);
        const push = await vigo(founderEnv, [
          "swarm",
          "gitback",
          "project",
          "push",
          "sample",
          "--repo",
          work,
        ]);
        assert.equal(push.code, 0, push.stderr);
        assert.match(push.stdout, /Pushed/);
        const bare =
          `${a.root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`;
        assert.match(
          mustSh(
            ["git", "-C", bare, "log", "--format=%s", "main"],
            dir,
            founderEnv,
          ),
          /^more$/m,
        );
      });

      await t.step(
        "leave queues a signed LEAVE that the sweep stores",
        async () => {
          // A fresh session: the one from the join step is locked first.
          const locked = await bobSession!.lock();
          assert.equal(locked.code, 0, locked.stderr);
          bobSession = await unlockAs(bob, PASS);
          sessions.push(bobSession);
          const leave = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "leave",
            projectId,
            "--yes",
          ]);
          assert.equal(leave.code, 0, leave.stderr);
          const leaves =
            `${a.root}/var/lib/vigo/swarm/gitback/envelopes/${projectId}/leaves`;
          const stored = () => {
            try {
              return [...Deno.readDirSync(leaves)].map((e) => e.name);
            } catch {
              return []; // Not swept yet.
            }
          };
          await waitUntil(
            "the sweep to store the LEAVE",
            () => stored().length > 0,
          );
          assert.equal(stored().length, 1);
          // The sweep removes the emptied project directory.
          await waitUntil(
            "the sweep to remove bob's left project",
            () => !exists(`${bob.home}/.vigo-gitback/${projectId}`),
          );
          const list = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "list",
            "--json",
          ]);
          assert.deepEqual(JSON.parse(list.stdout), []);
        },
      );

      await t.step(
        "gc-orphans lists, then removes, bare repos nobody holds",
        async () => {
          const orphan = `${a.root}/var/lib/vigo/swarm/gitback/projects/${
            "e".repeat(64)
          }.git`;
          mustSh(["git", "init", "--quiet", "--bare", orphan], dir, founderEnv);
          const dry = await vigo(a.env, ["swarm", "gitback", "gc-orphans"]);
          assert.equal(dry.code, 0, dry.stderr);
          assert.match(dry.stdout, /1 orphan bare repo/);
          assert.match(dry.stdout, /dry-run — nothing deleted/);
          Deno.statSync(orphan);
          const wet = await vigo(a.env, [
            "swarm",
            "gitback",
            "gc-orphans",
            "--yes",
          ]);
          assert.equal(wet.code, 0, wet.stderr);
          assert.throws(() => Deno.statSync(orphan));
          // The project the founder holds is untouched.
          Deno.statSync(
            `${a.root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`,
          );
          const asUser = await runAs(bob, [
            VIGO,
            "swarm",
            "gitback",
            "gc-orphans",
          ]);
          assert.equal(asUser.code, 1);
          assert.match(asUser.stderr, /must run as root/);
        },
      );

      await t.step(
        "purge needs --yes, then wipes the local state but the record of what it dropped",
        async () => {
          const dry = await vigo(a.env, ["swarm", "gitback", "purge"]);
          assert.equal(dry.code, 0);
          assert.match(dry.stdout, /would remove/);
          Deno.statSync(`${a.home}/.vigo-gitback`);
          const wet = await vigo(a.env, ["swarm", "gitback", "purge", "--yes"]);
          assert.equal(wet.code, 0, wet.stderr);
          // Only left.json stays (and its lock), naming the purged project
          // so that no adoption brings it back here.
          assert.deepEqual(
            [...Deno.readDirSync(`${a.home}/.vigo-gitback`)].map((e) => e.name)
              .sort(),
            [".left.lock", "left.json"],
          );
          assert.deepEqual(
            Object.keys(
              JSON.parse(
                Deno.readTextFileSync(`${a.home}/.vigo-gitback/left.json`),
              ).projects,
            ),
            [projectId],
          );
          assert.throws(() =>
            Deno.statSync(`${a.root}/var/lib/vigo/swarm/gitback/projects`)
          );
          const again = await vigo(a.env, ["swarm", "gitback", "purge"]);
          assert.match(again.stdout, /nothing to remove/);
        },
      );
    } finally {
      for (const session of sessions) await session.lock().catch(() => {});
      for (const user of users) deleteUser(user);
      if (fleet) await fleetDown(`${dir}/fleet`);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
