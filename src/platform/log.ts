/**
 * The agent's log: one line per event on stderr,
 * `<ISO time> <LEVEL> <message> key=value …`, which systemd's journal keeps.
 *
 * Never pass secrets to a logger: no private keys, passphrases, pair codes,
 * seeds or tokens' signatures, not even in error messages. Log who and what
 * (user names, certificate subjects, project ids, paths, statuses) instead.
 *
 * @module
 */

/** Structured fields appended to a line; `undefined` values are left out. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** A leveled logger. Callers never pass secret material (see the module doc). */
export interface Logger {
  /** Normal operation: listening, requests served, deliveries. */
  info(message: string, fields?: LogFields): void;
  /** Something refused or retried that needs no action yet. */
  warn(message: string, fields?: LogFields): void;
  /** A failure an operator should look at. */
  error(message: string, fields?: LogFields): void;
}

/** Escapes control characters so that one event is always one line. */
function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

function render(value: string | number | boolean): string {
  const text = String(value);
  // Bare when unambiguous; otherwise JSON-quoted (which also escapes).
  // deno-lint-ignore no-control-regex
  return /^[^\s"=\u0000-\u001f\u007f]+$/.test(text)
    ? text
    : JSON.stringify(text);
}

/**
 * Formats one log line (without the newline): the time, the level, the
 * message with control characters escaped, then `key=value` for each field,
 * values JSON-quoted when they contain spaces, quotes, `=` or control
 * characters, or are empty.
 */
export function formatLogLine(
  level: string,
  message: string,
  fields: LogFields = {},
): string {
  const parts = [new Date().toISOString(), level, oneLine(message)];
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) parts.push(`${oneLine(key)}=${render(value)}`);
  }
  return parts.join(" ");
}

/**
 * A logger writing to stderr. With `name`, every message is prefixed by
 * `<name>: ` so that lines from one component can be picked out.
 */
export function createLogger(name?: string): Logger {
  const prefix = name ? `${name}: ` : "";
  const write = (level: string) => (message: string, fields?: LogFields) => {
    console.error(formatLogLine(level, prefix + message, fields));
  };
  return { info: write("INFO"), warn: write("WARN"), error: write("ERROR") };
}
