/**
 * Ed25519 keys and signatures with one pinned, strict verification rule.
 *
 * Verification follows RFC 8032 section 5.1.7 with the cofactorless
 * equation `[S]B = R + [k]A`, and additionally requires:
 *
 * - canonical encodings of `A` and `R` (y < p, no "negative zero" x),
 * - `S < L`,
 * - a public key `A` that is not of small order.
 *
 * Every verifier in the project must agree on which signatures are valid, so
 * this is the only verification rule; there is no lenient mode.
 *
 * The checks on encodings, `S` and small-order keys run here, on bytes; the
 * equation runs in a {@link VerifyEngine}. The default engine is pure
 * JavaScript (noble). Long-running daemons, which verify in bulk, switch to
 * the native engine of `ed25519_native.ts` at start-up; it is not the
 * default because loading `node:crypto` costs short-lived faces (the git
 * remote helper) about 20 ms of start-up. Both engines refuse exactly the
 * same signatures (tests run every strictness case through each).
 *
 * @module
 */

import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";
import { fromHex, toHex } from "./hex.ts";

// noble's synchronous API needs a SHA-512 implementation wired in.
ed.hashes.sha512 = sha512;

/** Length in bytes of an Ed25519 secret seed. */
export const SEED_LENGTH = 32;
/** Length in bytes of an encoded Ed25519 public key. */
export const PUBLIC_KEY_LENGTH = 32;
/** Length in bytes of an Ed25519 signature (`R ‖ S`). */
export const SIGNATURE_LENGTH = 64;
/** Prefix used by {@linkcode formatPublicKey}. */
export const PUBLIC_KEY_PREFIX = "ed25519:";

// Order of the prime-order subgroup.
const L = ed.Point.CURVE().n;

/**
 * The eight points of small order, in their canonical encodings. A key that
 * passed {@link isCanonicalPoint} is of small order exactly when it is one
 * of these.
 */
export const SMALL_ORDER_ENCODINGS: readonly string[] = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/**
 * Where the cofactorless equation `[S]B = R + [k]A` is checked, once the
 * bytes passed the strict checks (canonical `A`, `A` not of small order,
 * `S < L`). An engine must refuse any `R` that is not the canonical encoding
 * of a point, and any `A` that is not on the curve.
 */
export interface VerifyEngine {
  /** For benchmarks and messages. */
  name: string;
  /** True when the equation holds for these (length-checked) bytes. */
  equationHolds(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
  ): boolean;
}

/** The pure-JavaScript engine (noble), the default. */
export const PURE_JS_ENGINE: VerifyEngine = {
  name: "pure JavaScript (noble)",
  equationHolds: (publicKey, message, signature) =>
    cofactorlessEquationHolds(publicKey, message, signature),
};

let engine: VerifyEngine = PURE_JS_ENGINE;

/** Makes {@link verifyBytes} check the equation with `next`. */
export function useVerifyEngine(next: VerifyEngine): void {
  engine = next;
}

/** The engine {@link verifyBytes} uses now. */
export function verifyEngine(): VerifyEngine {
  return engine;
}

/**
 * Generates a fresh 32-byte Ed25519 seed from the platform CSPRNG.
 *
 * @returns A new seed. The caller owns it and should `.fill(0)` it when done.
 */
export function generateSeed(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SEED_LENGTH));
}

/**
 * Derives the 32-byte public key for a seed (RFC 8032 section 5.1.5).
 *
 * @param seed The 32-byte secret seed.
 * @returns The encoded public key.
 * @throws {RangeError} If the seed is not 32 bytes.
 */
export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  assertSeed(seed);
  return ed.getPublicKey(seed);
}

/**
 * Signs a message with a seed (RFC 8032 section 5.1.6, deterministic).
 *
 * @param seed The 32-byte secret seed.
 * @param message The bytes to sign.
 * @returns The 64-byte signature.
 * @throws {RangeError} If the seed is not 32 bytes.
 */
export function signBytes(seed: Uint8Array, message: Uint8Array): Uint8Array {
  assertSeed(seed);
  if (!(message instanceof Uint8Array)) {
    throw new TypeError(
      "Cannot sign: the message must be a Uint8Array. Encode text with TextEncoder first.",
    );
  }
  return ed.sign(message, seed);
}

/**
 * Verifies a signature under the project's strict rule (see the module
 * documentation). Never throws: malformed input of any kind, including wrong
 * lengths or non-`Uint8Array` values, yields `false`.
 *
 * @param publicKey The 32-byte public key.
 * @param message The signed bytes.
 * @param signature The 64-byte signature.
 * @returns `true` only if the signature is valid.
 */
export function verifyBytes(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (
    !(publicKey instanceof Uint8Array) ||
    !(message instanceof Uint8Array) ||
    !(signature instanceof Uint8Array) ||
    publicKey.length !== PUBLIC_KEY_LENGTH ||
    signature.length !== SIGNATURE_LENGTH
  ) {
    return false;
  }
  if (
    !scalarBelowOrder(signature.subarray(32)) ||
    !isCanonicalPoint(publicKey) ||
    SMALL_ORDER_ENCODINGS.includes(toHex(publicKey))
  ) {
    return false;
  }
  try {
    return engine.equationHolds(publicKey, message, signature);
  } catch {
    return false;
  }
}

/**
 * True when 32 bytes are a canonical point encoding as far as bytes tell:
 * `y < p`, and no "negative zero" (x = 0, which only y = ±1 have, with the
 * sign bit set). Whether `y` is on the curve takes the engine's decoding.
 */
export function isCanonicalPoint(bytes: Uint8Array): boolean {
  // y ≥ p = 2^255 - 19 only for 0xed..0xff, 0xff × 30, 0x7f (sign aside).
  let allOnes = (bytes[31] & 0x7f) === 0x7f;
  for (let i = 1; i < 31 && allOnes; i++) allOnes = bytes[i] === 0xff;
  if (allOnes && bytes[0] >= 0xed) return false;
  if (bytes[31] & 0x80) {
    const hex = toHex(bytes);
    // y = 1 and y = p - 1 (x = 0) with the sign bit set.
    if (
      hex ===
        "0100000000000000000000000000000000000000000000000000000000000080" ||
      hex === "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    ) {
      return false;
    }
  }
  return true;
}

/** True when a 32-byte little-endian scalar is below the group order L. */
function scalarBelowOrder(bytes: Uint8Array): boolean {
  return bytesToBigIntLE(bytes) < L;
}

/**
 * Formats a public key as `ed25519:` followed by 64 lowercase hex digits.
 *
 * @param publicKey The 32-byte public key.
 * @returns The text form, e.g. `ed25519:d75a98…511a`.
 * @throws {RangeError} If the key is not 32 bytes.
 */
export function formatPublicKey(publicKey: Uint8Array): string {
  if (
    !(publicKey instanceof Uint8Array) ||
    publicKey.length !== PUBLIC_KEY_LENGTH
  ) {
    throw new RangeError(
      `Cannot format the public key: it must be ${PUBLIC_KEY_LENGTH} bytes. Pass the key returned by publicKeyFromSeed().`,
    );
  }
  return PUBLIC_KEY_PREFIX + toHex(publicKey);
}

/**
 * Parses a public key written as `ed25519:<64 hex>` or as bare 64 hex digits.
 * Surrounding whitespace is ignored; hex digits may be upper- or lowercase.
 *
 * This checks the text form only. Whether the key can ever verify (a
 * canonical, non-small-order point) is decided by {@linkcode verifyBytes}.
 *
 * @param text The text to parse.
 * @returns The 32-byte public key.
 * @throws {SyntaxError} If the text is not in either form.
 */
export function parsePublicKey(text: string): Uint8Array {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse the public key: expected a string.");
  }
  const trimmed = text.trim();
  const hex = trimmed.startsWith(PUBLIC_KEY_PREFIX)
    ? trimmed.slice(PUBLIC_KEY_PREFIX.length)
    : trimmed;
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new SyntaxError(
      `Cannot parse the public key "${
        preview(trimmed)
      }": expected "ed25519:" followed by 64 hex digits, or just the 64 hex digits. Copy the key again from the output of the command that printed it.`,
    );
  }
  return fromHex(hex);
}

function assertSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LENGTH) {
    throw new RangeError(
      `The Ed25519 seed must be a ${SEED_LENGTH}-byte Uint8Array. Use generateSeed() or unwrap the stored identity.`,
    );
  }
}

// RFC 8032 permits either equation; we pin the cofactorless one so that a
// signature whose R carries a small-order component is rejected everywhere.
function cofactorlessEquationHolds(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  const rBytes = signature.subarray(0, 32);
  const s = bytesToBigIntLE(signature.subarray(32, 64));
  if (s >= L) return false;
  // Strict decoding (zip215 off) refuses non-canonical encodings of A and R.
  const a = ed.Point.fromBytes(publicKey, false);
  const r = ed.Point.fromBytes(rBytes, false);
  if (a.isSmallOrder()) return false;
  const k = ed.etc.mod(
    bytesToBigIntLE(sha512(ed.etc.concatBytes(rBytes, publicKey, message))),
    L,
  );
  const sB = ed.Point.BASE.multiply(s, false);
  return sB.equals(r.add(a.multiply(k, false)));
}

function bytesToBigIntLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) {
    n = (n << 8n) | BigInt(bytes[i]);
  }
  return n;
}

function preview(text: string): string {
  return text.length > 80 ? text.slice(0, 77) + "..." : text;
}
