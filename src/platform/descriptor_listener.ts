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
import {
  AF_UNIX,
  EAGAIN,
  EINTR,
  errno,
  libcSockets as lib,
  messageHeader,
  MSG_CMSG_CLOEXEC,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  POLLIN,
  pollOnce,
  POLLOUT,
  receivedControl,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socketAddress,
} from "./libc_socket.ts";

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

/** How often the accept loop looks whether it was closed. */
const ACCEPT_POLL_MS = 250;

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

/** Receives one message and its descriptors; throws a sentence on failure. */
async function receive(fd: number): Promise<{ text: string; fds: number[] }> {
  const deadline = Date.now() + MESSAGE_DEADLINE_MS;
  // Room for more descriptors than taken, so that extra ones are seen (and
  // closed) rather than silently dropped by the kernel.
  const message = messageHeader(
    new Uint8Array(MAX_MESSAGE_BYTES),
    new Uint8Array(16 + 4 * 8),
  );
  for (;;) {
    const n = Number(
      lib().recvmsg(fd, message.header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC),
    );
    if (n >= 0) {
      const { fds, truncated } = receivedControl(message);
      if (truncated || fds.length > MAX_DESCRIPTORS) {
        fds.forEach(closeDescriptor);
        throw new Error("too many descriptors came with the message.");
      }
      return {
        text: new TextDecoder().decode(message.keep[0].subarray(0, n)),
        fds,
      };
    }
    const code = errno();
    if (code === EINTR) continue;
    if (code !== EAGAIN) throw new Error(`recvmsg() failed (errno ${code}).`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("no message within the deadline.");
    await pollOnce(fd, POLLIN, left);
  }
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
    if (code === EINTR) continue;
    if (code !== EAGAIN) return; // The caller went away: nothing to tell.
    const left = deadline - Date.now();
    if (left <= 0) return;
    await pollOnce(fd, POLLOUT, left);
  }
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
  const address = socketAddress(options.path);
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
      await pollOnce(fd, POLLIN, ACCEPT_POLL_MS);
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
