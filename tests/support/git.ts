/**
 * Runs real git the same way in every test: with a fixed identity, and
 * (unless told otherwise) no user or system configuration.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runCommand } from "../../src/platform/process.ts";

/** The author and committer every test's commits are made by. */
export const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: "T",
  GIT_AUTHOR_EMAIL: "t@example.invalid",
  GIT_COMMITTER_NAME: "T",
  GIT_COMMITTER_EMAIL: "t@example.invalid",
};

/**
 * The whole environment of a git run that reads no configuration: PATH,
 * a HOME that does not exist, no system config, and {@link GIT_IDENTITY}.
 */
export const GIT_ENV: Record<string, string> = {
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: "/nonexistent",
  GIT_CONFIG_NOSYSTEM: "1",
  ...GIT_IDENTITY,
};

/** How {@link git} runs: the whole environment, the directory, stdin. */
export interface GitOptions {
  /** The only variables git sees ({@link GIT_ENV} when omitted). */
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
}

/**
 * Runs `git args…`, failing the test (with git's stderr) unless it
 * succeeded; returns its standard output, trimmed.
 */
export async function git(
  args: string[],
  { env = GIT_ENV, cwd, stdin }: GitOptions = {},
): Promise<string> {
  const out = await runCommand("git", {
    args,
    env,
    clearEnv: true,
    cwd,
    stdin,
  });
  assert.equal(out.code, 0, `git ${args.join(" ")}: ${out.stderr}`);
  return out.stdout.trim();
}

/**
 * {@link git} bound to an environment and a working directory:
 * `gitIn(env, work)("commit", "-m", "one")`.
 */
export function gitIn(
  env: Record<string, string>,
  cwd: string,
): (...args: string[]) => Promise<string> {
  return (...args) => git(args, { env, cwd });
}
