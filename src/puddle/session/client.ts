/**
 * Client side of the session helper protocol, used by the CLI and by every
 * subsystem that signs with the puddle key.
 *
 * @module
 */

import { encodeBase64 } from "../../platform/encoding.ts";
import { fromHex } from "../../crypto/hex.ts";
import type { SignContext } from "../../crypto/signed.ts";
import {
  LineSplitter,
  type SessionRequest,
  type SessionResponse,
  type SessionStatus,
} from "./protocol.ts";

/** Raised when the helper cannot be reached or refuses a request. */
export class SessionError extends Error {
  /** True when no helper listens: the puddle is locked. */
  readonly locked: boolean;
  constructor(message: string, locked = false) {
    super(message);
    this.name = "SessionError";
    this.locked = locked;
  }
}

/** A connection to the session helper; several requests may share it. */
export class SessionClient {
  #conn: Deno.UnixConn;
  #splitter = new LineSplitter();
  #lines: Uint8Array[] = [];
  #buffer = new Uint8Array(16 * 1024);

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /** Connects to the helper at `socketPath`. */
  static async connect(socketPath: string): Promise<SessionClient> {
    try {
      return new SessionClient(
        await Deno.connect({ transport: "unix", path: socketPath }),
      );
    } catch (error) {
      if (
        error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.ConnectionRefused
      ) {
        throw new SessionError(
          "the puddle is locked (no session helper is running).",
          true,
        );
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new SessionError(
          `permission denied on ${socketPath}; only its owner may use a session.`,
        );
      }
      throw error;
    }
  }

  /** Sends one request and waits (up to `timeoutMs`) for its response. */
  async request(
    request: SessionRequest,
    timeoutMs = 5_000,
  ): Promise<SessionResponse> {
    await this.#conn.write(
      new TextEncoder().encode(JSON.stringify(request) + "\n"),
    );
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      while (this.#lines.length === 0) {
        const n = await this.#conn.read(this.#buffer);
        if (n === null) {
          throw new SessionError("the session helper closed the connection.");
        }
        this.#lines.push(...this.#splitter.push(this.#buffer.subarray(0, n)));
      }
    } catch (error) {
      if (error instanceof SessionError) throw error;
      throw new SessionError(
        `no answer from the session helper: ${(error as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
    }
    const line = this.#lines.shift()!;
    try {
      return JSON.parse(new TextDecoder().decode(line)) as SessionResponse;
    } catch {
      throw new SessionError("the session helper sent malformed JSON.");
    }
  }

  /** Signs `payload` under `context` with the puddle key. */
  async sign(context: SignContext, payload: Uint8Array): Promise<Uint8Array> {
    const response = await this.request({
      op: "SIGN",
      context,
      payload: encodeBase64(payload),
    });
    if (!response.ok) throw new SessionError(response.error);
    if (!("signature" in response)) {
      throw new SessionError("the session helper's answer has no signature.");
    }
    return fromHex(response.signature);
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Opens a connection, sends one request, closes. */
export async function sessionRequest(
  socketPath: string,
  request: SessionRequest,
  timeoutMs = 5_000,
): Promise<SessionResponse> {
  const client = await SessionClient.connect(socketPath);
  try {
    return await client.request(request, timeoutMs);
  } finally {
    client.close();
  }
}

/** The helper's status, or null when the puddle is locked. */
export async function sessionStatus(
  socketPath: string,
): Promise<SessionStatus | null> {
  let response: SessionResponse;
  try {
    response = await sessionRequest(socketPath, { op: "STATUS" }, 2_000);
  } catch (error) {
    if (error instanceof SessionError && error.locked) return null;
    throw error;
  }
  if (!response.ok || !("pid" in response)) {
    throw new SessionError("the session helper gave an unexpected answer.");
  }
  return response;
}

/** Signs through the helper with a one-off connection. */
export async function signWithSession(
  socketPath: string,
  context: SignContext,
  payload: Uint8Array,
): Promise<Uint8Array> {
  const client = await SessionClient.connect(socketPath);
  try {
    return await client.sign(context, payload);
  } finally {
    client.close();
  }
}
