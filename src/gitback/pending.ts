/**
 * The queues of signed envelopes a user's verbs leave for the agent's sweep:
 * `~/.vigo-gitback/<project_id>/leave.pending` (`project leave`) and
 * `revoke.pending` (`project revoke`). Each is a JSON array of envelopes,
 * 0600, rewritten atomically; the sweep sends them and removes the file.
 *
 * @module
 */

import { exists, writeTextAtomic } from "../platform/fs.ts";
import { projectDir } from "./project.ts";

/** The queue files, in the order `project status` lists them. */
export const PENDING_QUEUES = ["leave.pending", "revoke.pending"] as const;

/** One queue's file name in a project's state directory. */
export type PendingQueue = typeof PENDING_QUEUES[number];

/** The path of `queue` for `projectId`. */
export function pendingPath(
  gitbackDir: string,
  projectId: string,
  queue: PendingQueue,
): string {
  return `${projectDir(gitbackDir, projectId)}/${queue}`;
}

/**
 * The envelopes waiting in `queue`, oldest first: none when the file is
 * missing or unreadable (appending starts it afresh then).
 */
export function readPending(
  gitbackDir: string,
  projectId: string,
  queue: PendingQueue,
): unknown[] {
  try {
    const value = JSON.parse(
      Deno.readTextFileSync(pendingPath(gitbackDir, projectId, queue)),
    );
    return Array.isArray(value) ? value : [];
  } catch {
    // None pending yet.
    return [];
  }
}

/** Queues `envelope` for the sweep; returns the queue file's path. */
export function appendPending(
  gitbackDir: string,
  projectId: string,
  queue: PendingQueue,
  envelope: unknown,
): string {
  const path = pendingPath(gitbackDir, projectId, queue);
  const list = readPending(gitbackDir, projectId, queue);
  list.push(envelope);
  writeTextAtomic(path, JSON.stringify(list, null, 2) + "\n", 0o600);
  return path;
}

/** The queues of `projectId` that hold envelopes the sweep has not taken. */
export function pendingQueues(
  gitbackDir: string,
  projectId: string,
): PendingQueue[] {
  return PENDING_QUEUES.filter((queue) =>
    exists(pendingPath(gitbackDir, projectId, queue))
  );
}
