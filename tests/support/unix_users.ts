/**
 * Real, throwaway Unix users for tests of permission boundaries. Needs root;
 * every user created is deleted again, with its home.
 *
 * @module
 */

import { REPO } from "./cli.ts";
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

/** Kills every process of `user` and deletes the account and its home. */
export function deleteUser(user: TestUser): void {
  new Deno.Command("pkill", { args: ["-KILL", "-u", user.name] }).outputSync();
  for (let i = 0; i < 50; i++) {
    const left = new Deno.Command("pgrep", { args: ["-u", user.name] })
      .outputSync();
    if (!left.success) break;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  new Deno.Command("userdel", { args: ["--remove", user.name], stderr: "null" })
    .outputSync();
  try {
    Deno.removeSync(user.runtime, { recursive: true });
  } catch {
    // Already gone.
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
