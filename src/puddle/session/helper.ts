/**
 * The session helper: a detached per-user daemon that holds the unwrapped
 * puddle key in memory and signs through a Unix socket. It scrubs the key
 * and exits on LOCK, when the shell that unlocked disappears, on idle
 * timeout, or on SIGTERM/SIGINT/SIGHUP.
 *
 * @module
 */

import { decodeBase64 } from "../../platform/encoding.ts";
import { pidAlive } from "../../platform/process.ts";
import { removeIfExists, writeTextAtomic } from "../../platform/fs.ts";
import { formatPublicKey, publicKeyFromSeed } from "../../crypto/ed25519.ts";
import { toHex } from "../../crypto/hex.ts";
import { isSignContext, signWithContext } from "../../crypto/signed.ts";
import {
  CONNECTION_IDLE_MS,
  LineSplitter,
  LineTooLongError,
  MAX_SIGN_PAYLOAD,
  parseRequest,
  type SessionResponse,
} from "./protocol.ts";
import { SESSION_SENTINEL } from "./sentinel.ts";
import { checkSessionDir } from "./session_dir.ts";

/** How the helper was started. */
export interface HelperOptions {
  socketPath: string;
  puddleDir: string;
  /** The shell that ran `unlock`; its death locks the session. */
  parentPid: number;
  idleMs: number;
  /** How often the parent's liveness is polled. */
  watchdogMs: number;
  /** Diagnostic log (never given secrets). */
  logPath: string;
}

/** Reads exactly 32 key bytes from standard input and then end of input. */
async function readSeedFromStdin(): Promise<Uint8Array> {
  const buffer = new Uint8Array(33);
  let length = 0;
  for (;;) {
    const n = await Deno.stdin.read(buffer.subarray(length));
    if (n === null) break;
    length += n;
    if (length === buffer.length) break;
  }
  if (length !== 32) {
    buffer.fill(0);
    throw new Error(
      "the session helper expects exactly 32 key bytes on stdin.",
    );
  }
  const seed = buffer.slice(0, 32);
  buffer.fill(0);
  return seed;
}

/** Runs the helper until one of its exit triggers fires. */
export async function runSessionHelper(options: HelperOptions): Promise<void> {
  const log = (level: string, message: string) => {
    try {
      Deno.writeTextFileSync(
        options.logPath,
        `${new Date().toISOString()} ${level} pid=${Deno.pid} ${message}\n`,
        { append: true, create: true, mode: 0o600 },
      );
    } catch {
      // Logging must never take the helper down.
    }
  };
  const ready = (line: string) => {
    try {
      Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
    } catch {
      // The unlocking process may already be gone.
    }
  };

  let seed: Uint8Array;
  try {
    seed = await readSeedFromStdin();
  } catch (error) {
    ready(`error ${(error as Error).message}`);
    return;
  }
  const pubkey = formatPublicKey(publicKeyFromSeed(seed));
  const startedAt = new Date();
  let lastActivity = Date.now();
  let listener: Deno.Listener<Deno.UnixConn>;
  try {
    // `unlock` made the directory; listen only if it is still ours alone.
    checkSessionDir(
      options.socketPath.slice(0, options.socketPath.lastIndexOf("/")),
      Deno.uid() ?? 0,
    );
    removeIfExists(options.socketPath);
    listener = Deno.listen({ transport: "unix", path: options.socketPath });
    Deno.chmodSync(options.socketPath, 0o600);
    writeTextAtomic(
      `${options.puddleDir}/${SESSION_SENTINEL}`,
      `${Deno.pid}\n`,
      0o600,
    );
  } catch (error) {
    seed.fill(0);
    ready(
      `error could not start the session socket: ${(error as Error).message}`,
    );
    return;
  }

  let stopping = false;
  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    seed.fill(0);
    log("INFO", `locking: ${reason}`);
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    removeIfExists(options.socketPath);
    try {
      const sentinel = `${options.puddleDir}/${SESSION_SENTINEL}`;
      if (Deno.readTextFileSync(sentinel).trim() === String(Deno.pid)) {
        removeIfExists(sentinel);
      }
    } catch {
      // No sentinel, or not ours.
    }
    Deno.exit(0);
  };

  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    Deno.addSignalListener(signal, () => stop(`signal ${signal}`));
  }
  let lastWatchdog = Date.now();
  setInterval(() => {
    const now = Date.now();
    if (now - lastActivity >= options.idleMs) stop("idle timeout");
    if (now - lastWatchdog >= options.watchdogMs) {
      lastWatchdog = now;
      if (!pidAlive(options.parentPid)) {
        stop(`parent shell ${options.parentPid} is gone`);
      }
    }
  }, Math.min(1000, options.watchdogMs, options.idleMs));

  const respond = (
    parsed: ReturnType<typeof parseRequest>,
  ): SessionResponse => {
    if ("error" in parsed) return { ok: false, error: parsed.error };
    switch (parsed.op) {
      case "PUBKEY":
        return { ok: true, pubkey };
      case "STATUS": {
        lastActivity = Date.now();
        return {
          ok: true,
          pid: Deno.pid,
          pubkey,
          started_at: startedAt.toISOString(),
          idle_timeout_s: Math.round(options.idleMs / 1000),
          idle_remaining_s: Math.round(options.idleMs / 1000),
          parent_pid: options.parentPid,
        };
      }
      case "SIGN": {
        if (!isSignContext(parsed.context)) {
          return { ok: false, error: "unknown signing context." };
        }
        let payload: Uint8Array;
        try {
          payload = decodeBase64(parsed.payload);
        } catch {
          return { ok: false, error: "payload is not valid base64." };
        }
        if (payload.length > MAX_SIGN_PAYLOAD) {
          return {
            ok: false,
            error: `payload exceeds ${MAX_SIGN_PAYLOAD} bytes.`,
          };
        }
        lastActivity = Date.now();
        return {
          ok: true,
          signature: toHex(signWithContext(seed, parsed.context, payload)),
        };
      }
      case "LOCK":
        return { ok: true };
    }
  };

  const encoder = new TextEncoder();
  const writeAll = async (conn: Deno.UnixConn, bytes: Uint8Array) => {
    let written = 0;
    while (written < bytes.length) {
      written += await conn.write(bytes.subarray(written));
    }
  };
  const closeQuietly = (conn: Deno.UnixConn) => {
    try {
      conn.close();
    } catch {
      // Closed by the timer, the peer or an earlier error.
    }
  };

  /**
   * Serves one connection. Whatever its client does (hang up before the
   * answer, send garbage or an oversized line, go quiet), only this
   * connection ends: every error stays inside this function.
   */
  const serve = async (conn: Deno.UnixConn) => {
    const splitter = new LineSplitter();
    const buffer = new Uint8Array(16 * 1024);
    let timer = setTimeout(() => closeQuietly(conn), CONNECTION_IDLE_MS);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let lines: Uint8Array[];
        try {
          lines = splitter.push(buffer.subarray(0, n));
        } catch (error) {
          if (!(error instanceof LineTooLongError)) throw error;
          const refusal: SessionResponse = {
            ok: false,
            error: `${error.message} The connection is closed.`,
          };
          log("WARN", "closed a connection that sent an oversized line");
          await writeAll(conn, encoder.encode(JSON.stringify(refusal) + "\n"))
            .catch(() => {});
          break;
        }
        for (const line of lines) {
          clearTimeout(timer);
          timer = setTimeout(() => closeQuietly(conn), CONNECTION_IDLE_MS);
          const request = parseRequest(new TextDecoder().decode(line));
          const response = respond(request);
          const locking = "op" in request && request.op === "LOCK";
          try {
            await writeAll(
              conn,
              encoder.encode(JSON.stringify(response) + "\n"),
            );
          } finally {
            // A LOCK is honoured even when its client hung up early.
            if (locking) stop("lock requested");
          }
        }
      }
    } catch (error) {
      if (!stopping) {
        log("INFO", `connection ended early: ${(error as Error).message}`);
      }
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
    }
  };

  log("INFO", `unlocked ${pubkey}, parent ${options.parentPid}`);
  ready(`ready ${Deno.pid}`);
  for (;;) {
    let conn: Deno.UnixConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (stopping) return;
      // A client that vanished between connect and accept costs only its
      // own connection; a closed listener ends the helper.
      if (error instanceof Deno.errors.BadResource) {
        stop("the socket was closed");
        return;
      }
      log("WARN", `accept failed: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      continue;
    }
    serve(conn).catch(() => {});
  }
}
