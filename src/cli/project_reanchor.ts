/**
 * `vigo swarm gitback project reanchor <project_id> [--confirm <handle>]`:
 * a surviving member carries a project on under a new id founded by their
 * own key, when its founder is gone.
 *
 * @module
 */

import { parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";
import { moveVerb } from "./project_move.ts";

const USAGE =
  "vigo swarm gitback project reanchor <project_id> [--confirm <handle>]";

/** Runs `vigo swarm gitback project reanchor`. */
export async function projectReanchor(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    { confirm: { type: "string" } },
    USAGE,
    1,
  );
  if (!positionals[0]) {
    throw new UsageError("reanchor needs a project.", `usage: ${USAGE}`);
  }
  return await moveVerb(positionals[0], {
    asFounder: false,
    confirm: values.confirm as string | undefined,
  });
}
