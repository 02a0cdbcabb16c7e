/**
 * How the agent's periodic work talks to peers: every request has a
 * deadline, peers are contacted a few at a time, and a peer that failed
 * (unreachable, deadline passed, 5xx) is left alone for a while that doubles
 * with each consecutive failure. One hung or hostile peer therefore costs a
 * tick at most one deadline, and costs later ticks nothing until its
 * back-off ends.
 *
 * @module
 */

/** Deadline of one request to a peer (for a bundle: until its headers). */
export const PEER_DEADLINE_MS = 10_000;
/** Peers contacted at once by one piece of periodic work. */
export const PEER_CONCURRENCY = 4;
/** Longest back-off, in periods of the work that failed. */
export const MAX_BACKOFF_PERIODS = 32;

/** Consecutive failures per peer, and until when it is left alone. */
export class PeerBackoff {
  #state = new Map<string, { failures: number; until: number }>();

  /** `periodMs`: the first back-off; each further failure doubles it. */
  constructor(private periodMs: number) {}

  /** True when `host` may be contacted at `now`. */
  ready(host: string, now = Date.now()): boolean {
    const state = this.#state.get(host);
    return !state || state.until <= now;
  }

  /** Records a failure; returns the back-off in ms. */
  failed(host: string, now = Date.now()): number {
    const failures = (this.#state.get(host)?.failures ?? 0) + 1;
    const delay = this.periodMs *
      Math.min(2 ** (failures - 1), MAX_BACKOFF_PERIODS);
    this.#state.set(host, { failures, until: now + delay });
    return delay;
  }

  /** Records an answer: the peer is no longer backed off. */
  succeeded(host: string): void {
    this.#state.delete(host);
  }

  /** Consecutive failures of `host`. */
  failures(host: string): number {
    return this.#state.get(host)?.failures ?? 0;
  }
}

const backoffs = new WeakMap<object, PeerBackoff>();

/**
 * The back-off shared by everything keyed on `owner` (the agent's peer
 * index), created with `periodMs` on first use.
 */
export function peerBackoff(owner: object, periodMs: number): PeerBackoff {
  let backoff = backoffs.get(owner);
  if (!backoff) backoffs.set(owner, backoff = new PeerBackoff(periodMs));
  return backoff;
}

/**
 * Runs `work` on every item, at most `limit` at a time, and resolves once
 * all have settled (a rejection is returned as its error, not thrown).
 */
export async function boundedAll<T, R>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<(R | Error)[]> {
  const results: (R | Error)[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const at = next++;
      try {
        results[at] = await work(items[at]);
      } catch (error) {
        results[at] = error instanceof Error ? error : new Error(String(error));
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  return results;
}
