/**
 * The one codec of signed objects: tokens, envelopes, ref states, member
 * bindings and scope statements all travel as
 * `{"body": "<base64 of the exact body bytes>", "sig": "<128 hex>"}`, where
 * the body is RFC 8785 canonical JSON, the signature is made under a named
 * context ({@linkcode SIGN_CONTEXTS}) and the object's id is the SHA-256 of
 * the body bytes.
 *
 * This module encodes, decodes and verifies that form; each kind of object
 * keeps its own body type, field checks and error messages, mapping a
 * {@linkcode SignedObjectError} to its own refusal.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import { canonicalBytes } from "./canonical.ts";
import { publicKeyFromSeed } from "./ed25519.ts";
import { fromHex, toHex } from "./hex.ts";
import {
  type SignContext,
  signWithContext,
  verifyWithContext,
} from "./signed.ts";

/** Something that signs with a puddle key: a seed in tests, the session helper in use. */
export interface Signer {
  publicKey: Uint8Array;
  sign(context: SignContext, body: Uint8Array): Promise<Uint8Array>;
}

/** A signer holding a raw seed (tests and tooling). */
export function seedSigner(seed: Uint8Array): Signer {
  return {
    publicKey: publicKeyFromSeed(seed),
    sign: (context, body) =>
      Promise.resolve(signWithContext(seed, context, body)),
  };
}

/** A signed object as it travels and is stored. */
export interface SignedObject {
  /** Standard padded base64 of the canonical body bytes. */
  body: string;
  /** The Ed25519 signature, 128 lowercase hex digits. */
  sig: string;
}

/** A signed object decoded and checked for form (not yet for signature). */
export interface DecodedObject<T> {
  /** Exactly `{body, sig}` of the input. */
  wire: SignedObject;
  /** The body bytes, canonical JSON. */
  bytes: Uint8Array;
  /** The body, as the caller's check returned it. */
  body: T;
  /** The 64 signature bytes. */
  signature: Uint8Array;
  /** {@linkcode signedObjectId} of the body bytes. */
  id: string;
}

/**
 * Why a wire form was refused, in the order the checks run: `shape` (not an
 * object with string `body` and `sig`, or other fields), `too-large`,
 * `signature` (not 128 lowercase hex digits), `base64`, `json` (not UTF-8
 * JSON), `not-object` (the body is not a JSON object), then the caller's
 * field check, then `not-i-json` (RFC 8785 cannot encode the body; `cause`
 * holds the encoder's error) and `not-canonical`.
 */
export type SignedObjectErrorReason =
  | "shape"
  | "too-large"
  | "signature"
  | "base64"
  | "json"
  | "not-object"
  | "not-i-json"
  | "not-canonical";

const MESSAGES: Record<SignedObjectErrorReason, string> = {
  "shape": 'a signed object must be {"body": "<base64>", "sig": "<hex>"}.',
  "too-large": "the signed object is too large.",
  "signature": "the signature is not 128 hex digits.",
  "base64": "the body is not base64.",
  "json": "the body is not UTF-8 JSON.",
  "not-object": "the body is not a JSON object.",
  "not-i-json": "the body is not I-JSON (RFC 8785 cannot encode it).",
  "not-canonical": "the body is not in canonical (RFC 8785) form.",
};

/**
 * One refusal sentence per reason for a format's wire objects, named by
 * `noun` ("tombstone": "a tombstone's body is not base64."), for a
 * decoder's `refuse`. `article` starts every sentence but the first.
 */
export function refusalMessages(
  noun: string,
  maxBodyChars: number,
  article = "a",
): Record<SignedObjectErrorReason, string> {
  const subject = `${article} ${noun}`;
  return {
    "shape": `a ${noun} must be {"body": "<base64>", "sig": "<hex>"}.`,
    "too-large": `${subject} is larger than ${maxBodyChars} characters.`,
    "signature": `${subject}'s signature is not 128 hex digits.`,
    "base64": `${subject}'s body is not base64.`,
    "json": `${subject}'s body is not UTF-8 JSON.`,
    "not-object": `${subject}'s body is not an object.`,
    "not-i-json": `${subject}'s body is not in canonical form.`,
    "not-canonical": `${subject}'s body is not in canonical form.`,
  };
}

/** A wire form refused by {@linkcode decodeSigned}; callers map `reason`. */
export class SignedObjectError extends Error {
  readonly reason: SignedObjectErrorReason;
  constructor(reason: SignedObjectErrorReason, options?: ErrorOptions) {
    super(MESSAGES[reason], options);
    this.name = "SignedObjectError";
    this.reason = reason;
  }
}

/** Options for {@linkcode decodeSigned}. */
export interface DecodeOptions<T> {
  /**
   * Accept fields besides `body` and `sig` (ignored; not in the result).
   * Default false: the wire form must be exactly `{body, sig}`.
   */
  extraFields?: boolean;
  /** Most characters of the base64 `body`. */
  maxBodyChars?: number;
  /**
   * Checks the body's fields and returns it typed; runs before the
   * canonical-form check and throws the caller's own error.
   */
  check?: (body: Record<string, unknown>) => T;
  /**
   * Turns a refusal into the caller's own error. With it, a body that
   * RFC 8785 cannot encode (a lone surrogate, which field checks pass)
   * throws the encoder's own error, and every other refusal goes here.
   */
  refuse?: (reason: SignedObjectErrorReason) => never;
}

const SIGNATURE_HEX = /^[0-9a-f]{128}$/;

/** True for a wire signature: 128 lowercase hex digits. */
export function isSignatureHex(sig: unknown): sig is string {
  return typeof sig === "string" && SIGNATURE_HEX.test(sig);
}

/**
 * The id of a signed object: lowercase hex SHA-256 of its body bytes
 * (the same value as `bodyId`, computed synchronously).
 */
export function signedObjectId(bytes: Uint8Array): string {
  return toHex(sha256(bytes));
}

/** The wire form of canonical body `bytes` and the signature made over them. */
export function signedObjectWire(
  bytes: Uint8Array,
  signature: Uint8Array,
): SignedObject {
  return { body: encodeBase64(bytes), sig: toHex(signature) };
}

/** Encodes `body` as canonical JSON and signs it under `context`. */
export async function signObject(
  signer: Signer,
  context: SignContext,
  body: unknown,
): Promise<SignedObject> {
  const bytes = canonicalBytes(body);
  return signedObjectWire(bytes, await signer.sign(context, bytes));
}

/**
 * Decodes a wire form: its shape, size, signature format, base64, UTF-8
 * JSON object, the caller's field check, and canonical form, in that order.
 *
 * @throws {SignedObjectError} For the first check that fails (the caller's
 * check throws its own errors).
 */
export function decodeSigned<T = Record<string, unknown>>(
  wire: unknown,
  options: DecodeOptions<T> = {},
): DecodedObject<T> {
  if (!options.refuse) return decodeWire(wire, options);
  try {
    return decodeWire(wire, options);
  } catch (error) {
    if (!(error instanceof SignedObjectError)) throw error;
    if (error.reason === "not-i-json") throw error.cause;
    return options.refuse(error.reason);
  }
}

function decodeWire<T>(
  wire: unknown,
  options: DecodeOptions<T>,
): DecodedObject<T> {
  const w = wire as Partial<SignedObject>;
  if (
    typeof w !== "object" || w === null || typeof w.body !== "string" ||
    typeof w.sig !== "string" ||
    (!options.extraFields && Object.keys(w).length !== 2)
  ) {
    throw new SignedObjectError("shape");
  }
  if (
    options.maxBodyChars !== undefined && w.body.length > options.maxBodyChars
  ) {
    throw new SignedObjectError("too-large");
  }
  if (!isSignatureHex(w.sig)) throw new SignedObjectError("signature");
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(w.body);
  } catch {
    throw new SignedObjectError("base64");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    );
  } catch {
    throw new SignedObjectError("json");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SignedObjectError("not-object");
  }
  const fields = parsed as Record<string, unknown>;
  const body = options.check ? options.check(fields) : fields as T;
  let canonical: Uint8Array;
  try {
    canonical = canonicalBytes(fields);
  } catch (error) {
    throw new SignedObjectError("not-i-json", { cause: error });
  }
  if (
    canonical.length !== bytes.length ||
    canonical.some((byte, i) => byte !== bytes[i])
  ) {
    throw new SignedObjectError("not-canonical");
  }
  return {
    wire: { body: w.body, sig: w.sig },
    bytes,
    body,
    signature: fromHex(w.sig),
    id: signedObjectId(bytes),
  };
}

/**
 * Verifies that `publicKey` signed `bytes` under `context`, the signature
 * being the hex `sig` of a wire form. Never throws.
 */
export function verifySigned(
  publicKey: Uint8Array,
  context: SignContext,
  bytes: Uint8Array,
  sig: string,
): boolean {
  if (!isSignatureHex(sig)) return false;
  return verifyWithContext(publicKey, context, bytes, fromHex(sig));
}
