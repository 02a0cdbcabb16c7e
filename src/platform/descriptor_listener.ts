/**
 * A Unix socket that takes one short message with descriptors attached
 * (SCM_RIGHTS) per connection, over libc (FFI): `node:net` cannot receive
 * descriptors on a plain socket, and Deno has no API for them. The caller
 * learns who sent it from the kernel (SO_PEERCRED), owns the descriptors it
 * is handed (received close-on-exec, so no other child inherits them) and
 * answers with one line.
 *
 * Bounded: a message is at most {@link MAX_MESSAGE_BYTES} and
 * {@link MAX_DESCRIPTORS} descriptors, in one `recvmsg` within
 * {@link MESSAGE_DEADLINE_MS}; at most {@link MAX_CONNECTIONS} are handled at
 * once, {@link MAX_CONNECTIONS_PER_UID} of one uid (more are closed at once,
 * so one user cannot take every slot). Linux only; needs `--allow-ffi`.
 *
 * @module
 */

import { type PeerCredentials, peerCredentialsOfFd } from "./peercred.ts";
import { MAX_SOCKET_PATH_BYTES } from "./paths.ts";

/** Largest message taken. */
export const MAX_MESSAGE_BYTES = 1024;
/** Most descriptors taken with one message. */
export const MAX_DESCRIPTORS = 2;
/** Time a connection has to deliver its message. */
export const MESSAGE_DEADLINE_MS = 5_000;
/** Connections handled at once. */
export const MAX_CONNECTIONS = 64;
/** Connections one uid may have handled at once. */
export const MAX_CONNECTIONS_PER_UID = 8;

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const MSG_CTRUNC = 0x8;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const POLLIN = 0x001;
const POLLOUT = 0x004;
/** How often the accept loop looks whether it was closed. */
const ACCEPT_POLL_MS = 250;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: {
    parameters: ["i32", "pointer", "pointer", "i32"],
    result: "i32",
  },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
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

function lib(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return libc.symbols;
}

function errno(): number {
  const pointer = lib().__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

/** Closes a descriptor this process owns. */
export function closeDescriptor(fd: number): void {
  lib().close(fd);
}

/** One message as received. */
export interface DescriptorMessage {
  peer: PeerCredentials;
  /** The message's bytes as text (UTF-8). */
  text: string;
  /** The descriptors that came with it; the handler must close them. */
  fds: number[];
}

/** Answers a message with one line (a `\n` is added). */
export type DescriptorHandler = (message: DescriptorMessage) => Promise<string>;

async function poll(fd: number, events: number, timeoutMs: number) {
  const pollfd = new Uint8Array(8);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  await lib().pollWait(
    pollfd,
    1n,
    Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)),
  );
  return view.getInt16(6, true);
}

/** Receives one message and its descriptors; throws a sentence on failure. */
async function receive(fd: number): Promise<{ text: string; fds: number[] }> {
  const deadline = Date.now() + MESSAGE_DEADLINE_MS;
  const data = new Uint8Array(MAX_MESSAGE_BYTES);
  const iov = new Uint8Array(16);
  const iovView = new DataView(iov.buffer);
  iovView.setBigUint64(0, pointerValue(data), true);
  iovView.setBigUint64(8, BigInt(data.length), true);
  // Room for more descriptors than taken, so that extra ones are seen (and
  // closed) rather than silently dropped by the kernel.
  const control = new Uint8Array(16 + 4 * 8);
  const header = new Uint8Array(56);
  const view = new DataView(header.buffer);
  view.setBigUint64(16, pointerValue(iov), true);
  view.setBigUint64(24, 1n, true);
  view.setBigUint64(32, pointerValue(control), true);
  view.setBigUint64(40, BigInt(control.length), true);
  for (;;) {
    const n = Number(
      lib().recvmsg(fd, header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC),
    );
    if (n >= 0) {
      const fds = descriptorsIn(control, Number(view.getBigUint64(40, true)));
      if (
        view.getInt32(48, true) & MSG_CTRUNC || fds.length > MAX_DESCRIPTORS
      ) {
        fds.forEach(closeDescriptor);
        throw new Error("too many descriptors came with the message.");
      }
      return {
        text: new TextDecoder().decode(data.subarray(0, n)),
        fds,
      };
    }
    const code = errno();
    if (code === 4) continue;
    if (code !== 11) throw new Error(`recvmsg() failed (errno ${code}).`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("no message within the deadline.");
    await poll(fd, POLLIN, left);
  }
}

/** The SCM_RIGHTS descriptors in a received control buffer. */
function descriptorsIn(control: Uint8Array, length: number): number[] {
  const view = new DataView(control.buffer);
  const fds: number[] = [];
  let at = 0;
  while (at + 16 <= length) {
    const cmsgLength = Number(view.getBigUint64(at, true));
    if (cmsgLength < 16 || at + cmsgLength > length) break;
    if (
      view.getInt32(at + 8, true) === SOL_SOCKET &&
      view.getInt32(at + 12, true) === SCM_RIGHTS
    ) {
      for (let i = at + 16; i + 4 <= at + cmsgLength; i += 4) {
        fds.push(view.getInt32(i, true));
      }
    }
    at += Math.ceil(cmsgLength / 8) * 8;
  }
  return fds;
}

async function sendLine(fd: number, line: string): Promise<void> {
  const bytes = new TextEncoder().encode(line + "\n");
  const deadline = Date.now() + MESSAGE_DEADLINE_MS;
  let sent = 0;
  while (sent < bytes.length) {
    const rest = bytes.subarray(sent);
    const n = Number(lib().send(fd, rest, BigInt(rest.length), MSG_NOSIGNAL));
    if (n >= 0) {
      sent += n;
      continue;
    }
    const code = errno();
    if (code === 4) continue;
    if (code !== 11) return; // The caller went away: nothing to tell.
    const left = deadline - Date.now();
    if (left <= 0) return;
    await poll(fd, POLLOUT, left);
  }
}

function pointerValue(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * Listens at `path` (created with `mode`; an old socket there is replaced)
 * and hands each connection's message to `handler`. `close()` stops
 * accepting; connections being handled finish on their own.
 */
export function startDescriptorListener(options: {
  path: string;
  mode: number;
  handler: DescriptorHandler;
  onError: (error: Error) => void;
}): { close(): Promise<void> } {
  const c = lib();
  const path = new TextEncoder().encode(options.path);
  if (path.length > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`the socket path ${options.path} is too long.`);
  }
  const address = new Uint8Array(110);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(path, 2);
  try {
    Deno.removeSync(options.path);
  } catch {
    // None there.
  }
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket() failed (errno ${errno()}).`);
  if (c.bind(fd, address, address.length) !== 0 || c.listen(fd, 64) !== 0) {
    const code = errno();
    c.close(fd);
    throw new Error(`cannot listen at ${options.path} (errno ${code}).`);
  }
  Deno.chmodSync(options.path, options.mode);
  let closed = false;
  let active = 0;
  const perUid = new Map<number, number>();
  const serve = async (conn: number) => {
    let peer: PeerCredentials;
    try {
      peer = peerCredentialsOfFd(conn);
    } catch (error) {
      options.onError(error as Error);
      c.close(conn);
      return;
    }
    const mine = perUid.get(peer.uid) ?? 0;
    if (active >= MAX_CONNECTIONS || mine >= MAX_CONNECTIONS_PER_UID) {
      c.close(conn);
      return;
    }
    active++;
    perUid.set(peer.uid, mine + 1);
    try {
      const message = await receive(conn);
      const answer = await options.handler({ peer, ...message });
      await sendLine(conn, answer);
    } catch (error) {
      options.onError(error as Error);
    } finally {
      active--;
      const left = (perUid.get(peer.uid) ?? 1) - 1;
      if (left > 0) perUid.set(peer.uid, left);
      else perUid.delete(peer.uid);
      c.close(conn);
    }
  };
  const loop = (async () => {
    while (!closed) {
      await poll(fd, POLLIN, ACCEPT_POLL_MS);
      for (;;) {
        const conn = c.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0) break;
        if (closed) {
          c.close(conn);
          continue;
        }
        serve(conn);
      }
    }
    c.close(fd);
  })();
  return {
    close: async () => {
      closed = true;
      await loop;
      try {
        Deno.removeSync(options.path);
      } catch {
        // Gone already.
      }
    },
  };
}
