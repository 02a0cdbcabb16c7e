/**
 * One writer per project at a time: a push on the git socket (from
 * receive-pack until its ref state is signed or rolled back), a delivery
 * from a peer and a catch-up all move a repository's refs, and each must
 * see the state the previous one left.
 *
 * @module
 */

const tails = new Map<string, Promise<unknown>>();

/** Runs `work` once every earlier holder of `projectId`'s lock is done. */
export async function withProjectLock<T>(
  projectId: string,
  work: () => Promise<T>,
): Promise<T> {
  const previous = tails.get(projectId) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(work);
  tails.set(projectId, run);
  try {
    return await run;
  } finally {
    if (tails.get(projectId) === run) tails.delete(projectId);
  }
}
