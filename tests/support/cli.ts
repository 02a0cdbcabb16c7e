/**
 * Runs the real CLI (through scripts/vigo) in throwaway user environments.
 *
 * @module
 */

import { type CommandResult, runCommand } from "../../src/platform/process.ts";
import { GIT_IDENTITY } from "./git.ts";

/** Absolute path of the repository. */
export const REPO = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);
/** The development launcher every test drives. */
export const VIGO = `${REPO}/scripts/vigo`;

/** What a finished command produced. */
export type RunResult = CommandResult;

/** A throwaway user environment: its own HOME and XDG_RUNTIME_DIR. */
export interface UserEnv {
  home: string;
  runtime: string;
  env: Record<string, string>;
}

/**
 * Makes a fresh HOME and runtime dir under `base`. The Deno cache is shared
 * with the parent so each CLI process starts from compiled code.
 */
export function makeUserEnv(base: string, name = "user"): UserEnv {
  const home = `${base}/${name}/home`;
  const runtime = `${base}/${name}/run`;
  Deno.mkdirSync(home, { recursive: true, mode: 0o755 });
  Deno.mkdirSync(runtime, { recursive: true, mode: 0o700 });
  const env: Record<string, string> = {
    HOME: home,
    XDG_RUNTIME_DIR: runtime,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;
  else env.DENO_DIR = `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  return { home, runtime, env };
}

/** Runs `vigo args…` with `env` and `stdin`, waiting for it to finish. */
export async function vigo(
  env: Record<string, string>,
  args: string[],
  stdin = "",
  argv0 = VIGO,
): Promise<RunResult> {
  return await runCommand(argv0, { args, env, clearEnv: true, stdin });
}

/** Kills the session helper named by a HOME's sentinel, if one runs. */
export async function killSessionHelper(home: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(
      Deno.readTextFileSync(`${home}/.vigo-puddle/session.unlocked`).trim(),
    );
  } catch {
    return;
  }
  if (!(pid > 0)) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && !processGone(pid); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True once `pid` has exited (a zombie awaiting its reaper counts). */
export function processGone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
  } catch {
    return true;
  }
}

/**
 * Puts a `git-remote-gitback` symlink to the launcher in `<dir>/bin` and
 * returns a function that adds it to an environment's PATH, with a git
 * identity, so that git in that environment speaks gitback://.
 */
export function withGitback(
  dir: string,
): (env: Record<string, string>) => Record<string, string> {
  const bin = `${dir}/bin`;
  Deno.mkdirSync(bin);
  Deno.symlinkSync(VIGO, `${bin}/git-remote-gitback`);
  return (env) => ({
    ...env,
    PATH: `${bin}:${env.PATH}`,
    ...GIT_IDENTITY,
  });
}
