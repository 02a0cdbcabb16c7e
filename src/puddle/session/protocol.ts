/**
 * The session helper's wire protocol: one JSON object per line over a
 * stream Unix socket, a response line for each request line.
 *
 * @module
 */

/** Longest request or response line accepted, in bytes. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Longest payload a SIGN request may carry, in bytes (before base64). */
export const MAX_SIGN_PAYLOAD = 32 * 1024;
/** A connection that sends no complete line for this long is closed. */
export const CONNECTION_IDLE_MS = 5_000;

/** Requests the helper understands. */
export type SessionRequest =
  | { op: "STATUS" }
  | { op: "PUBKEY" }
  | { op: "SIGN"; context: string; payload: string }
  | { op: "LOCK" };

/** What STATUS returns. */
export interface SessionStatus {
  ok: true;
  pid: number;
  pubkey: string;
  started_at: string;
  idle_timeout_s: number;
  idle_remaining_s: number;
  parent_pid: number;
}

/** Every response carries `ok`; failures carry `error`. */
export type SessionResponse =
  | SessionStatus
  | { ok: true; pubkey: string }
  | { ok: true; signature: string }
  | { ok: true }
  | { ok: false; error: string };

/** Parses one request line, or explains what is wrong with it. */
export function parseRequest(line: string): SessionRequest | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: "request is not valid JSON." };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: "request must be a JSON object." };
  }
  const record = value as Record<string, unknown>;
  switch (record.op) {
    case "STATUS":
    case "PUBKEY":
    case "LOCK":
      return { op: record.op };
    case "SIGN":
      if (typeof record.context !== "string") {
        return { error: "SIGN needs a string `context`." };
      }
      if (typeof record.payload !== "string") {
        return { error: "SIGN needs a base64 `payload`." };
      }
      return { op: "SIGN", context: record.context, payload: record.payload };
    default:
      return { error: "unknown op; expected STATUS, PUBKEY, SIGN or LOCK." };
  }
}

/** A line, finished or not, longer than {@link MAX_LINE_BYTES}. */
export class LineTooLongError extends Error {
  constructor() {
    super(`line longer than ${MAX_LINE_BYTES} bytes.`);
    this.name = "LineTooLongError";
  }
}

/**
 * Splits a byte stream into lines (without their `\n`), bounding every
 * line's length: a complete line over {@link MAX_LINE_BYTES} is refused as
 * well as an unfinished one that has grown past it.
 */
export class LineSplitter {
  #pending: Uint8Array = new Uint8Array(0);

  /**
   * Feeds bytes; returns the lines they complete. Throws
   * {@link LineTooLongError} on an oversized line; the splitter (and the
   * connection it reads) is then unusable.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    let joined = chunk;
    if (this.#pending.length > 0) {
      joined = new Uint8Array(this.#pending.length + chunk.length);
      joined.set(this.#pending);
      joined.set(chunk, this.#pending.length);
    }
    const lines: Uint8Array[] = [];
    let start = 0;
    for (;;) {
      const newline = joined.indexOf(0x0a, start);
      if (newline < 0) break;
      if (newline - start > MAX_LINE_BYTES) throw new LineTooLongError();
      lines.push(joined.slice(start, newline));
      start = newline + 1;
    }
    if (joined.length - start > MAX_LINE_BYTES) throw new LineTooLongError();
    this.#pending = joined.slice(start);
    return lines;
  }
}
