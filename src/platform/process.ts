/**
 * Process helpers: liveness checks and detached children.
 *
 * @module
 */

/**
 * True when `pid` names a live (non-zombie) process. Reads `/proc`, so it
 * needs no permission to signal the process.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The state letter follows the parenthesised command name.
    const state = stat.slice(
      stat.lastIndexOf(")") + 2,
      stat.lastIndexOf(")") + 3,
    );
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
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
