/**
 * Process helpers: liveness checks and detached children.
 *
 * @module
 */

/**
 * True when `pid` names a live (non-zombie) process. Reads `/proc` where
 * Deno allows it (it grants other processes' `/proc` entries only with
 * --allow-all); otherwise asks `kill -0`, which needs just --allow-run=kill.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The state letter follows the parenthesised command name.
    const at = stat.lastIndexOf(")") + 2;
    const state = stat.slice(at, at + 1);
    return state !== "Z" && state !== "X";
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return killZero(pid);
    return false;
  }
}

function killZero(pid: number): boolean {
  const out = new Deno.Command("kill", {
    args: ["-0", String(pid)],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).outputSync();
  return out.success;
}

/** Waits until `pid` is gone or `timeoutMs` passes; true when it is gone. */
export async function waitForExit(
  pid: number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return !pidAlive(pid);
}

/** What a finished command printed, and how it exited. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion with `stdin` written to it, collecting its
 * output as text. For public data only: the output becomes strings.
 */
export async function runCommand(
  command: string,
  options: {
    args: string[];
    env?: Record<string, string>;
    clearEnv?: boolean;
    cwd?: string;
    stdin?: Uint8Array | string;
  },
): Promise<CommandResult> {
  const child = new Deno.Command(command, {
    args: options.args,
    env: options.env,
    clearEnv: options.clearEnv,
    cwd: options.cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const input = options.stdin ?? "";
  await writer.write(
    typeof input === "string" ? new TextEncoder().encode(input) : input,
  );
  await writer.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
