/**
 * Running this program as another user: a privileged process never writes
 * into a user's home itself, it runs a hidden verb as that user (setpriv),
 * with a minimal environment and the data on standard input.
 *
 * @module
 */

import { type CommandResult, runCommand } from "./process.ts";
import { selfCommand } from "./paths.ts";

/** Runs `vigo <args…>` as `uid`/`gid` with `HOME=home`, `stdin` as input. */
export function runSelfAs(
  user: { uid: number; gid: number; home: string },
  args: string[],
  stdin: string,
): Promise<CommandResult> {
  const env: Record<string, string> = {
    HOME: user.home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const root = Deno.env.get("VIGO_ROOT");
  if (root) env.VIGO_ROOT = root;
  // Root may share the agent's module cache; other users use their own.
  const denoDir = Deno.env.get("DENO_DIR");
  if (user.uid === 0 && denoDir) env.DENO_DIR = denoDir;
  return runCommand("setpriv", {
    args: [
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      "--init-groups",
      "--",
      selfCommand(),
      ...args,
    ],
    env,
    clearEnv: true,
    stdin,
  });
}
