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

import { MAX_SOCKET_PATH_BYTES } from "./paths.ts";
import { type PeerCredentials, peerCredentialsOfFd } from "./peercred.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const SHUT_RDWR = 2;
const POLLIN = 0x001;
const POLLOUT = 0x004;
/** `sizeof(struct sockaddr_un)`: a 2-byte family and 108 bytes of path. */
const SOCKADDR_UN_SIZE = 110;

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

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  pollWait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

function lib(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return libc.symbols;
}

/**
 * errno of the last failed call on this (the JS) thread. Read right after
 * the call, before anything else can run on the thread.
 */
function errno(): number {
  if (!errnoView) {
    const pointer = lib().__errno_location();
    if (pointer === null) return 0;
    errnoView = new Deno.UnsafePointerView(pointer);
  }
  return errnoView.getInt32();
}

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

function socketAddress(path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `the socket path ${path} is ${bytes.length} bytes, more than the ${MAX_SOCKET_PATH_BYTES} a Unix socket address holds.`,
    );
  }
  if (bytes.includes(0)) throw new Error("a socket path cannot contain NUL.");
  const address = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(bytes, 2);
  return address;
}

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

/**
 * A `struct msghdr` (x86-64 and aarch64 Linux layout) carrying `bytes` and
 * one SCM_RIGHTS control message with `fds`. The returned buffers must stay
 * referenced until the call that uses the header returns.
 */
function descriptorMessage(
  bytes: Uint8Array,
  fds: number[],
): { header: Uint8Array; keep: Uint8Array[] } {
  const payload = bytes.slice();
  const iov = new Uint8Array(16);
  const iovView = new DataView(iov.buffer);
  iovView.setBigUint64(0, pointerValue(payload), true);
  iovView.setBigUint64(8, BigInt(payload.length), true);
  // cmsghdr: u64 length, i32 level, i32 type, then the descriptors,
  // padded to 8 bytes (CMSG_SPACE).
  const dataBytes = 4 * fds.length;
  const control = new Uint8Array(16 + Math.ceil(dataBytes / 8) * 8);
  const controlView = new DataView(control.buffer);
  controlView.setBigUint64(0, BigInt(16 + dataBytes), true);
  controlView.setInt32(8, SOL_SOCKET, true);
  controlView.setInt32(12, SCM_RIGHTS, true);
  fds.forEach((fd, i) => controlView.setInt32(16 + 4 * i, fd, true));
  const header = new Uint8Array(56);
  const view = new DataView(header.buffer);
  view.setBigUint64(16, pointerValue(iov), true);
  view.setBigUint64(24, 1n, true);
  view.setBigUint64(32, pointerValue(control), true);
  view.setBigUint64(40, BigInt(control.length), true);
  return { header, keep: [payload, iov, control] };
}

function pointerValue(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
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
      if ((code === 11 || code === 4) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      c.close(fd);
      throw new UnixSocketError(
        `connect(${path})`,
        code === 11 ? 110 : code,
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
    // Each wait has its own pollfd: a read and a write may wait at once.
    const pollfd = new Uint8Array(8);
    const view = new DataView(pollfd.buffer);
    view.setInt32(0, this.#fd, true);
    view.setInt16(4, events, true);
    this.#polling++;
    try {
      await lib().pollWait(pollfd, 1n, Math.min(remaining, 2 ** 31 - 1));
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
      if (code === 4) continue;
      if (code !== 11) throw new UnixSocketError("recv()", code);
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
      if (code === 4) continue;
      if (code !== 11) throw new UnixSocketError("send()", code);
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
    const message = descriptorMessage(bytes, fds);
    for (;;) {
      if (this.#closed) throw new Error("the socket is closed.");
      const n = Number(lib().sendmsg(this.#fd, message.header, MSG_NOSIGNAL));
      if (n === bytes.length) return;
      if (n >= 0) {
        throw new UnixSocketError("sendmsg() sent part of the message;", 90);
      }
      const code = errno();
      if (code === 4) continue;
      if (code !== 11) throw new UnixSocketError("sendmsg()", code);
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
