/**
 * How the CLI reports failure: `error: …` and a hint line on stderr, exit 1
 * for failures and 2 for usage mistakes.
 *
 * @module
 */

/** A mistake in how the command was called (exit 2). */
export class UsageError extends Error {
  /** What to run instead. */
  hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "UsageError";
    this.hint = hint;
  }
}

/** A failure with a user-facing message and an optional hint (exit 1). */
export class CliError extends Error {
  /** What to do next. */
  hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "CliError";
    this.hint = hint;
  }
}

/** Prints `error` for a person and returns the exit code it deserves. */
export function reportError(error: unknown): number {
  const err = error instanceof Error ? error : new Error(String(error));
  const hint = (err as { hint?: string }).hint;
  const message = err.message.replace(/\.$/, "");
  console.error(`error: ${message}`);
  if (hint) console.error(`hint: ${hint}`);
  return err instanceof UsageError ? 2 : 1;
}

/**
 * Says that an identity change is committed but its files are not all
 * written yet (a full disk stopped it after the commit point), and what
 * finishes it. `what` is what only the new version of works now.
 */
export function warnUnfinishedChange(
  puddleDir: string,
  cause: Error,
  what: "identity" | "passphrase",
): void {
  console.error(
    `warning: the change is committed, but rewriting the identity files stopped: ${
      cause.message.replace(/\.$/, "")
    }.`,
  );
  console.error(
    `  only the new ${what} counts from now on. Finishing needs free space in ${puddleDir}: ` +
      "the next `unlock`, `status` or `pubkey` finishes the change; until there is room they fail and say so.",
  );
}
