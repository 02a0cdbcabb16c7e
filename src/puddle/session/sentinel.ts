/**
 * `session.unlocked`: the helper's PID, which sibling tools probe (with a
 * liveness check) to learn whether the puddle is unlocked.
 *
 * @module
 */

import { pidAlive } from "../../platform/process.ts";
import { removeIfExists } from "../../platform/fs.ts";

/** File name of the sentinel inside `~/.vigo-puddle`. */
export const SESSION_SENTINEL = "session.unlocked";

/**
 * The PID of a live session helper, or null. A sentinel naming a dead
 * process is stale: it reads as locked and is removed.
 */
export function liveHelperPid(puddleDir: string): number | null {
  const path = `${puddleDir}/${SESSION_SENTINEL}`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) return pid;
  try {
    removeIfExists(path);
  } catch {
    // Not ours to remove (read-only home); it still reads as locked.
  }
  return null;
}
