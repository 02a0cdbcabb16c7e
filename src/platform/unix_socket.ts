/**
 * A Unix stream-socket client over libc (FFI), for callers that must ask the
 * kernel who listens at the other end (SO_PEERCRED) before they trust it.
 *
 * `Deno.connect` returns a `Deno.UnixConn`, which exposes no descriptor to
 * ask about; a `node:net` socket does, but importing `node:net` loads Deno's
 * Node layer (about 17 ms of start-up, paid by the git remote helper on every
 * fetch). This module costs one `dlopen` of libc instead. The socket is
 * non-blocking: reads and writes are tried on the calling thread and only
 * when they would block does `poll(2)` wait, on a worker thread, with the
 * caller's deadline. Linux only; needs `--allow-ffi`.
 *
 * @module
 */

import {
  AF_UNIX,
  EAGAIN,
  EINTR,
  errno,
  libcSockets as lib,
  messageHeader,
  MSG_NOSIGNAL,
  POLLIN,
  pollOnce,
  POLLOUT,
  rightsControl,
  SHUT_RDWR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socketAddress,
} from "./libc_socket.ts";
import { type PeerCredentials, peerCredentialsOfFd } from "./peercred.ts";

/** errno names this module reports; anything else is reported by number. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  11: "EAGAIN",
  13: "EACCES",
  20: "ENOTDIR",
  32: "EPIPE",
  40: "ELOOP",
  91: "EPROTOTYPE",
  104: "ECONNRESET",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
};

/** A failed socket call, with the errno name as `code` (ENOENT, EACCES, …). */
export class UnixSocketError extends Error {
  /** The errno name, or `E<number>`; `ETIMEDOUT` for a missed deadline. */
  readonly code: string;
  constructor(what: string, errnoValue: number) {
    const code = ERRNO_NAMES[errnoValue] ?? `E${errnoValue}`;
    super(`${what} failed (${code}).`);
    this.name = "UnixSocketError";
    this.code = code;
  }
}

/** A connected Unix stream socket with deadline-bounded reads and writes. */
export class UnixSocketClient {
  #fd: number;
  /** Polls waiting on worker threads; close only after they return. */
  #polling = 0;
  #closed = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Connects to the socket at `path`. Fails with a {@link UnixSocketError}
   * whose `code` says why: ENOENT (no socket), ECONNREFUSED (nobody
   * listens), EACCES (the kernel refused us), ETIMEDOUT (backlog full until
   * the deadline).
   */
  static async connect(
    path: string,
    timeoutMs = 5_000,
  ): Promise<UnixSocketClient> {
    const address = socketAddress(path);
    const c = lib();
    const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new UnixSocketError("socket()", errno());
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (c.connect(fd, address, address.length) === 0) {
        return new UnixSocketClient(fd);
      }
      const code = errno();
      // A full backlog answers EAGAIN on a non-blocking Unix socket; the
      // listener may catch up, so retry until the deadline.
      if ((code === EAGAIN || code === EINTR) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      c.close(fd);
      throw new UnixSocketError(
        `connect(${path})`,
        code === EAGAIN ? 110 : code,
      );
    }
  }

  /** The kernel's record of the process that created the listening socket. */
  peerCredentials(): PeerCredentials {
    if (this.#closed) throw new Error("the socket is closed.");
    return peerCredentialsOfFd(this.#fd);
  }

  /** Waits until the socket is readable or writable, or the deadline. */
  async #wait(events: number, deadline: number, what: string): Promise<void> {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new UnixSocketError(what, 110);
    this.#polling++;
    try {
      await pollOnce(this.#fd, events, remaining);
    } finally {
      this.#polling--;
    }
    if (this.#closed) {
      if (this.#polling === 0) lib().close(this.#fd);
      throw new Error("the socket was closed while waiting.");
    }
  }

  /**
   * Reads into `buffer`; returns the byte count, or null at end of stream.
   * Throws a {@link UnixSocketError} (code ETIMEDOUT) at `deadline`.
   */
  async read(buffer: Uint8Array, deadline: number): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw new Error("the socket is closed.");
      const n = Number(lib().recv(this.#fd, buffer, BigInt(buffer.length), 0));
      if (n > 0) return n;
      if (n === 0) return null;
      const code = errno();
      if (code === EINTR) continue;
      if (code !== EAGAIN) throw new UnixSocketError("recv()", code);
      await this.#wait(POLLIN, deadline, "recv()");
    }
  }

  /** Writes all of `bytes`, or throws at `deadline`. Never raises SIGPIPE. */
  async write(bytes: Uint8Array, deadline: number): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      if (this.#closed) throw new Error("the socket is closed.");
      const rest = bytes.subarray(written);
      const n = Number(
        lib().send(this.#fd, rest, BigInt(rest.length), MSG_NOSIGNAL),
      );
      if (n >= 0) {
        written += n;
        continue;
      }
      const code = errno();
      if (code === EINTR) continue;
      if (code !== EAGAIN) throw new UnixSocketError("send()", code);
      await this.#wait(POLLOUT, deadline, "send()");
    }
  }

  /**
   * Sends `bytes` with the descriptors `fds` attached (SCM_RIGHTS): the
   * receiver gets its own copies of them. The whole message goes in one
   * `sendmsg`, so the descriptors travel with its first byte; it must fit
   * the socket's buffer at once (a few hundred bytes do).
   */
  async sendWithDescriptors(
    bytes: Uint8Array,
    fds: number[],
    deadline: number,
  ): Promise<void> {
    const message = messageHeader(bytes.slice(), rightsControl(fds));
    for (;;) {
      if (this.#closed) throw new Error("the socket is closed.");
      const n = Number(lib().sendmsg(this.#fd, message.header, MSG_NOSIGNAL));
      if (n === bytes.length) return;
      if (n >= 0) {
        throw new UnixSocketError("sendmsg() sent part of the message;", 90);
      }
      const code = errno();
      if (code === EINTR) continue;
      if (code !== EAGAIN) throw new UnixSocketError("sendmsg()", code);
      await this.#wait(POLLOUT, deadline, "sendmsg()");
    }
  }

  /**
   * Closes the socket. A read or write waiting in poll is woken by a
   * shutdown and the descriptor is released once it returns, so that the
   * number is never reused under a waiting poll.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#polling > 0) lib().shutdown(this.#fd, SHUT_RDWR);
    else lib().close(this.#fd);
  }
}
