/**
 * The `git-remote-gitback` face: git runs it for `gitback://` URLs and talks
 * the remote-helper protocol on stdin/stdout.
 *
 * For now it announces its capabilities; the `connect` route to the local
 * agent's socket builds on this.
 *
 * @module
 */

import { StdinLines } from "../platform/tty.ts";

/** Capabilities announced to git, one per line. */
export const CAPABILITIES = ["connect"];

/** Runs the remote-helper conversation until git closes stdin. */
export async function runRemoteHelper(args: string[]): Promise<number> {
  if (args.length < 1) {
    console.error(
      "error: git-remote-gitback is run by git for gitback:// URLs",
    );
    console.error("hint: use `git clone gitback://<project_id>/<handle>`");
    return 2;
  }
  const lines = new StdinLines();
  const encoder = new TextEncoder();
  for (;;) {
    const line = await lines.next();
    if (line === null) return 0;
    const command = new TextDecoder().decode(line);
    if (command === "") return 0;
    if (command === "capabilities") {
      await Deno.stdout.write(encoder.encode(CAPABILITIES.join("\n") + "\n\n"));
      continue;
    }
    console.error(
      `error: gitback cannot serve '${
        command.split(" ")[0]
      }' yet on this envoy`,
    );
    return 1;
  }
}
