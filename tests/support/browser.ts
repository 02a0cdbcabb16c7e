/**
 * A real headless browser (Debian's `chromium`) for tests of the fleet
 * server's pages: the DOM after the browser parsed a page, and a
 * screenshot. Each call runs one browser with a fresh profile in the
 * test's directory and waits for it to exit.
 *
 * @module
 */

import { runCommand } from "../../src/platform/process.ts";

/** The browser's path, or null when it is not installed. */
export function chromiumPath(): string | null {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not here.
    }
  }
  return null;
}

function browserArgs(profile: string): string[] {
  return [
    "--headless",
    // Root cannot use the browser's own sandbox; the pages are our own.
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    `--user-data-dir=${profile}`,
    "--window-size=1280,900",
  ];
}

async function runBrowser(args: string[], profile: string): Promise<string> {
  const chromium = chromiumPath();
  if (!chromium) {
    throw new Error(
      "chromium is not installed; `.ci/run` installs it with apt-get (apt-get install chromium).",
    );
  }
  Deno.mkdirSync(profile, { recursive: true });
  const out = await runCommand(chromium, {
    args: [...browserArgs(profile), ...args],
    env: { HOME: profile, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
  });
  if (out.code !== 0) {
    throw new Error(
      `chromium failed (${out.code}): ${out.stderr.slice(-2000)}`,
    );
  }
  return out.stdout;
}

/** The serialized DOM of `url` once chromium has loaded it. */
export async function domOf(url: string, profile: string): Promise<string> {
  return await runBrowser(["--dump-dom", url], profile);
}

/** Saves a PNG screenshot of `url` to `path`; returns its size in bytes. */
export async function screenshot(
  url: string,
  path: string,
  profile: string,
): Promise<number> {
  await runBrowser([`--screenshot=${path}`, url], profile);
  return Deno.statSync(path).size;
}
