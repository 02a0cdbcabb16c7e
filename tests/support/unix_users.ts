/**
 * Real, throwaway Unix users for tests of permission boundaries. Needs root;
 * every user created is deleted again, with its home.
 *
 * @module
 */

import { REPO, VIGO } from "./cli.ts";
import { type CommandResult, runCommand } from "../../src/platform/process.ts";

/** True when the tests can create users. */
export const CAN_CREATE_USERS = Deno.uid() === 0;

/** A user made for one test. */
export interface TestUser {
  name: string;
  uid: number;
  home: string;
  runtime: string;
  /** Environment for commands run as this user. */
  env: Record<string, string>;
}

function run(cmd: string, args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** Creates a user whose home and runtime dir live under `base`. */
export function createUser(base: string, prefix: string): TestUser {
  const suffix = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const name = `${prefix}${suffix}`.slice(0, 30);
  const home = `${base}/${name}`;
  run("useradd", [
    "--create-home",
    "--home-dir",
    home,
    "--shell",
    "/bin/sh",
    "--user-group",
    name,
  ]);
  const uid = Number(run("id", ["-u", name]).trim());
  const runtime = `${base}/run-${uid}`;
  Deno.mkdirSync(runtime, { mode: 0o700 });
  Deno.chownSync(runtime, uid, uid);
  Deno.chmodSync(runtime, 0o700);
  return {
    name,
    uid,
    home,
    runtime,
    env: {
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: `${home}/.cache/deno`,
    },
  };
}

/**
 * Kills every process of `user` and deletes the account and its home. Waits
 * (up to 30 s) until no process of the user is left, since userdel refuses a
 * user who still runs something. Never throws (it runs in `finally` blocks);
 * an account it could not delete is reported on stderr.
 */
export function deleteUser(user: TestUser): void {
  const deadline = Date.now() + 30_000;
  for (;;) {
    new Deno.Command("pkill", { args: ["-KILL", "-u", user.name] })
      .outputSync();
    const left = new Deno.Command("pgrep", { args: ["-u", user.name] })
      .outputSync();
    if (!left.success || Date.now() > deadline) break;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  const removed = new Deno.Command("userdel", {
    args: ["--remove", user.name],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  try {
    Deno.removeSync(user.runtime, { recursive: true });
  } catch {
    // Already gone.
  }
  // 6: no such user (deleted already); 12: only the home could not be
  // removed (the test removes its directory anyway).
  if (!removed.success && removed.code !== 6 && removed.code !== 12) {
    console.error(
      `warning: test user ${user.name} was left behind: userdel exited ${removed.code}: ${
        new TextDecoder().decode(removed.stderr).trim()
      }`,
    );
  }
}

/** Runs a command as `user` (via runuser) with only `user.env`. */
export async function runAs(
  user: TestUser,
  argv: string[],
  stdin = "",
): Promise<CommandResult> {
  const env = Object.entries(user.env).map(([k, v]) => `${k}=${v}`);
  return await runCommand("runuser", {
    args: ["-u", user.name, "--", "env", "-i", ...env, ...argv],
    cwd: REPO,
    stdin,
  });
}

/** A user's puddle session that lasts until {@link UserSession.lock}. */
export interface UserSession {
  /** The session helper's pid. */
  helperPid: number;
  /** The long-lived parent the helper watches (a `sleep` owned by the user). */
  parentPid: number;
  /** What `unlock` printed on stdout. */
  stdout: string;
  /**
   * Locks the session as the user (`vigo swarm puddle lock`, which returns
   * once the helper is gone), then ends the parent. Returns the lock
   * command's result; calling it again only returns that result.
   */
  lock(): Promise<CommandResult>;
}

const READY = "vigo-test-session-ready";

/**
 * Unlocks `user`'s puddle from a parent shell that stays alive until
 * {@link UserSession.lock}: `runuser … sh -c 'vigo swarm puddle unlock &&
 * exec sleep 86400'`. A helper started by a plain {@link runAs} watches the
 * runuser that started it and locks itself up to 10 s after it exits, so a
 * test that needs the session later would race that watchdog; one started
 * here never locks on its own. Resolves once unlock has finished and its
 * helper runs, watching that parent; throws with unlock's output if it
 * failed. `args` are passed to unlock (`--idle-mins N`).
 */
export async function unlockAs(
  user: TestUser,
  passphrase: string,
  args: string[] = [],
  timeoutMs = 60_000,
): Promise<UserSession> {
  const env = Object.entries(user.env).map(([k, v]) => `${k}=${v}`);
  const child = new Deno.Command("runuser", {
    args: [
      "-u",
      user.name,
      "--",
      "env",
      "-i",
      ...env,
      "sh",
      "-c",
      // The shell's pid is the helper's parent, first as this shell, then as
      // the sleep it becomes.
      `echo "parent $$"; "$0" swarm puddle unlock "$@" && echo ${READY} && exec sleep 86400`,
      VIGO,
      ...args,
    ],
    cwd: REPO,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(`${passphrase}\n`));
  await writer.close();

  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    const parent = /^parent (\d+)$/m.exec(text);
    try {
      if (parent) Deno.kill(Number(parent[1]), "SIGKILL");
      else child.kill("SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }, timeoutMs);
  try {
    while (!new RegExp(`^${READY}$`, "m").test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  const parentPid = Number(/^parent (\d+)$/m.exec(text)?.[1]);
  const stdout = text.replace(/^parent \d+\n/, "").replace(`${READY}\n`, "");
  if (!new RegExp(`^${READY}$`, "m").test(text)) {
    const { code } = await child.status;
    throw new Error(
      `unlock as ${user.name} ${
        timedOut ? `did not finish within ${timeoutMs} ms` : `exited ${code}`
      }: ${stdout}${await stderr}`,
    );
  }
  if (!/Puddle unlocked/.test(stdout)) {
    throw new Error(`unlock as ${user.name} printed no "Puddle unlocked"`);
  }
  // The helper must watch the long-lived shell, not something that ends.
  const helperPid = Number(
    Deno.readTextFileSync(`${user.env.HOME}/.vigo-puddle/session.unlocked`)
      .trim(),
  );
  const argv = Deno.readTextFileSync(`/proc/${helperPid}/cmdline`).split("\0");
  const watched = Number(argv[argv.indexOf("--parent-pid") + 1]);
  if (!(helperPid > 0) || watched !== parentPid) {
    throw new Error(
      `the session helper (pid ${helperPid}) of ${user.name} watches ${watched}, not the parent ${parentPid}`,
    );
  }
  let locked: Promise<CommandResult> | undefined;
  return {
    helperPid,
    parentPid,
    stdout,
    lock() {
      locked ??= (async () => {
        const result = await runAs(user, [VIGO, "swarm", "puddle", "lock"]);
        try {
          Deno.kill(parentPid, "SIGTERM");
        } catch {
          // Already gone (deleteUser, or the test ended it).
        }
        await child.status;
        await stderr;
        return result;
      })();
      return locked;
    },
  };
}
