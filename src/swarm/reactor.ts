/**
 * A reactor: work the agent repeats every period (sweep, catch-up,
 * reconcile), one run at a time.
 *
 * @module
 */

import type { Logger } from "../platform/log.ts";

/**
 * Runs `tick` every `seconds`. A tick still running when the next is due is
 * not overlapped; one that fails is logged as `<name> failed` and the next
 * runs as usual.
 */
export function startReactor(
  name: string,
  seconds: number,
  log: Logger,
  tick: () => Promise<unknown>,
): { stop(): void } {
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      await tick();
    } catch (error) {
      log.error(`${name} failed`, { error: (error as Error).message });
    } finally {
      running = false;
    }
  }, seconds * 1000);
  return { stop: () => clearInterval(timer) };
}
