/**
 * Project identity: `project_id = sha256(founder pubkey ‖ handle)` and the
 * `gitback://<project_id>/<handle>` URL.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../crypto/hex.ts";

/** 1–64 of `A-Za-z0-9._-`, not starting with a dot. */
export const HANDLE_PATTERN = /^(?!\.)[A-Za-z0-9._-]{1,64}$/;
const PROJECT_ID = /^[0-9a-f]{64}$/;

/** Throws a clear error unless `handle` is a valid project handle. */
export function validateHandle(handle: string): void {
  if (!HANDLE_PATTERN.test(handle)) {
    throw new Error(
      `${
        JSON.stringify(handle)
      } is not a valid handle: use 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot.`,
    );
  }
}

/** Lowercase hex sha256 of the raw 32-byte key followed by the UTF-8 handle. */
export async function projectId(
  founderPublicKey: Uint8Array,
  handle: string,
): Promise<string> {
  validateHandle(handle);
  const handleBytes = new TextEncoder().encode(handle);
  const input = new Uint8Array(founderPublicKey.length + handleBytes.length);
  input.set(founderPublicKey);
  input.set(handleBytes, founderPublicKey.length);
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", input)));
}

/**
 * {@link projectId}, computed synchronously (for verifiers that must not
 * wait, such as those reading a file on every connection).
 */
export function projectIdSync(
  founderPublicKey: Uint8Array,
  handle: string,
): string {
  validateHandle(handle);
  const handleBytes = new TextEncoder().encode(handle);
  const input = new Uint8Array(founderPublicKey.length + handleBytes.length);
  input.set(founderPublicKey);
  input.set(handleBytes, founderPublicKey.length);
  return toHex(sha256(input));
}

/** `gitback://<project_id>/<handle>`. */
export function formatProjectUrl(id: string, handle: string): string {
  return `gitback://${id}/${handle}`;
}

/** A parsed URL: by id (self-certifying) or by friendly name (a hint). */
export type ProjectUrl = { id: string; handle: string } | {
  name: string;
  handle: string;
};

/** Parses `gitback://<project_id or name>/<handle>`. */
export function parseProjectUrl(url: string): ProjectUrl {
  const match = /^gitback:\/\/([^/]+)\/([^/]+?)(?:\.git)?\/?$/.exec(url);
  if (!match) {
    throw new Error(
      `${url} is not a gitback URL; expected gitback://<project_id>/<handle>.`,
    );
  }
  const [, host, handle] = match;
  validateHandle(handle);
  if (PROJECT_ID.test(host)) return { id: host, handle };
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(host)) {
    throw new Error(
      `${url}: ${
        JSON.stringify(host)
      } is neither a project id nor a friendly name.`,
    );
  }
  return { name: host, handle };
}
