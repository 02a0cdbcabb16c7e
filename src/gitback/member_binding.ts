/**
 * Member-to-envoy bindings: a statement, signed by a member's puddle key
 * through their session helper on an envoy, that this member lives on that
 * envoy (named as in its fleet certificate) until an expiry. Envoys present
 * it with a chain; a chain copied to another envoy proves nothing there,
 * since no binding names that envoy.
 *
 * Wire form: `{"body": "<base64 of canonical JSON>", "sig": "<hex>"}`.
 *
 * @module
 */

import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  type SignedObject,
  type SignedObjectErrorReason,
  signedObjectWire,
  verifySigned,
} from "../crypto/signed_object.ts";
import { CLOCK_SKEW_S } from "./tokens.ts";

const CONTEXT = SIGN_CONTEXTS.puddleEnvoyBinding;

/** How long a binding is valid; every unlock makes a fresh one. */
export const MEMBER_BINDING_S = 30 * 24 * 3600;

/** Largest encoded binding accepted. */
export const MAX_BINDING_BYTES = 2048;

/** The signed body. */
export interface MemberBindingBody {
  v: 1;
  kind: "member-envoy-binding";
  /** The member's puddle key, `ed25519:<hex>`. */
  member: string;
  /** The envoy's host name, as in its fleet certificate. */
  envoy: string;
  not_before: number;
  expires: number;
}

/** A binding as it travels and is stored. */
export type MemberBindingWire = SignedObject;

const KEYS = ["envoy", "expires", "kind", "member", "not_before", "v"];

/** A binding refused, with why. */
export class BindingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BindingError";
  }
}

/** The body `member` signs to bind themselves to `envoy` from `now`. */
export function memberBindingBody(fields: {
  member: Uint8Array | string;
  envoy: string;
  now?: number;
}): MemberBindingBody {
  const now = fields.now ?? Math.floor(Date.now() / 1000);
  return {
    v: 1,
    kind: "member-envoy-binding",
    member: typeof fields.member === "string"
      ? formatPublicKey(parsePublicKey(fields.member))
      : formatPublicKey(fields.member),
    envoy: fields.envoy,
    not_before: now,
    expires: now + MEMBER_BINDING_S,
  };
}

/** The bytes signed for `body`. */
export function memberBindingBytes(body: MemberBindingBody): Uint8Array {
  return canonicalBytes(body);
}

/** The wire form of `body` with its signature. */
export function memberBindingWire(
  body: MemberBindingBody,
  signature: Uint8Array,
): MemberBindingWire {
  return signedObjectWire(memberBindingBytes(body), signature);
}

function checkBody(b: Record<string, unknown>): MemberBindingBody {
  if (
    Object.keys(b).sort().join(",") !== KEYS.join(",") || b.v !== 1 ||
    b.kind !== "member-envoy-binding" || typeof b.member !== "string" ||
    typeof b.envoy !== "string" || b.envoy.length === 0 ||
    b.envoy.length > 253 || !Number.isSafeInteger(b.not_before) ||
    !Number.isSafeInteger(b.expires)
  ) {
    throw new BindingError("the binding body is malformed.");
  }
  return b as unknown as MemberBindingBody;
}

/** Why a binding's wire form was refused, in a binding's words. */
const DECODE_MESSAGES: Record<SignedObjectErrorReason, string> = {
  "shape": 'a binding must be {"body": "<base64>", "sig": "<128 hex>"}.',
  "too-large": 'a binding must be {"body": "<base64>", "sig": "<128 hex>"}.',
  "signature": 'a binding must be {"body": "<base64>", "sig": "<128 hex>"}.',
  "base64": "the binding body is not base64.",
  "json": "the binding body is not UTF-8 JSON.",
  "not-object": "the binding body is malformed.",
  "not-i-json": "the binding body is not in canonical form.",
  "not-canonical": "the binding body is not in canonical form.",
};

/**
 * Checks that `wire` binds `member` to `envoy` now: signed by `member`,
 * naming `envoy`, within its validity window (±60 s).
 */
export function verifyMemberBinding(
  wire: unknown,
  expected: { member: string; envoy: string; now?: number },
): MemberBindingBody {
  const decoded = decodeSigned(wire, {
    maxBodyChars: MAX_BINDING_BYTES,
    check: checkBody,
    refuse: (reason) => {
      throw new BindingError(DECODE_MESSAGES[reason]);
    },
  });
  const { bytes, body } = decoded;
  let member: Uint8Array;
  try {
    member = parsePublicKey(body.member);
  } catch {
    throw new BindingError("the binding's member is not a public key.");
  }
  if (formatPublicKey(member) !== expected.member) {
    throw new BindingError("the binding is for another member.");
  }
  if (body.envoy !== expected.envoy) {
    throw new BindingError(
      `the binding names ${JSON.stringify(body.envoy)}, not this envoy.`,
    );
  }
  const now = expected.now ?? Math.floor(Date.now() / 1000);
  if (
    now + CLOCK_SKEW_S < body.not_before || now - CLOCK_SKEW_S > body.expires
  ) {
    throw new BindingError("the binding is not valid now (expired?).");
  }
  if (!verifySigned(member, CONTEXT, bytes, decoded.wire.sig)) {
    throw new BindingError("the binding was not signed by its member.");
  }
  return body;
}
