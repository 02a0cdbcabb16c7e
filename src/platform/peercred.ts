/**
 * The kernel's word on who is at the other end of a Unix socket
 * (SO_PEERCRED). Deno has no API for it, so this reads it with getsockopt
 * through FFI from the descriptor of a `node:net` socket. Linux only; needs
 * `--allow-ffi`.
 *
 * @module
 */

import type { Socket } from "node:net";

/** The credentials of the process that connected. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let libc:
  | Deno.DynamicLibrary<{
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"];
      result: "i32";
    };
  }>
  | undefined;

function getsockopt() {
  libc ??= Deno.dlopen("libc.so.6", {
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"],
      result: "i32",
    },
  });
  return libc.symbols.getsockopt;
}

/** Reads SO_PEERCRED from a raw socket descriptor. */
export function peerCredentialsOfFd(fd: number): PeerCredentials {
  const cred = new Uint8Array(12);
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, cred.length, true);
  const rc = getsockopt()(fd, SOL_SOCKET, SO_PEERCRED, cred, length);
  if (rc !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed on descriptor ${fd}.`);
  }
  const view = new DataView(cred.buffer);
  return {
    pid: view.getInt32(0, true),
    uid: view.getUint32(4, true),
    gid: view.getUint32(8, true),
  };
}

/** The descriptor of a `node:net` socket, or null when it exposes none. */
export function socketDescriptor(socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : null;
}

/** The peer of an accepted `node:net` Unix-socket connection. */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = socketDescriptor(socket);
  if (fd === null) {
    throw new Error(
      "this socket exposes no descriptor to ask the kernel about.",
    );
  }
  return peerCredentialsOfFd(fd);
}
