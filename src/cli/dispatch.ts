/**
 * How every verb group (`vigo`, `vigo swarm`, `vigo swarm puddle`, …) reads
 * its first argument. A group declares its usage and a table of verbs; the
 * dispatcher gives all of them the same behaviour:
 *
 * - `help`, `--help` and `-h` print the usage on stdout and exit 0, before
 *   any gate, so that help works for a user who may not use the group;
 * - no verb prints the usage and exits 2 (or is the group's usage error);
 * - hidden verbs (run by vigo itself) skip the group's gate;
 * - a verb that is another group dispatches there, under that group's gate;
 * - every other verb passes the gate first; an unknown one is then a usage
 *   error naming `<group> help`.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Runs one verb with the arguments after it; returns the exit code. */
export type Verb = (args: string[]) => number | Promise<number>;

/** A verb group: its command line, its usage and its verbs. */
export interface VerbGroup {
  /** The command line that reaches the group, e.g. `vigo swarm puddle`. */
  command: string;
  /** What the group calls its verbs in errors: `unknown <noun> "x"`. */
  noun: string;
  /** Printed as it is for `help`, `--help`, `-h` and a missing verb. */
  usage: string;
  /** The verbs the usage lists: a verb, or a group of its own. */
  verbs: Readonly<Record<string, Verb | VerbGroup>>;
  /** Verbs vigo runs itself (the agent, the session launcher); ungated. */
  hidden?: Readonly<Record<string, Verb>>;
  /**
   * Runs before every verb of this group (not help, not hidden verbs, not
   * a verb that is a group, which has its own): the feature gates.
   */
  gate?: () => void | Promise<void>;
  /**
   * When set, a missing verb is a usage error with this message instead of
   * the usage on stdout; both exit 2.
   */
  missingVerb?: string;
  /**
   * Takes the whole argument list when it names no verb (also when it is
   * empty), for a group that is one command with flags: `vigo agent`.
   */
  fallback?: Verb;
  /** Turns a subsystem's error into the CLI's (ProjectError → CliError). */
  mapError?: (error: unknown) => unknown;
}

/** The arguments that ask a group for its usage. */
export const HELP_WORDS: readonly string[] = ["help", "--help", "-h"];

/** The entry `table` has for `verb` itself (never an inherited property). */
function own<T>(
  table: Readonly<Record<string, T>> | undefined,
  verb: string | undefined,
): T | undefined {
  return table && verb !== undefined && Object.hasOwn(table, verb)
    ? table[verb]
    : undefined;
}

function isGroup(entry: Verb | VerbGroup): entry is VerbGroup {
  return typeof entry === "object";
}

/** Runs `group` on `args` (its verb first); returns the exit code. */
export async function dispatch(
  group: VerbGroup,
  args: string[],
): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== undefined && HELP_WORDS.includes(verb)) {
    console.log(group.usage);
    return 0;
  }
  try {
    const hidden = own(group.hidden, verb);
    if (hidden) return await hidden(rest);
    const entry = own(group.verbs, verb);
    if (entry && isGroup(entry)) return await dispatch(entry, rest);
    if (verb === undefined && !group.fallback) {
      if (group.missingVerb !== undefined) {
        throw new UsageError(group.missingVerb, helpHint(group));
      }
      console.log(group.usage);
      return 2;
    }
    await group.gate?.();
    if (entry) return await entry(rest);
    if (group.fallback) return await group.fallback(args);
    throw new UsageError(
      `unknown ${group.noun} ${JSON.stringify(verb)}.`,
      helpHint(group),
    );
  } catch (error) {
    throw group.mapError ? group.mapError(error) : error;
  }
}

function helpHint(group: VerbGroup): string {
  return `run \`${group.command} help\` for the list.`;
}
