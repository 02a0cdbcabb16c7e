/**
 * `vigo swarm gitback project re-found <project_id> [--force] [--confirm
 * <handle>]`: the current founder moves a project whose delegations reached
 * the cap (or any, with `--force`) to a new id under their current key, and
 * tombstones the old one.
 *
 * @module
 */

import { parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";
import { moveVerb } from "./project_move.ts";

const USAGE =
  "vigo swarm gitback project re-found <project_id> [--force] [--confirm <handle>]";

/** Runs `vigo swarm gitback project re-found`. */
export async function projectRefound(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    { force: { type: "boolean" }, confirm: { type: "string" } },
    USAGE,
    1,
  );
  if (!positionals[0]) {
    throw new UsageError("re-found needs a project.", `usage: ${USAGE}`);
  }
  return await moveVerb(positionals[0], {
    asFounder: true,
    force: values.force === true,
    confirm: values.confirm as string | undefined,
  });
}
