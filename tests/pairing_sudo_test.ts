/**
 * `sudo vigo swarm puddle join` for a real unprivileged user: the claim runs
 * as root (for the TLS key), the identity lands in the user's home owned by
 * the user, written by a child that runs as the user.
 */

import assert from "node:assert/strict";
import { type Fleet, fleetDown, fleetUp } from "../scripts/fleet.ts";
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
import { writePolicies } from "../src/envoy/policy.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const PASS = "sudo join passphrase";

Deno.test({
  name: "join through sudo installs the identity as the invoking user",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-sudo-" });
    Deno.chmodSync(base, 0o755);
    let fleet: Fleet | undefined;
    let user: TestUser | undefined;
    let session: UserSession | undefined;
    try {
      // Agents act only on the users agent.yaml lists: the user exists
      // first. On envoy-b its home is elsewhere (one machine plays both).
      user = createUser(base, "vgtj");
      const homeB = `${base}/${user.name}-on-b`;
      Deno.mkdirSync(homeB, { mode: 0o755 });
      Deno.chownSync(homeB, user.uid, user.uid);
      const name = user.name;
      const homeA = user.home;
      fleet = await fleetUp(`${base}/fleet`, {
        envoys: 2,
        homes: (envoy) => ({
          [name]: envoy.name === "envoy-a" ? homeA : homeB,
        }),
      });
      const [a, b] = fleet.envoys;
      for (const envoy of [a, b]) {
        writePolicies(
          systemPathsUnder(envoy.root),
          [{
            user: user.name,
            home: envoy === a ? user.home : homeB,
            puddle: true,
            gitback: false,
          }],
          "test",
        );
        for (
          const p of [envoy.root, `${envoy.root}/var`, `${envoy.root}/var/lib`]
        ) Deno.chmodSync(p, 0o755);
      }
      Deno.chmodSync(`${base}/fleet`, 0o755);
      for (const envoy of [a, b]) {
        Deno.chmodSync(`${base}/fleet/${envoy.name}`, 0o755);
      }

      const onA = { ...user.env, VIGO_ROOT: a.root };
      const init = await runAs({ ...user, env: onA }, [
        VIGO,
        "swarm",
        "puddle",
        "init",
      ], `${PASS}\n${PASS}\n`);
      assert.equal(init.code, 0, init.stderr);
      const pair = await runAs({ ...user, env: onA }, [
        VIGO,
        "swarm",
        "puddle",
        "pair",
      ]);
      assert.equal(pair.code, 0, pair.stderr);
      const code = /pairing code: (\d{4}-\d{4})/.exec(pair.stdout)![1];
      const pubkey = Deno.readTextFileSync(
        `${user.home}/.vigo-puddle/identity.pub`,
      ).trim();

      // Root on envoy-b, as sudo leaves it: SUDO_USER names the caller.
      const join = await vigo(
        {
          PATH: b.env.PATH,
          HOME: "/root",
          VIGO_ROOT: b.root,
          SUDO_USER: user.name,
          DENO_DIR: b.env.DENO_DIR,
        },
        ["swarm", "puddle", "join", "--from", "envoy-a"],
        `${code}\n${PASS}\n`,
      );
      assert.equal(join.code, 0, join.stderr);
      assert.match(join.stdout, new RegExp(`owned by ${user.name}`));
      for (
        const name of ["identity.wrapped", "identity.salt", "identity.pub"]
      ) {
        const info = Deno.statSync(`${homeB}/.vigo-puddle/${name}`);
        assert.equal(info.uid, user.uid, `${name} owned by the user`);
        assert.equal(info.mode! & 0o777, name.endsWith(".pub") ? 0o644 : 0o600);
      }
      assert.equal(Deno.statSync(`${homeB}/.vigo-puddle`).uid, user.uid);

      // The user unlocks on envoy-b without sudo and gets the same key.
      const onB = { ...user.env, HOME: homeB, VIGO_ROOT: b.root };
      session = await unlockAs({ ...user, env: onB }, PASS);
      assert.match(session.stdout, new RegExp(`pubkey: +${pubkey}`));
      const shown = await runAs({ ...user, env: onB }, [
        VIGO,
        "swarm",
        "puddle",
        "pubkey",
      ]);
      assert.equal(shown.stdout.trim(), pubkey);

      // Not root: join refuses before doing anything.
      const notRoot = await runAs({ ...user, env: onB }, [
        VIGO,
        "swarm",
        "puddle",
        "join",
        "--from",
        "envoy-a",
      ], "1\n");
      assert.equal(notRoot.code, 1);
      assert.match(notRoot.stderr, /join needs root/);
      const locked = await session.lock();
      assert.equal(locked.code, 0, locked.stderr);
    } finally {
      await session?.lock().catch(() => {});
      if (user) deleteUser(user);
      if (fleet) await fleetDown(`${base}/fleet`);
      Deno.removeSync(base, { recursive: true });
    }
  },
});
