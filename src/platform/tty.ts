/**
 * Reading secrets from the user: without echo on a terminal, one per line
 * from standard input otherwise (so scripts and tests can drive the CLI).
 * Secrets are returned as bytes and never pass through a JS string.
 *
 * @module
 */

const MAX_LINE = 4096;

/** True when standard input is a terminal. */
export function stdinIsTerminal(): boolean {
  return Deno.stdin.isTerminal();
}

/**
 * Reads lines from non-terminal standard input as bytes, consuming no more
 * than it needs, so that several readers can share one stream in order.
 */
export class StdinLines {
  #buffer = new Uint8Array(0);
  #ended = false;

  /** The next line without its terminator, or null at end of input. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const newline = this.#buffer.indexOf(0x0a);
      if (newline >= 0) return this.#take(newline, newline + 1);
      if (this.#ended) {
        return this.#buffer.length > 0
          ? this.#take(this.#buffer.length, this.#buffer.length)
          : null;
      }
      if (this.#buffer.length > MAX_LINE) {
        this.wipe();
        throw new Error(
          `an input line is longer than ${MAX_LINE} bytes; pass one value per line.`,
        );
      }
      const chunk = new Uint8Array(1024);
      const n = await Deno.stdin.read(chunk);
      if (n === null) {
        this.#ended = true;
      } else {
        const grown = new Uint8Array(this.#buffer.length + n);
        grown.set(this.#buffer);
        grown.set(chunk.subarray(0, n), this.#buffer.length);
        this.#buffer.fill(0);
        this.#buffer = grown;
      }
      chunk.fill(0);
    }
  }

  #take(end: number, consumed: number): Uint8Array {
    let lineEnd = end;
    if (lineEnd > 0 && this.#buffer[lineEnd - 1] === 0x0d) lineEnd--;
    const line = this.#buffer.slice(0, lineEnd);
    const rest = this.#buffer.slice(consumed);
    this.#buffer.fill(0);
    this.#buffer = rest;
    return line;
  }

  /** Hands over bytes read ahead of the last line (for raw passthrough). */
  takeBuffered(): Uint8Array {
    const rest = this.#buffer;
    this.#buffer = new Uint8Array(0);
    return rest;
  }

  /** Zeroes whatever was read ahead. */
  wipe(): void {
    this.#buffer.fill(0);
    this.#buffer = new Uint8Array(0);
  }
}

/** Reads one line from the terminal with echo off. */
async function promptHidden(prompt: string): Promise<Uint8Array> {
  // Echo goes off before the prompt shows, so nothing typed in reply to
  // it can ever be echoed.
  Deno.stdin.setRaw(true);
  await Deno.stderr.write(new TextEncoder().encode(prompt));
  const collected = new Uint8Array(MAX_LINE);
  let length = 0;
  const one = new Uint8Array(1);
  try {
    for (;;) {
      const n = await Deno.stdin.read(one);
      if (n === null) break;
      const byte = one[0];
      if (byte === 0x0d || byte === 0x0a) break;
      if (byte === 0x03 || byte === 0x04) {
        collected.fill(0);
        throw new Error("input cancelled.");
      }
      if (byte === 0x7f || byte === 0x08) {
        if (length > 0) collected[--length] = 0;
        continue;
      }
      if (length === MAX_LINE) {
        collected.fill(0);
        throw new Error(`input is longer than ${MAX_LINE} bytes.`);
      }
      collected[length++] = byte;
    }
  } finally {
    one.fill(0);
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(new TextEncoder().encode("\n"));
  }
  const line = collected.slice(0, length);
  collected.fill(0);
  return line;
}

/** Reads secrets in order, from the terminal or from standard input lines. */
export class SecretReader {
  #lines = new StdinLines();

  /**
   * Reads one value. On a terminal, `prompt` is shown and nothing echoes;
   * otherwise the next line of standard input is taken. `what` names the
   * value in the error when input ends early.
   */
  async read(prompt: string, what: string): Promise<Uint8Array> {
    if (stdinIsTerminal()) return await promptHidden(prompt);
    const line = await this.#lines.next();
    if (line === null) {
      throw new Error(
        `standard input ended before the ${what}; give it on its own line.`,
      );
    }
    return line;
  }

  /** Zeroes any input read ahead. */
  close(): void {
    this.#lines.wipe();
  }
}
