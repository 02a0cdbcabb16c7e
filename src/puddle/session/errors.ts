/**
 * The one error type of the session client and of the session directory
 * checks.
 *
 * @module
 */

/** Raised when the helper cannot be reached, may not be used, or refuses. */
export class SessionError extends Error {
  /** True when no helper listens: the puddle is locked. */
  readonly locked: boolean;
  /** A second line telling the user what to do next. */
  hint?: string;
  constructor(message: string, locked = false, hint?: string) {
    super(message);
    this.name = "SessionError";
    this.locked = locked;
    this.hint = hint;
  }
}
