/**
 * Unix stream sockets through libc (FFI), for what Deno has no API for:
 * the peer's credentials and passing descriptors (SCM_RIGHTS). The one
 * place that knows the C layouts: `sockaddr_un`, `msghdr`, `iovec`,
 * `cmsghdr` (x86-64 and aarch64 Linux). `unix_socket.ts` (a client) and
 * `descriptor_listener.ts` (a listener) are built on it. Linux only; needs
 * `--allow-ffi`.
 *
 * @module
 */

import { MAX_SOCKET_PATH_BYTES } from "./paths.ts";

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_DONTWAIT = 0x40;
export const MSG_CTRUNC = 0x8;
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const SHUT_RDWR = 2;
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
/** errno values this layer acts on. */
export const EINTR = 4;
export const EAGAIN = 11;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
/** `sizeof(struct sockaddr_un)`: a 2-byte family and 108 bytes of path. */
const SOCKADDR_UN_SIZE = 110;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: {
    parameters: ["i32", "pointer", "pointer", "i32"],
    result: "i32",
  },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
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

/** The libc functions (loaded on first use). */
export function libcSockets(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return libc.symbols;
}

/**
 * errno of the last failed call on this (the JS) thread. Read right after
 * the call, before anything else can run on the thread.
 */
export function errno(): number {
  if (!errnoView) {
    const pointer = libcSockets().__errno_location();
    if (pointer === null) return 0;
    errnoView = new Deno.UnsafePointerView(pointer);
  }
  return errnoView.getInt32();
}

/**
 * Waits, on a worker thread, until `fd` has `events` or `timeoutMs` passed;
 * resolves to the events that occurred.
 */
export async function pollOnce(
  fd: number,
  events: number,
  timeoutMs: number,
): Promise<number> {
  // Each wait has its own pollfd: a read and a write may wait at once.
  const pollfd = new Uint8Array(8);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  await libcSockets().pollWait(
    pollfd,
    1n,
    Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)),
  );
  return view.getInt16(6, true);
}

/** A `sockaddr_un` for `path`; throws a sentence when it cannot be one. */
export function socketAddress(path: string): Uint8Array {
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

function pointerValue(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * A `struct msghdr` over one buffer `data` and a control buffer. The
 * buffers in `keep` must stay referenced until the call using `header`
 * returns; after a `recvmsg`, {@link receivedControl} reads it back.
 */
export interface MessageHeader {
  header: Uint8Array;
  keep: Uint8Array[];
}

/** A header for `data` with `control` as its control buffer. */
export function messageHeader(
  data: Uint8Array,
  control: Uint8Array,
): MessageHeader {
  const iov = new Uint8Array(16);
  const iovView = new DataView(iov.buffer);
  iovView.setBigUint64(0, pointerValue(data), true);
  iovView.setBigUint64(8, BigInt(data.length), true);
  const header = new Uint8Array(56);
  const view = new DataView(header.buffer);
  view.setBigUint64(16, pointerValue(iov), true);
  view.setBigUint64(24, 1n, true);
  view.setBigUint64(32, pointerValue(control), true);
  view.setBigUint64(40, BigInt(control.length), true);
  return { header, keep: [data, iov, control] };
}

/** A control buffer holding one SCM_RIGHTS message with `fds`. */
export function rightsControl(fds: number[]): Uint8Array {
  // cmsghdr: u64 length, i32 level, i32 type, then the descriptors,
  // padded to 8 bytes (CMSG_SPACE).
  const dataBytes = 4 * fds.length;
  const control = new Uint8Array(16 + Math.ceil(dataBytes / 8) * 8);
  const view = new DataView(control.buffer);
  view.setBigUint64(0, BigInt(16 + dataBytes), true);
  view.setInt32(8, SOL_SOCKET, true);
  view.setInt32(12, SCM_RIGHTS, true);
  fds.forEach((fd, i) => view.setInt32(16 + 4 * i, fd, true));
  return control;
}

/**
 * After a `recvmsg` with `message`: the descriptors received and whether
 * the kernel truncated the control data (then some were dropped).
 */
export function receivedControl(
  message: MessageHeader,
): { fds: number[]; truncated: boolean } {
  const view = new DataView(message.header.buffer);
  const length = Number(view.getBigUint64(40, true));
  const truncated = (view.getInt32(48, true) & MSG_CTRUNC) !== 0;
  const control = message.keep[2];
  const cview = new DataView(control.buffer);
  const fds: number[] = [];
  let at = 0;
  while (at + 16 <= length) {
    const cmsgLength = Number(cview.getBigUint64(at, true));
    if (cmsgLength < 16 || at + cmsgLength > length) break;
    if (
      cview.getInt32(at + 8, true) === SOL_SOCKET &&
      cview.getInt32(at + 12, true) === SCM_RIGHTS
    ) {
      for (let i = at + 16; i + 4 <= at + cmsgLength; i += 4) {
        fds.push(cview.getInt32(i, true));
      }
    }
    at += Math.ceil(cmsgLength / 8) * 8;
  }
  return { fds, truncated };
}
