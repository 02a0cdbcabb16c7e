/**
 * The confirmation of a verb that moves a project for good (`re-found`,
 * `reanchor`): the operator types the project's handle, on a terminal, or
 * passes it as `--confirm <handle>` where there is none.
 *
 * @module
 */

import { CliError } from "./errors.ts";

/**
 * Prints `consequences`, then proceeds only when the handle typed (or
 * `given` with `--confirm`) is exactly `handle`.
 */
export function confirmHandle(
  handle: string,
  consequences: string[],
  given: string | undefined,
): void {
  for (const line of consequences) console.error(line);
  let answer = given;
  if (answer === undefined) {
    if (!Deno.stdin.isTerminal()) {
      throw new CliError(
        "this needs the project's handle typed as confirmation; nothing was changed.",
        `without a terminal, pass --confirm ${handle}.`,
      );
    }
    answer = prompt(`type the handle (${handle}) to proceed:`) ?? "";
  }
  if (answer.trim() !== handle) {
    throw new CliError(
      `the confirmation ${
        JSON.stringify(answer.trim())
      } is not the handle ${handle}; nothing was changed.`,
    );
  }
}
