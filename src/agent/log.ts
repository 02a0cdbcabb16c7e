/**
 * The agent's log: one line per event on stderr,
 * `<ISO time> <LEVEL> <message> key=value …`. Callers never pass secrets.
 *
 * @module
 */

/** Structured fields appended to a line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** A leveled logger. */
export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

function render(value: string | number | boolean): string {
  const text = String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

/** Formats one log line (without the newline). */
export function formatLogLine(
  level: string,
  message: string,
  fields: LogFields = {},
): string {
  const parts = [new Date().toISOString(), level, message];
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) parts.push(`${key}=${render(value)}`);
  }
  return parts.join(" ");
}

/** A logger writing to stderr. */
export function createLogger(): Logger {
  const write = (level: string) => (message: string, fields?: LogFields) => {
    console.error(formatLogLine(level, message, fields));
  };
  return { info: write("INFO"), warn: write("WARN"), error: write("ERROR") };
}
