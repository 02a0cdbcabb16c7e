/**
 * Client side of the session helper protocol, used by the CLI, the git
 * remote helper and every subsystem that signs with the puddle key.
 *
 * Before a byte is sent, the client makes sure the helper is the caller's
 * own: the socket's directory must be a real directory owned by the
 * expected user with mode 0700 (no symbolic link), and the kernel must
 * report (SO_PEERCRED) that the listening process runs as that user.
 * Before the first signature on a connection it also checks that the
 * helper's public key is the one in the user's `identity.pub`.
 *
 * @module
 */

import { encodeBase64 } from "../../platform/encoding.ts";
import { userPaths } from "../../platform/paths.ts";
import {
  UnixSocketClient,
  UnixSocketError,
} from "../../platform/unix_socket.ts";
import { fromHex, toHex } from "../../crypto/hex.ts";
import type { SignContext } from "../../crypto/signed.ts";
import { exists, readFileBounded } from "../../platform/fs.ts";
import {
  LineSplitter,
  type SessionRequest,
  type SessionResponse,
  type SessionStatus,
} from "./protocol.ts";
import { SessionError } from "./errors.ts";
import {
  checkSessionDir,
  checkSessionPeer,
  LOCKED_MESSAGE,
} from "./session_dir.ts";

export { SessionError } from "./errors.ts";

/** Whose helper a client expects, for callers that act for another user. */
export interface SessionClientOptions {
  /**
   * The uid that must own the socket's directory and run the helper.
   * Defaults to the calling process's uid.
   */
  owner?: number;
  /**
   * The puddle directory whose `identity.pub` the helper's key must equal
   * before anything is signed. Defaults to the caller's own
   * (`~/.vigo-puddle`).
   */
  puddleDir?: string;
}

/**
 * An Ed25519 public key as `parsePublicKey` (crypto/ed25519.ts) reads it:
 * `ed25519:` and 64 hex digits, or just the digits; null if malformed.
 * Not imported from there, like {@link readIdentityPub}: ed25519.ts loads
 * the curve arithmetic (about 3 ms of start-up), which a client that only
 * compares keys does not need.
 */
function keyBytes(text: string): Uint8Array | null {
  const trimmed = text.trim();
  const hex = trimmed.startsWith("ed25519:") ? trimmed.slice(8) : trimmed;
  return /^[0-9a-fA-F]{64}$/.test(hex) ? fromHex(hex) : null;
}

const formatKey = (key: Uint8Array) => `ed25519:${toHex(key)}`;

/**
 * The user's public key from `identity.pub`, read as `readPublicKey` in
 * puddle/identity.ts reads it (same bound, same errors). Not imported from
 * there: identity.ts loads the wrapping code (hash-wasm, XChaCha20), about
 * 25 ms of start-up that the git remote helper would pay on every fetch.
 */
function readIdentityPub(puddleDir: string): Uint8Array {
  const path = `${puddleDir}/identity.pub`;
  if (!exists(path)) {
    throw new SessionError(
      `no puddle identity here (${path} is missing).`,
      false,
      "run `vigo swarm puddle init` on your first envoy, or `join` from one that has it.",
    );
  }
  const key = keyBytes(new TextDecoder().decode(readFileBounded(path, 256)));
  if (key === null) {
    throw new SessionError(
      `${path} does not hold an ed25519:<hex> public key.`,
      false,
      "restore it from another member envoy.",
    );
  }
  return key;
}

/** How long connecting may wait for a helper whose backlog is full. */
const CONNECT_TIMEOUT_MS = 2_000;

/** The byte stream under a client. */
interface Transport {
  write(bytes: Uint8Array, deadline: number): Promise<void>;
  read(buffer: Uint8Array, deadline: number): Promise<number | null>;
  close(): void;
}

/**
 * Deno's own Unix socket, for systems without SO_PEERCRED (macOS): the
 * directory and key checks still apply there; the peer check does not.
 */
class DenoTransport implements Transport {
  #conn: Deno.UnixConn;
  constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }
  async write(bytes: Uint8Array, deadline: number): Promise<void> {
    await this.#bounded(async () => {
      let written = 0;
      while (written < bytes.length) {
        written += await this.#conn.write(bytes.subarray(written));
      }
    }, deadline);
  }
  read(buffer: Uint8Array, deadline: number): Promise<number | null> {
    return this.#bounded(() => this.#conn.read(buffer), deadline);
  }
  async #bounded<T>(work: () => Promise<T>, deadline: number): Promise<T> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, Math.max(0, deadline - Date.now()));
    try {
      return await work();
    } catch (error) {
      if (timedOut) throw new UnixSocketError("read or write", 110);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

function directoryOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/** Maps a failed connect to what the user should hear. */
function connectError(socketPath: string, error: unknown): Error {
  const code = error instanceof UnixSocketError ? error.code : undefined;
  if (
    code === "ENOENT" || code === "ECONNREFUSED" ||
    error instanceof Deno.errors.NotFound ||
    error instanceof Deno.errors.ConnectionRefused
  ) {
    return new SessionError(LOCKED_MESSAGE, true);
  }
  if (
    code === "EACCES" || code === "EPERM" ||
    error instanceof Deno.errors.PermissionDenied
  ) {
    return new SessionError(
      `permission denied on ${socketPath}; only its owner may use a session.`,
    );
  }
  if (code === "ETIMEDOUT") {
    return new SessionError(
      `the session helper at ${socketPath} accepts no connections.`,
      false,
      "run `vigo swarm puddle lock` and unlock again.",
    );
  }
  // Missing permissions (--allow-ffi) are the launcher's fault: say so as is.
  if (error instanceof Deno.errors.NotCapable) return error;
  return new SessionError(
    `cannot reach the session helper at ${socketPath}: ${
      (error as Error).message
    }`,
  );
}

/** Opens the socket and asks the kernel who serves it. */
async function openTransport(
  socketPath: string,
  owner: number,
): Promise<Transport> {
  if (Deno.build.os !== "linux") {
    return new DenoTransport(
      await Deno.connect({ transport: "unix", path: socketPath }),
    );
  }
  const socket = await UnixSocketClient.connect(socketPath, CONNECT_TIMEOUT_MS);
  try {
    checkSessionPeer(socketPath, owner, socket.peerCredentials());
  } catch (error) {
    socket.close();
    throw error;
  }
  return socket;
}

/** A connection to the session helper; several requests may share it. */
export class SessionClient {
  #transport: Transport;
  #socketPath: string;
  #puddleDir: string | undefined;
  #keyChecked = false;
  #splitter = new LineSplitter();
  #lines: Uint8Array[] = [];
  #buffer = new Uint8Array(16 * 1024);

  private constructor(
    transport: Transport,
    socketPath: string,
    puddleDir: string | undefined,
  ) {
    this.#transport = transport;
    this.#socketPath = socketPath;
    this.#puddleDir = puddleDir;
  }

  /**
   * Connects to the helper at `socketPath` after checking its directory
   * and (on Linux) the uid of the process listening there. A missing
   * directory or socket, or nobody listening, is a locked puddle
   * ({@link SessionError.locked}); anything not the caller's own is refused
   * with a message naming its owner and a hint.
   */
  static async connect(
    socketPath: string,
    options: SessionClientOptions = {},
  ): Promise<SessionClient> {
    const owner = options.owner ?? Deno.uid() ?? 0;
    checkSessionDir(directoryOf(socketPath), owner);
    let transport: Transport;
    try {
      transport = await openTransport(socketPath, owner);
    } catch (error) {
      if (error instanceof SessionError) throw error;
      throw connectError(socketPath, error);
    }
    return new SessionClient(transport, socketPath, options.puddleDir);
  }

  /**
   * Sends one request and waits (up to `timeoutMs`) for its response. A
   * PUBKEY answer is checked against the user's `identity.pub`, and a SIGN
   * is sent only once the helper's key has been checked so.
   */
  async request(
    request: SessionRequest,
    timeoutMs = 5_000,
  ): Promise<SessionResponse> {
    if (request.op === "SIGN" && !this.#keyChecked) {
      const reply = await this.request({ op: "PUBKEY" }, timeoutMs);
      if (!this.#keyChecked) {
        this.close();
        throw new SessionError(
          `the session helper at ${this.#socketPath} did not report its public key${
            reply.ok ? "" : `: ${reply.error}`
          }; nothing was signed.`,
        );
      }
    }
    const response = await this.#roundTrip(request, timeoutMs);
    if (request.op === "PUBKEY" && response.ok && "pubkey" in response) {
      this.#checkKey(response.pubkey);
    }
    return response;
  }

  /** Refuses (and hangs up on) a helper whose key is not the user's. */
  #checkKey(reported: string): void {
    const puddleDir = this.#puddleDir ?? userPaths().puddleDir;
    let expected: Uint8Array;
    try {
      expected = readIdentityPub(puddleDir);
    } catch (error) {
      this.close();
      throw new SessionError(
        `cannot check the session helper's key against yours: ${
          (error as Error).message
        }`,
        false,
        (error as { hint?: string }).hint,
      );
    }
    const actual = typeof reported === "string" ? keyBytes(reported) : null;
    if (
      actual === null || actual.length !== expected.length ||
      actual.some((byte, i) => byte !== expected[i])
    ) {
      this.close();
      throw new SessionError(
        `the session helper at ${this.#socketPath} holds the key ${
          actual ? formatKey(actual) : JSON.stringify(reported)
        }, not yours (${
          formatKey(expected)
        } in ${puddleDir}/identity.pub); nothing was signed.`,
        false,
        "run `vigo swarm puddle lock`, then `vigo swarm puddle unlock`; if that helper is not yours, tell your administrator.",
      );
    }
    this.#keyChecked = true;
  }

  async #roundTrip(
    request: SessionRequest,
    timeoutMs: number,
  ): Promise<SessionResponse> {
    const deadline = Date.now() + timeoutMs;
    try {
      await this.#transport.write(
        new TextEncoder().encode(JSON.stringify(request) + "\n"),
        deadline,
      );
      while (this.#lines.length === 0) {
        const n = await this.#transport.read(this.#buffer, deadline);
        if (n === null) {
          throw new SessionError("the session helper closed the connection.");
        }
        this.#lines.push(...this.#splitter.push(this.#buffer.subarray(0, n)));
      }
    } catch (error) {
      this.close();
      if (error instanceof SessionError) throw error;
      if (error instanceof UnixSocketError && error.code === "ETIMEDOUT") {
        throw new SessionError(
          `no answer from the session helper within ${timeoutMs} ms.`,
        );
      }
      throw new SessionError(
        `no answer from the session helper: ${(error as Error).message}`,
      );
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
    this.#transport.close();
  }
}

/** Opens a connection, sends one request, closes. */
export async function sessionRequest(
  socketPath: string,
  request: SessionRequest,
  timeoutMs = 5_000,
  options: SessionClientOptions = {},
): Promise<SessionResponse> {
  const client = await SessionClient.connect(socketPath, options);
  try {
    return await client.request(request, timeoutMs);
  } finally {
    client.close();
  }
}

/** The helper's status, or null when the puddle is locked. */
export async function sessionStatus(
  socketPath: string,
  options: SessionClientOptions = {},
): Promise<SessionStatus | null> {
  let response: SessionResponse;
  try {
    response = await sessionRequest(
      socketPath,
      { op: "STATUS" },
      2_000,
      options,
    );
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
  options: SessionClientOptions = {},
): Promise<Uint8Array> {
  const client = await SessionClient.connect(socketPath, options);
  try {
    return await client.sign(context, payload);
  } finally {
    client.close();
  }
}
