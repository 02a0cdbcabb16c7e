/**
 * Starting and stopping the session helper from the CLI.
 *
 * @module
 */

import { selfCommand, type UserPaths } from "../../platform/paths.ts";
import { removeIfExists } from "../../platform/fs.ts";
import { waitForExit } from "../../platform/process.ts";
import { PuddleError } from "../identity.ts";
import { SessionError, sessionRequest, sessionStatus } from "./client.ts";
import { liveHelperPid } from "./sentinel.ts";
import { ensureSessionDir } from "./session_dir.ts";

/** Default idle timeout: 24 hours. */
export const DEFAULT_IDLE_MINUTES = 24 * 60;
/** How often the helper checks that the unlocking shell is alive. */
export const WATCHDOG_MS = 10_000;
const READY_TIMEOUT_MS = 20_000;

/** Name of the hidden verb that runs the helper face. */
export const HELPER_VERB = "_session-helper";

/** Options for {@link startSessionHelper}. */
export interface StartOptions {
  idleMinutes: number;
  /** The shell whose exit locks the session. */
  parentPid: number;
}

/**
 * Creates the socket directory (mode 0700), refusing one that is a
 * symbolic link, not a directory or someone else's; see session_dir.ts.
 */
export function prepareSessionDir(paths: UserPaths): void {
  ensureSessionDir(paths.sessionDir);
}

/**
 * Spawns the detached helper, hands it the seed on stdin, and waits for it
 * to listen. Zeroes `seed` whatever happens. Returns the helper's PID.
 */
export async function startSessionHelper(
  paths: UserPaths,
  seed: Uint8Array,
  options: StartOptions,
): Promise<number> {
  try {
    prepareSessionDir(paths);
    const child = new Deno.Command(selfCommand(), {
      args: [
        "swarm",
        "puddle",
        HELPER_VERB,
        "--parent-pid",
        String(options.parentPid),
        "--idle-ms",
        String(Math.round(options.idleMinutes * 60_000)),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      detached: true,
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(seed);
    seed.fill(0);
    await writer.close();

    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    const timer = setTimeout(() => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    }, READY_TIMEOUT_MS);
    try {
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
    } finally {
      clearTimeout(timer);
      reader.releaseLock();
      child.stdout.cancel().catch(() => {});
      child.unref();
    }
    const line = text.split("\n")[0];
    if (line.startsWith("ready ")) return Number(line.slice(6));
    if (line.startsWith("error ")) {
      throw new PuddleError(
        `the session helper failed to start: ${line.slice(6)}`,
      );
    }
    throw new PuddleError(
      "the session helper exited before it was ready.",
      `see ${paths.sessionDir}/helper.log for details.`,
    );
  } finally {
    seed.fill(0);
  }
}

/**
 * Asks the helper to scrub its key and exit; waits until it has.
 * Returns the PID that was locked.
 */
export async function lockSession(paths: UserPaths): Promise<number> {
  const pid = liveHelperPid(paths.puddleDir);
  let status;
  let refusal: SessionError | null = null;
  try {
    status = await sessionStatus(paths.sessionSocket);
  } catch (error) {
    // A helper that is not ours (or a directory that is not) is never
    // asked to lock, and nothing in its directory is touched.
    if (error instanceof SessionError) refusal = error;
    status = null;
  }
  if (!status) {
    if (pid === null) {
      if (refusal) throw refusal;
      removeIfExists(paths.sessionSocket);
      throw new PuddleError(
        "the puddle is not unlocked; there is nothing to lock.",
        "`vigo swarm puddle status` shows the session state.",
      );
    }
    // A helper that no longer answers is ended by signal.
    Deno.kill(pid, "SIGTERM");
    await waitForExit(pid, 5_000);
    return pid;
  }
  try {
    await sessionRequest(paths.sessionSocket, { op: "LOCK" });
  } catch (error) {
    if (!(error instanceof SessionError)) throw error;
  }
  await waitForExit(status.pid, 5_000);
  return status.pid;
}
