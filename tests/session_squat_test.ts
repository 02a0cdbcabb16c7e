/**
 * Squatting the session socket. Without XDG_RUNTIME_DIR the session socket
 * once lived in `/tmp/vigo-<uid>`, which any other user can create first:
 * as their own directory, or as a symlink to their own socket directory,
 * with their own session helper listening behind it. The victim's CLI then
 * signed with the attacker's key (founding projects the attacker controls)
 * and reported the attacker's session as its own.
 *
 * Two real Unix users; the attacker runs a real session helper and plants
 * it at the victim's old fallback path. The victim's status, unlock and a
 * signing verb (`gitback project init`) must never use it: a home short
 * enough uses `~/.vigo-puddle/run`, which others cannot create; a longer
 * one falls back to `/tmp/vigo-<uid>` and is refused with a message naming
 * the directory and its owner, and a hint (a private XDG_RUNTIME_DIR) that
 * the attacker cannot block.
 */

import assert from "node:assert/strict";
import { REPO, VIGO, vigo } from "./support/cli.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  runAs,
  type TestUser,
  unlockAs,
  type UserSession,
} from "./support/unix_users.ts";
import type { CommandResult } from "../src/platform/process.ts";

if (!CAN_CREATE_USERS) {
  console.log("skipped: session squat test needs root to create Unix users");
}

const DENO = `${REPO}/node_modules/deno/deno`;
const VICTIM_PASS = "victim passphrase";
const ATTACKER_PASS = "attacker passphrase";
/** `/.vigo-puddle/run/puddle.sock`, appended to HOME for the socket path. */
const HOME_SUFFIX = "/.vigo-puddle/run/puddle.sock";

/** Asks a socket for PUBKEY with a bare Deno connection (no checks). */
const PROBE = `
try {
  const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
  await conn.write(new TextEncoder().encode('{"op":"PUBKEY"}\\n'));
  const buf = new Uint8Array(512);
  const n = await conn.read(buf);
  console.log("answered " + new TextDecoder().decode(buf.subarray(0, n ?? 0)).trim());
} catch (error) {
  console.log("refused " + (error as Error).name);
}`;

const bytes = (text: string) => new TextEncoder().encode(text).length;

/** Runs `argv` as `user` with exactly `env`. */
function as(
  user: TestUser,
  env: Record<string, string>,
  argv: string[],
  stdin = "",
): Promise<CommandResult> {
  return runAs({ ...user, env }, argv, stdin);
}

function readKey(home: string): string {
  return Deno.readTextFileSync(`${home}/.vigo-puddle/identity.pub`).trim();
}

function sentinelPid(home: string): number | null {
  try {
    return Number(
      Deno.readTextFileSync(`${home}/.vigo-puddle/session.unlocked`).trim(),
    );
  } catch {
    return null;
  }
}

/** Project names the user founded under `home` (none when no state). */
function foundedProjects(home: string): string[] {
  try {
    return [...Deno.readDirSync(`${home}/.vigo-gitback`)].map((e) => e.name)
      .filter((name) => name !== ".lock");
  } catch {
    return [];
  }
}

/** Makes `path` (and parents below `from`) as root, owned by `user`. */
function makeOwnedDir(user: TestUser, from: string, path: string): void {
  Deno.mkdirSync(path, { recursive: true, mode: 0o755 });
  let dir = path;
  while (dir.length > from.length) {
    Deno.chownSync(dir, user.uid, user.uid);
    dir = dir.slice(0, dir.lastIndexOf("/"));
  }
}

/** A HOME under `parent` whose socket path is exactly `total` bytes. */
function homeOfSocketLength(parent: string, total: number): string {
  const prefix = `${parent}/é`; // two bytes, one character
  const pad = total - HOME_SUFFIX.length - bytes(prefix);
  assert.ok(pad >= 1, `${parent} is too long for a ${total}-byte socket path`);
  const home = prefix + "h".repeat(pad);
  assert.equal(bytes(home + HOME_SUFFIX), total);
  return home;
}

Deno.test({
  name:
    "another user who squats /tmp/vigo-<uid> never gets the victim's CLI to use their helper",
  ignore: !CAN_CREATE_USERS,
  fn: async (t) => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-squat-" });
    Deno.chmodSync(base, 0o755);
    const users: TestUser[] = [];
    const sessions: UserSession[] = [];
    const extraPaths: string[] = [];
    let squat = "";
    try {
      const victim = createUser(base, "vgsv");
      users.push(victim);
      const attacker = createUser(base, "vgsa");
      users.push(attacker);
      const squatPath = `/tmp/vigo-${victim.uid}`;
      assert.throws(
        () => Deno.lstatSync(squatPath),
        Deno.errors.NotFound,
        `${squatPath} exists before the test; remove it first`,
      );
      squat = squatPath; // ours to remove from here on

      // Usercrate policy: both may use puddle and gitback.
      const vigoRoot = `${base}/root`;
      Deno.mkdirSync(vigoRoot);
      Deno.writeTextFileSync(
        `${base}/usercrate.yaml`,
        users.map((u) =>
          `- type: user\n  username: ${u.name}\n  home: ${u.home}\n  puddle: true\n  gitback: true\n`
        ).join("").replace(/^/, "resources:\n"),
      );
      const applied = await vigo(
        { PATH: Deno.env.get("PATH")!, HOME: base, VIGO_ROOT: vigoRoot },
        ["config", "apply", `${base}/usercrate.yaml`],
      );
      assert.equal(applied.code, 0, applied.stderr);

      const envOf = (
        user: TestUser,
        home: string,
        extra: Record<string, string> = {},
      ): Record<string, string> => ({
        HOME: home,
        PATH: user.env.PATH,
        DENO_DIR: user.env.DENO_DIR,
        VIGO_ROOT: vigoRoot,
        // Multibyte HOMEs below: the launcher must count bytes, not
        // characters, whatever the locale.
        LANG: "C.UTF-8",
        ...extra,
      });

      // The victim's HOMEs, without XDG_RUNTIME_DIR: one whose socket path
      // ~/.vigo-puddle/run/puddle.sock is exactly 107 bytes (the longest
      // that uses it) and one of 108 bytes in 107 characters, which falls
      // back to /tmp/vigo-<uid>.
      const edgeHome = homeOfSocketLength(`${victim.home}/e`, 107);
      const longHome = homeOfSocketLength(`${victim.home}/l`, 108);
      assert.equal((longHome + HOME_SUFFIX).length, 107);
      makeOwnedDir(victim, victim.home, edgeHome);
      makeOwnedDir(victim, victim.home, longHome);
      const edgeEnv = envOf(victim, edgeHome);
      const longEnv = envOf(victim, longHome);
      for (const env of [edgeEnv, longEnv]) {
        const init = await as(
          victim,
          env,
          [VIGO, "swarm", "puddle", "init"],
          `${VICTIM_PASS}\n${VICTIM_PASS}\n`,
        );
        assert.equal(init.code, 0, init.stderr);
      }
      const edgeKey = readKey(edgeHome);
      const longKey = readKey(longHome);

      // The attacker: a real identity and a real session helper in their
      // own runtime directory, then opened up so the victim can reach it.
      const attackerEnv = envOf(attacker, attacker.home, {
        XDG_RUNTIME_DIR: attacker.runtime,
      });
      const attackerInit = await as(
        attacker,
        attackerEnv,
        [VIGO, "swarm", "puddle", "init"],
        `${ATTACKER_PASS}\n${ATTACKER_PASS}\n`,
      );
      assert.equal(attackerInit.code, 0, attackerInit.stderr);
      sessions.push(
        await unlockAs({ ...attacker, env: attackerEnv }, ATTACKER_PASS),
      );
      const attackerKey = readKey(attacker.home);
      const attackerPid = sentinelPid(attacker.home)!;
      assert.ok(attackerPid > 0);
      const attackerDir = `${attacker.runtime}/vigo`;
      for (
        const argv of [
          ["chmod", "755", attacker.runtime, attackerDir],
          ["chmod", "666", `${attackerDir}/puddle.sock`],
        ]
      ) {
        const done = await as(attacker, attackerEnv, argv);
        assert.equal(done.code, 0, done.stderr);
      }

      /** The squat answers a bare connection from the victim: it is live. */
      const assertSquatLive = async () => {
        const probe = await as(victim, longEnv, [
          DENO,
          "eval",
          "--quiet",
          PROBE,
          `${squat}/puddle.sock`,
        ]);
        assert.match(
          probe.stdout,
          new RegExp(`^answered .*${attackerKey}`, "m"),
          `the planted helper should answer the victim: ${probe.stderr}`,
        );
      };

      /** Status, a signing verb and unlock as the victim with a long HOME. */
      const assertRefused = async (refusal: RegExp, handle: string) => {
        const status = await as(victim, longEnv, [
          VIGO,
          "swarm",
          "puddle",
          "status",
        ]);
        assert.equal(status.code, 0, status.stderr);
        assert.match(status.stdout, /^ {2}session: +locked$/m);
        assert.doesNotMatch(status.stdout, new RegExp(`pid ${attackerPid}\\b`));
        assert.match(status.stdout, /^ {2}problem: +.*/m);
        assert.match(status.stdout, refusal);

        const founded = await as(victim, longEnv, [
          VIGO,
          "swarm",
          "gitback",
          "project",
          "init",
          handle,
          "--no-push",
        ]);
        assert.equal(founded.code, 1, founded.stdout + founded.stderr);
        assert.doesNotMatch(founded.stdout, /Founded/);
        assert.doesNotMatch(founded.stdout + founded.stderr, /Founder/);
        assert.match(founded.stderr, /^error: the session directory /m);
        assert.match(founded.stderr, refusal);
        assert.match(
          founded.stderr,
          /^hint: .*`export XDG_RUNTIME_DIR=\$\(mktemp -d\)`/m,
        );
        assert.deepEqual(foundedProjects(longHome), []);

        const unlock = await as(
          victim,
          longEnv,
          [VIGO, "swarm", "puddle", "unlock"],
          `${VICTIM_PASS}\n`,
        );
        assert.equal(unlock.code, 1, unlock.stdout + unlock.stderr);
        assert.match(unlock.stderr, /^error: the session directory /m);
        assert.match(unlock.stderr, refusal);
        assert.match(unlock.stderr, /^hint: .*XDG_RUNTIME_DIR/m);
        assert.equal(sentinelPid(longHome), null, "no helper was started");
        assert.doesNotMatch(unlock.stdout, /Puddle unlocked/);
      };

      await t.step(
        "symlink form: refused, naming the link's owner",
        async () => {
          const link = await as(attacker, attackerEnv, [
            "ln",
            "-s",
            attackerDir,
            squat,
          ]);
          assert.equal(link.code, 0, link.stderr);
          await assertSquatLive();
          await assertRefused(
            new RegExp(
              `the session directory ${squat} is a symbolic link \\(to ${attackerDir}\\) owned by ${attacker.name} \\(uid ${attacker.uid}\\)`,
            ),
            "squat-link",
          );
          // Nothing of the attacker's was touched.
          assert.equal(Deno.readLinkSync(squat), attackerDir);
        },
      );

      await t.step(
        "directory form: refused, naming the directory's owner",
        async () => {
          // The attacker moves their live socket directory to the victim's
          // name; the helper keeps listening on the moved socket.
          for (
            const argv of [["rm", squat], ["mv", attackerDir, squat]]
          ) {
            const done = await as(attacker, attackerEnv, argv);
            assert.equal(done.code, 0, done.stderr);
          }
          await assertSquatLive();
          await assertRefused(
            new RegExp(
              `the session directory ${squat} belongs to ${attacker.name} \\(uid ${attacker.uid}\\), not to you \\(${victim.name}, uid ${victim.uid}\\)`,
            ),
            "squat-dir",
          );
          assert.equal(Deno.lstatSync(squat).uid, attacker.uid);
        },
      );

      await t.step(
        "a home short enough uses ~/.vigo-puddle/run, which the squat cannot reach",
        async () => {
          const before = await as(victim, edgeEnv, [
            VIGO,
            "swarm",
            "puddle",
            "status",
          ]);
          assert.match(before.stdout, /^ {2}session: +locked$/m);
          assert.doesNotMatch(before.stdout, /problem:/);

          const session = await unlockAs(
            { ...victim, env: edgeEnv },
            VICTIM_PASS,
          );
          sessions.push(session);
          const socket = edgeHome + HOME_SUFFIX;
          assert.ok(
            session.stdout.includes(`socket ${socket}`),
            session.stdout,
          );
          const dir = Deno.lstatSync(`${edgeHome}/.vigo-puddle/run`);
          assert.ok(dir.isDirectory);
          assert.equal(dir.uid, victim.uid);
          assert.equal(dir.mode! & 0o777, 0o700);
          const ownPid = sentinelPid(edgeHome)!;
          assert.notEqual(ownPid, attackerPid);

          const status = await as(victim, edgeEnv, [
            VIGO,
            "swarm",
            "puddle",
            "status",
          ]);
          assert.match(
            status.stdout,
            new RegExp(`session: +unlocked \\(helper pid ${ownPid}\\b`),
          );
          const founded = await as(victim, edgeEnv, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "init",
            "edge",
            "--no-push",
          ]);
          assert.equal(founded.code, 0, founded.stderr);
          assert.match(founded.stdout, new RegExp(`Founder: ${edgeKey}`));
          assert.doesNotMatch(founded.stdout, new RegExp(attackerKey));
        },
      );

      await t.step(
        "XDG_RUNTIME_DIR naming a shared directory gets the same checks",
        async () => {
          // A world-writable sticky directory, as /tmp is; the attacker
          // plants `vigo` there, pointing at their helper's directory.
          const shared = `${base}/shared`;
          Deno.mkdirSync(shared);
          Deno.chmodSync(shared, 0o1777);
          const planted = await as(attacker, attackerEnv, [
            "ln",
            "-s",
            squat,
            `${shared}/vigo`,
          ]);
          assert.equal(planted.code, 0, planted.stderr);
          const sharedEnv = envOf(victim, edgeHome, {
            XDG_RUNTIME_DIR: shared,
          });
          const founded = await as(victim, sharedEnv, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "init",
            "shared",
            "--no-push",
          ]);
          assert.equal(founded.code, 1, founded.stdout + founded.stderr);
          assert.doesNotMatch(founded.stdout, /Founder/);
          assert.match(
            founded.stderr,
            new RegExp(
              `^error: the session directory ${shared}/vigo is a symbolic link \\(to ${squat}\\) owned by ${attacker.name}`,
              "m",
            ),
          );
          assert.match(
            founded.stderr,
            /^hint: XDG_RUNTIME_DIR must name a directory only you can write/m,
          );
        },
      );

      await t.step(
        "the way out: a private XDG_RUNTIME_DIR, and the key check behind it",
        async () => {
          const made = await as(victim, longEnv, ["mktemp", "-d"]);
          assert.equal(made.code, 0, made.stderr);
          const privateDir = made.stdout.trim();
          extraPaths.push(privateDir);
          const outEnv = envOf(victim, longHome, {
            XDG_RUNTIME_DIR: privateDir,
          });
          const session = await unlockAs(
            { ...victim, env: outEnv },
            VICTIM_PASS,
          );
          sessions.push(session);
          assert.ok(
            session.stdout.includes(`socket ${privateDir}/vigo/puddle.sock`),
            session.stdout,
          );
          const ownPid = sentinelPid(longHome)!;
          const status = await as(victim, outEnv, [
            VIGO,
            "swarm",
            "puddle",
            "status",
          ]);
          assert.match(
            status.stdout,
            new RegExp(`session: +unlocked \\(helper pid ${ownPid}\\b`),
          );
          const founded = await as(victim, outEnv, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "init",
            "way-out",
            "--no-push",
          ]);
          assert.equal(founded.code, 0, founded.stderr);
          assert.match(founded.stdout, new RegExp(`Founder: ${longKey}`));

          // The same helper, reached with the other HOME's identity: its key
          // is not that identity's, so nothing is signed.
          const mismatchEnv = envOf(victim, edgeHome, {
            XDG_RUNTIME_DIR: privateDir,
          });
          const before = foundedProjects(edgeHome);
          const mismatch = await as(victim, mismatchEnv, [
            VIGO,
            "swarm",
            "gitback",
            "project",
            "init",
            "mismatch",
            "--no-push",
          ]);
          assert.equal(mismatch.code, 1, mismatch.stdout + mismatch.stderr);
          assert.match(
            mismatch.stderr,
            new RegExp(
              `^error: the session helper at ${privateDir}/vigo/puddle.sock holds the key ${longKey}, not yours \\(${edgeKey} in `,
              "m",
            ),
          );
          assert.match(mismatch.stderr, /^hint: /m);
          assert.deepEqual(foundedProjects(edgeHome), before);
          await session.lock();
        },
      );

      await t.step(
        "with the squat gone, a long home uses /tmp/vigo-<uid>, made and checked as its own",
        async () => {
          // An administrator removed it. The launcher must pick the same
          // directory as paths.ts for the helper's permissions: this HOME's
          // socket path is 108 bytes in 107 characters, under a UTF-8 locale.
          Deno.removeSync(squat, { recursive: true });
          const session = await unlockAs(
            { ...victim, env: longEnv },
            VICTIM_PASS,
          );
          sessions.push(session);
          assert.ok(
            session.stdout.includes(`socket ${squat}/puddle.sock`),
            session.stdout,
          );
          const info = Deno.lstatSync(squat);
          assert.ok(info.isDirectory);
          assert.equal(info.uid, victim.uid);
          assert.equal(info.mode! & 0o777, 0o700);
          const status = await as(victim, longEnv, [
            VIGO,
            "swarm",
            "puddle",
            "status",
          ]);
          assert.match(
            status.stdout,
            new RegExp(
              `session: +unlocked \\(helper pid ${sentinelPid(longHome)}\\b`,
            ),
          );
          await session.lock();
          assert.equal(sentinelPid(longHome), null);
        },
      );

      await t.step(
        "the user CLI may connect to the agent's gitback.sock",
        async () => {
          // Deno counts connecting to a Unix socket as writing its path: the
          // CLI face once lacked var/run/vigo for normal users, so `gitback
          // status` never reached the agent and always said "partial data".
          const runDir = `${vigoRoot}/var/run/vigo`;
          Deno.mkdirSync(runDir, { recursive: true, mode: 0o755 });
          const path = `${runDir}/gitback.sock`;
          const listener = Deno.listen({ transport: "unix", path });
          Deno.chmodSync(path, 0o666);
          const heard = (async () => {
            const conn = await listener.accept();
            const buffer = new Uint8Array(1024);
            const n = await conn.read(buffer);
            await conn.write(
              new TextEncoder().encode('{"ok":false,"error":"test"}\n'),
            );
            conn.close();
            return new TextDecoder().decode(buffer.subarray(0, n ?? 0));
          })();
          try {
            const status = await as(victim, edgeEnv, [
              VIGO,
              "swarm",
              "gitback",
              "status",
            ]);
            assert.equal(status.code, 0, status.stderr);
            let timer: ReturnType<typeof setTimeout> | undefined;
            const timeout = new Promise<string>((resolve) => {
              timer = setTimeout(() => resolve("nothing"), 5_000);
            });
            const request = await Promise.race([heard, timeout]);
            clearTimeout(timer);
            assert.match(request, /"op":"status"/);
          } finally {
            listener.close();
            await heard.catch(() => {});
          }
        },
      );

      // The attacker's helper was never asked to lock, and still runs.
      assert.ok(Deno.statSync(`/proc/${attackerPid}`));
    } finally {
      for (const session of sessions.reverse()) {
        await session.lock().catch(() => {});
      }
      if (squat) {
        try {
          Deno.lstatSync(squat);
          Deno.removeSync(squat, { recursive: true });
        } catch {
          // Never created.
        }
      }
      for (const path of extraPaths) {
        Deno.removeSync(path, { recursive: true });
      }
      for (const user of users) deleteUser(user);
      Deno.removeSync(base, { recursive: true });
    }
  },
});
