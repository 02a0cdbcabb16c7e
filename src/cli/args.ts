/**
 * Argument parsing shared by every verb: `node:util` parseArgs with errors
 * turned into usage errors.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.ts";

/** Parsed flags and positionals. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Parses `args` against `options`; unknown flags are usage errors. */
export function parseVerbArgs(
  args: string[],
  options: ParseArgsConfig["options"],
  usage: string,
  maxPositionals = 0,
): Parsed {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args,
      options,
      allowPositionals: true,
      strict: true,
    }) as Parsed;
  } catch (error) {
    throw new UsageError((error as Error).message, `usage: ${usage}`);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(
      `unexpected argument ${
        JSON.stringify(parsed.positionals[maxPositionals])
      }.`,
      `usage: ${usage}`,
    );
  }
  return parsed;
}
