/**
 * Polling helpers for end-to-end tests: agents act on timers, so a test
 * waits for the effect (with a deadline) rather than sleeping.
 *
 * @module
 */

/** Resolves once `check` returns true; fails after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (await check()) return;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Waits until the file at `path` has a line matching `pattern`. */
export async function waitForLine(
  path: string,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<void> {
  await waitUntil(`${pattern} in ${path}`, () => {
    try {
      return Deno.readTextFileSync(path).split("\n").some((l) =>
        pattern.test(l)
      );
    } catch {
      return false;
    }
  }, timeoutMs);
}

/** Waits until `path` exists. */
export async function waitForPath(
  path: string,
  timeoutMs = 30_000,
): Promise<void> {
  await waitUntil(path, () => {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  }, timeoutMs);
}
