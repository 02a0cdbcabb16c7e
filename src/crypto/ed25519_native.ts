/**
 * The native Ed25519 engine: the curve arithmetic of Deno's `node:crypto`,
 * behind the byte checks of ed25519.ts, so the strict rule stays ours.
 * `node:crypto` compares the encoding of `[S]B - [k]A` with `R` (the
 * cofactorless equation, which also refuses any non-canonical `R`) and
 * refuses keys that are not on the curve; ed25519.ts has already refused
 * non-canonical and small-order keys and `S ≥ L`. The tests run every
 * strictness case through this engine too.
 *
 * Daemons call {@link useNativeVerification} at start-up; importing this
 * module loads Deno's Node layer, which short-lived faces avoid.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { toHex } from "./hex.ts";
import { useVerifyEngine, type VerifyEngine } from "./ed25519.ts";

// An Ed25519 SubjectPublicKeyInfo is this DER prefix and the 32 key bytes.
const SPKI_PREFIX = new Uint8Array([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x03,
  0x21,
  0x00,
]);
/** Key objects kept: the same few keys sign most of what an envoy checks. */
const MAX_CACHED_KEYS = 4096;
const keys = new Map<string, KeyObject>();

/** The `node:crypto` key object of a raw 32-byte public key (cached). */
export function keyObject(publicKey: Uint8Array): KeyObject {
  const id = toHex(publicKey);
  let key = keys.get(id);
  if (!key) {
    const der = new Uint8Array(SPKI_PREFIX.length + 32);
    der.set(SPKI_PREFIX);
    der.set(publicKey, SPKI_PREFIX.length);
    key = createPublicKey({
      key: Buffer.from(der.buffer),
      format: "der",
      type: "spki",
    });
    if (keys.size >= MAX_CACHED_KEYS) keys.clear();
    keys.set(id, key);
  }
  return key;
}

/** The engine. */
export const NATIVE_ENGINE: VerifyEngine = {
  name: "native (node:crypto)",
  equationHolds: (publicKey, message, signature) =>
    verify(null, message, keyObject(publicKey), signature),
};

/** Makes every strict verification in this process use the native engine. */
export function useNativeVerification(): void {
  useVerifyEngine(NATIVE_ENGINE);
}
