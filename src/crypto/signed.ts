/**
 * Domain-separated Ed25519 signing: every signature is bound to a context
 * string naming what kind of object it signs, so a signature made for one
 * purpose can never be replayed as another.
 *
 * The signed message is `UTF-8(context) ‖ 0x00 ‖ body`. Context strings
 * contain no NUL byte, so the first NUL unambiguously ends the context.
 *
 * @module
 */

import { signBytes, verifyBytes } from "./ed25519.ts";
import { toHex } from "./hex.ts";

/**
 * Every context string the project signs under. Adding a kind of signed
 * object means adding an entry here; contexts are never reused or renamed.
 */
export const SIGN_CONTEXTS = {
  /** Puddle: session probe. */
  puddleSessionProbe: "vigo-swarm/v1/puddle-session-probe",
  /** Puddle: agent challenge. */
  puddleAgentChallenge: "vigo-swarm/v1/puddle-agent-challenge",
  /** Puddle: a member's binding to the envoy they live on. */
  puddleEnvoyBinding: "vigo-swarm/v1/puddle-envoy-binding",
  /** Puddle: a key rotation, signed by the retiring key. */
  puddleRotation: "vigo-swarm/v1/puddle-rotation",
  /** Puddle: the new key's acceptance of a key rotation. */
  puddleRotationAccept: "vigo-swarm/v1/puddle-rotation-accept",
  /** Puddle: name claim. */
  puddleNameClaim: "vigo-swarm/v1/puddle-name-claim",
  /** Gitback: capability token. */
  gitbackToken: "vigo-swarm/v1/gitback-token",
  /** Gitback: revoke envelope. */
  gitbackEnvelopeRevoke: "vigo-swarm/v1/gitback-envelope-revoke",
  /** Gitback: leave envelope. */
  gitbackEnvelopeLeave: "vigo-swarm/v1/gitback-envelope-leave",
  /** Gitback: delegation. */
  gitbackDelegation: "vigo-swarm/v1/gitback-delegation",
  /** Gitback: a project's signed ref state after a push. */
  gitbackRefs: "vigo-swarm/v1/gitback-refs",
  /** Gitback: a founder's statement of a project's scope. */
  gitbackScope: "vigo-swarm/v1/gitback-scope",
  /** Gitback: the current founder's tombstone of a project. */
  gitbackTombstone: "vigo-swarm/v1/gitback-tombstone",
} as const;

/** One of the context strings listed in {@linkcode SIGN_CONTEXTS}. */
export type SignContext = typeof SIGN_CONTEXTS[keyof typeof SIGN_CONTEXTS];

const KNOWN_CONTEXTS: ReadonlySet<string> = new Set(
  Object.values(SIGN_CONTEXTS),
);

/**
 * Reports whether a value is one of the known context strings.
 *
 * @param text The value to test.
 * @returns `true` if it is listed in {@linkcode SIGN_CONTEXTS}.
 */
export function isSignContext(text: unknown): text is SignContext {
  return typeof text === "string" && KNOWN_CONTEXTS.has(text);
}

/**
 * Builds the exact bytes that are signed: `UTF-8(context) ‖ 0x00 ‖ body`.
 *
 * @param context The context naming the kind of object.
 * @param body The object's bytes, normally RFC 8785 canonical JSON.
 * @returns A new array holding the signing input.
 * @throws {TypeError} If the context is not a known context or the body is
 * not a `Uint8Array`.
 */
export function signingInput(
  context: SignContext,
  body: Uint8Array,
): Uint8Array {
  if (!isSignContext(context)) {
    throw new TypeError(
      `Unknown signing context ${
        JSON.stringify(context)
      }. Use one of the strings in SIGN_CONTEXTS.`,
    );
  }
  if (!(body instanceof Uint8Array)) {
    throw new TypeError(
      "The body to sign must be a Uint8Array. Use canonicalBytes() to encode JSON bodies.",
    );
  }
  const prefix = new TextEncoder().encode(context);
  const input = new Uint8Array(prefix.length + 1 + body.length);
  input.set(prefix, 0);
  input[prefix.length] = 0x00;
  input.set(body, prefix.length + 1);
  return input;
}

/**
 * Signs a body under a context.
 *
 * @param seed The 32-byte secret seed.
 * @param context The context naming the kind of object.
 * @param body The object's bytes.
 * @returns The 64-byte signature over {@linkcode signingInput}.
 * @throws {TypeError} If the context or body is invalid.
 * @throws {RangeError} If the seed is not 32 bytes.
 */
export function signWithContext(
  seed: Uint8Array,
  context: SignContext,
  body: Uint8Array,
): Uint8Array {
  return signBytes(seed, signingInput(context, body));
}

/**
 * Verifies a signature over a body under a context, with the strict rule of
 * {@linkcode verifyBytes}. Never throws; an unknown context or malformed
 * input yields `false`.
 *
 * @param publicKey The 32-byte public key.
 * @param context The context the signature must have been made under.
 * @param body The object's bytes.
 * @param signature The 64-byte signature.
 * @returns `true` only if the signature is valid for this context and body.
 */
export function verifyWithContext(
  publicKey: Uint8Array,
  context: SignContext,
  body: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!isSignContext(context) || !(body instanceof Uint8Array)) return false;
  return verifyBytes(publicKey, signingInput(context, body), signature);
}

/**
 * Computes the id of a signed object: the lowercase hex SHA-256 of the body
 * bytes. The signature is deliberately not included, so an id names the
 * content and stays the same however (or by whom) it is signed.
 *
 * @param body The object's bytes.
 * @returns 64 lowercase hex digits.
 * @throws {TypeError} If the body is not a `Uint8Array`.
 */
export async function bodyId(body: Uint8Array): Promise<string> {
  if (!(body instanceof Uint8Array)) {
    throw new TypeError(
      "The body to identify must be a Uint8Array. Use canonicalBytes() to encode JSON bodies.",
    );
  }
  // Copy so the digest sees a plain ArrayBuffer-backed view of exactly the
  // body, whatever buffer the caller's view lives in.
  const digest = await crypto.subtle.digest("SHA-256", body.slice());
  return toHex(new Uint8Array(digest));
}
