/**
 * Signed REVOKE and LEAVE envelopes. Same wire form as tokens
 * (`{"body": "<base64>", "sig": "<hex>"}`, canonical JSON bodies), each kind
 * under its own signing context.
 *
 * A REVOKE carries the chain of the token it revokes, so any envoy can check
 * offline that the signer is the founder or an issuer in that chain. After
 * a founder rotation (delegations.ts) the founder is the current founder
 * key, and a retired founder key has lost its authority: it revokes
 * nothing, not even what it issued (a deposed key could otherwise revoke
 * the bootstrap token and with it the project). A LEAVE
 * (format 2) carries the leaver's own chain, so only a member can leave and
 * a flood of LEAVEs from made-up keys is refused before it is stored.
 *
 * Both are judged without the clock or the revocation list (so every envoy
 * reaches the same verdict whenever an envelope reaches it); only retention
 * ({@link revocationRetainedUntil}, {@link leaveRetainedUntil}) depends on
 * time. A stored LEAVE acts as a revocation of the token it leaves (see
 * revocations.ts), so both kinds are kept by the same rule.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  isSignatureHex,
  type SignedObject,
  SignedObjectError,
  type SignedObjectErrorReason,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import {
  type ChainVerifier,
  CLOCK_SKEW_S,
  decodeToken,
  type SignedToken,
  TokenError,
  type VerifiedChain,
  verifyChain,
} from "./tokens.ts";
import type { FounderPath } from "./delegations.ts";

/**
 * How an envelope's chain is verified: with the founder's `delegations`,
 * or by an envoy's own `verifyChain`, which supplies the ones it knows.
 */
export interface EnvelopeChainOptions {
  delegations?: readonly unknown[];
  verifyChain?: ChainVerifier;
}

/** Largest envelope accepted: characters of its base64 `body`. */
export const MAX_ENVELOPE_BYTES = 32 * 1024;
/** Longest revocation reason, in Unicode code points (not UTF-16 units). */
export const MAX_REASON_LENGTH = 512;
/** How long an envelope is kept once it no longer matters: 90 days. */
export const RETENTION_S = 90 * 86_400;
/** The LEAVE format this code writes and accepts. */
export const LEAVE_VERSION = 2;

/** Length of `reason` in Unicode code points, the unit of {@link MAX_REASON_LENGTH}. */
export function reasonLength(reason: string): number {
  let count = 0;
  for (const _ of reason) count++;
  return count;
}

const REVOKE = SIGN_CONTEXTS.gitbackEnvelopeRevoke;
const LEAVE = SIGN_CONTEXTS.gitbackEnvelopeLeave;

/** Body of a REVOKE. */
export interface RevokeBody {
  v: 1;
  kind: "revoke";
  project_id: string;
  token_id: string;
  reason: string;
  issued_at: number;
  signer: string;
  chain: SignedToken[];
}

/**
 * Body of a LEAVE, format 2: `chain` is the leaver's chain (root first),
 * ending at the token `token_id` whose subject is `subject`. Format 1 had no
 * chain and is refused.
 */
export interface LeaveBody {
  v: 2;
  kind: "leave";
  project_id: string;
  subject: string;
  token_id: string;
  issued_at: number;
  chain: SignedToken[];
}

/** An envelope as it travels. */
export type SignedEnvelope = SignedObject;

/** Why an envelope's wire form was refused, in an envelope's words. */
const OPEN_MESSAGES: Record<SignedObjectErrorReason, string> = {
  "shape": 'an envelope must be {"body": "<base64>", "sig": "<hex>"}.',
  "too-large": "the envelope is too large.",
  "signature": 'an envelope must be {"body": "<base64>", "sig": "<hex>"}.',
  "base64": "the envelope body is not base64 of UTF-8 JSON.",
  "json": "the envelope body is not base64 of UTF-8 JSON.",
  "not-object": "the envelope body is not an object.",
  "not-i-json": "the envelope body is not I-JSON (RFC 8785 cannot encode it).",
  "not-canonical": "the envelope body is not in canonical form.",
};

function open(
  wire: unknown,
): {
  bytes: Uint8Array;
  body: Record<string, unknown>;
  sig: string;
  id: string;
} {
  try {
    const { bytes, body, wire: w, id } = decodeSigned(wire, {
      extraFields: true,
      maxBodyChars: MAX_ENVELOPE_BYTES,
    });
    return { bytes, body, sig: w.sig, id };
  } catch (error) {
    if (!(error instanceof SignedObjectError)) throw error;
    // An envelope's signature form is checked with its shape, before its
    // size: a malformed signature makes a malformed envelope at any size.
    const reason = error.reason === "too-large" &&
        !isSignatureHex((wire as SignedObject).sig)
      ? "signature"
      : error.reason;
    throw new TokenError(
      reason === "too-large" ? "too-large" : "malformed",
      OPEN_MESSAGES[reason],
    );
  }
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Who may revoke the last token of a verified chain: the current founder
 * and the chain's issuers, except founder keys retired by a delegation.
 */
function authorities(verified: VerifiedChain): Set<string> {
  const path = verified.founderPath;
  const set = new Set<string>([path.current]);
  for (const link of verified.chain.map(decodeToken)) {
    if (!path.isRetired(link.body.issuer)) set.add(link.body.issuer);
  }
  return set;
}

/** Signs a revocation of the last token of `chain` (root first). */
export async function mintRevocation(
  signer: Signer,
  options: {
    projectId: string;
    chain: unknown[];
    reason?: string;
    now?: number;
    /** The founder's delegations, first rotation first. */
    delegations?: readonly unknown[];
  },
): Promise<SignedEnvelope> {
  const reason = options.reason ?? "";
  if (reasonLength(reason) > MAX_REASON_LENGTH) {
    throw new TokenError(
      "malformed",
      `a reason may have at most ${MAX_REASON_LENGTH} characters.`,
    );
  }
  const signerKey = formatPublicKey(signer.publicKey);
  const verified = await verifyChain(options.chain, {
    projectId: options.projectId,
    ignoreTime: true,
    delegations: options.delegations,
  });
  if (!authorities(verified).has(signerKey)) {
    throw new TokenError(
      "broken-link",
      "only the founder or an issuer in the token's chain may revoke it.",
    );
  }
  const target = decodeToken(options.chain[options.chain.length - 1]);
  return await signObject(
    signer,
    REVOKE,
    {
      v: 1,
      kind: "revoke",
      project_id: options.projectId,
      token_id: target.id,
      reason,
      issued_at: options.now ?? now(),
      signer: signerKey,
      chain: verified.chain,
    } satisfies RevokeBody,
  );
}

/** A revocation that verified. */
export interface VerifiedRevocation {
  id: string;
  tokenId: string;
  signer: string;
  /** The project's founder (`ed25519:<hex>`), the chain's root issuer. */
  founder: string;
  /** The founder keys the delegations made, genesis first. */
  founderPath: FounderPath;
  reason: string;
  issuedAt: number;
  /** The revoked token's `expires` (Unix s), or null when it never expires. */
  tokenExpires: number | null;
}

/** Checks a REVOKE: signature, project, embedded chain, and authority. */
export async function verifyRevocation(
  wire: unknown,
  options: { projectId: string } & EnvelopeChainOptions,
): Promise<VerifiedRevocation> {
  const { bytes, body, sig, id } = open(wire);
  const b = body as Partial<RevokeBody>;
  if (
    b.v !== 1 || b.kind !== "revoke" || typeof b.project_id !== "string" ||
    typeof b.token_id !== "string" ||
    typeof b.reason !== "string" ||
    reasonLength(b.reason) > MAX_REASON_LENGTH ||
    typeof b.issued_at !== "number" ||
    typeof b.signer !== "string" || !Array.isArray(b.chain)
  ) {
    throw new TokenError("malformed", "the revocation body is missing fields.");
  }
  if (b.project_id !== options.projectId) {
    throw new TokenError(
      "wrong-project",
      `the revocation is for project ${b.project_id}, not ${options.projectId}.`,
    );
  }
  let signerKey: Uint8Array;
  try {
    signerKey = parsePublicKey(b.signer);
  } catch {
    throw new TokenError(
      "malformed",
      "the revocation's signer is not a public key.",
    );
  }
  if (!verifySigned(signerKey, REVOKE, bytes, sig)) {
    throw new TokenError(
      "bad-signature",
      "the revocation's signature is invalid.",
    );
  }
  const verified = await (options.verifyChain ?? verifyChain)(b.chain, {
    projectId: options.projectId,
    ignoreTime: true,
    delegations: options.delegations,
  });
  const target = decodeToken(b.chain[b.chain.length - 1]);
  if (target.id !== b.token_id) {
    throw new TokenError(
      "broken-link",
      "the revocation's chain does not end at the revoked token.",
    );
  }
  if (!authorities(verified).has(b.signer)) {
    throw new TokenError(
      "broken-link",
      "the revocation was signed by someone without authority over the token.",
    );
  }
  return {
    id,
    tokenId: b.token_id,
    signer: b.signer,
    founder: decodeToken(b.chain[0]).body.issuer,
    founderPath: verified.founderPath,
    reason: b.reason,
    issuedAt: b.issued_at,
    tokenExpires: target.body.expires,
  };
}

/**
 * Signs a LEAVE of the last token of `chain` (root first), which must have
 * been issued to the signer: the chain travels inside the LEAVE as its proof
 * of membership. `tokenId`, the only input of format 1, is no longer enough:
 * without `chain` this throws; when both are given they must agree.
 */
export async function mintLeave(
  signer: Signer,
  options: {
    projectId: string;
    chain?: unknown[];
    /** Format 1's input; optional now, checked against `chain` when given. */
    tokenId?: string;
    now?: number;
    /** The founder's delegations, first rotation first. */
    delegations?: readonly unknown[];
  },
): Promise<SignedEnvelope> {
  const subject = formatPublicKey(signer.publicKey);
  if (!Array.isArray(options.chain)) {
    throw new TokenError(
      "malformed",
      "a LEAVE must carry the leaver's token chain (format 2); pass `chain`, the chain from tokens.json, root first.",
    );
  }
  const verified = await verifyChain(options.chain, {
    projectId: options.projectId,
    ignoreTime: true,
    presenter: signer.publicKey,
    delegations: options.delegations,
  });
  const leaf = decodeToken(options.chain[options.chain.length - 1]);
  if (options.tokenId !== undefined && options.tokenId !== leaf.id) {
    throw new TokenError(
      "broken-link",
      "the chain given does not end at the token being left.",
    );
  }
  return await signObject(
    signer,
    LEAVE,
    {
      v: LEAVE_VERSION,
      kind: "leave",
      project_id: options.projectId,
      subject,
      token_id: leaf.id,
      issued_at: options.now ?? now(),
      chain: verified.chain,
    } satisfies LeaveBody,
  );
}

/** A LEAVE that verified. */
export interface VerifiedLeave {
  id: string;
  subject: string;
  tokenId: string;
  founder: string;
  /** The founder keys the delegations made, genesis first. */
  founderPath: FounderPath;
  issuedAt: number;
  /** The left token's `expires` (Unix s), or null when it never expires. */
  tokenExpires: number | null;
}

/**
 * Checks a LEAVE: format 2, for this project, signed by its `subject`, and
 * carrying a chain that verifies for the project (validity windows and
 * revocations not consulted, as for a REVOKE) and ends at the token
 * `token_id`, issued to `subject`. A format-1 LEAVE (no chain) is refused.
 */
export async function verifyLeave(
  wire: unknown,
  options: { projectId: string } & EnvelopeChainOptions,
): Promise<VerifiedLeave> {
  const { bytes, body, sig, id } = open(wire);
  const b = body as Partial<Omit<LeaveBody, "v">> & { v?: unknown };
  if (b.kind === "leave" && b.v === 1) {
    throw new TokenError(
      "malformed",
      "this LEAVE is in format 1, which carries no membership chain and is no longer accepted; leave again with a current vigo.",
    );
  }
  if (
    b.v !== LEAVE_VERSION || b.kind !== "leave" ||
    typeof b.project_id !== "string" ||
    typeof b.subject !== "string" ||
    typeof b.token_id !== "string" || !/^[0-9a-f]{64}$/.test(b.token_id) ||
    typeof b.issued_at !== "number" || !Array.isArray(b.chain)
  ) {
    throw new TokenError("malformed", "the leave body is missing fields.");
  }
  if (b.project_id !== options.projectId) {
    throw new TokenError("wrong-project", "the leave is for another project.");
  }
  let subject: Uint8Array;
  try {
    subject = parsePublicKey(b.subject);
  } catch {
    throw new TokenError(
      "malformed",
      "the leave's subject is not a public key.",
    );
  }
  if (!verifySigned(subject, LEAVE, bytes, sig)) {
    throw new TokenError(
      "bad-signature",
      "the leave was not signed by its subject.",
    );
  }
  let verified: VerifiedChain;
  try {
    verified = await (options.verifyChain ?? verifyChain)(b.chain, {
      projectId: options.projectId,
      ignoreTime: true,
      presenter: subject,
      delegations: options.delegations,
    });
  } catch (error) {
    throw new TokenError(
      (error as TokenError).code ?? "broken-link",
      `the leave carries no valid membership chain: ${
        (error as Error).message
      }`,
    );
  }
  const leaf = decodeToken(b.chain[b.chain.length - 1]);
  if (leaf.id !== b.token_id) {
    throw new TokenError(
      "broken-link",
      "the leave's chain does not end at the token it leaves.",
    );
  }
  return {
    id,
    subject: b.subject,
    tokenId: b.token_id,
    founder: decodeToken(b.chain[0]).body.issuer,
    founderPath: verified.founderPath,
    issuedAt: b.issued_at,
    tokenExpires: leaf.body.expires,
  };
}

/**
 * Until when (Unix s) an envoy keeps a revocation of a token whose
 * `expires` is `tokenExpires`: while that token, and so any descendant
 * (none may outlive it), could still verify somewhere (`expires` plus the
 * clock skew), then 90 days more. A token with no expiry never stops
 * verifying, so its revocation is kept for ever (null).
 */
export function revocationRetainedUntil(
  tokenExpires: number | null,
): number | null {
  return tokenExpires === null
    ? null
    : tokenExpires + CLOCK_SKEW_S + RETENTION_S;
}

/**
 * Until when (Unix s) an envoy keeps a LEAVE of a token whose `expires` is
 * `tokenExpires`. A stored LEAVE refuses the left token like a revocation,
 * so it follows the revocation rule ({@link revocationRetainedUntil}):
 * reaping it earlier would let the token verify again.
 */
export function leaveRetainedUntil(
  tokenExpires: number | null,
): number | null {
  return revocationRetainedUntil(tokenExpires);
}

/** What an envoy needs to know about an envelope it stored earlier. */
export interface StoredEnvelopeInfo {
  /** Who signed it: the REVOKE's `signer`, the LEAVE's `subject`. */
  signer: string;
  /** The project's founder, from the chain's root. */
  founder: string;
  /** The token it revokes or leaves: the last token of its chain. */
  tokenId: string;
  /** Unix seconds after which it is reaped; null: never. */
  retainedUntil: number | null;
}

/**
 * Reads an envelope this envoy verified and stored earlier, without checking
 * signatures again (the store is root's own). Throws for anything that is
 * not a REVOKE or a format-2 LEAVE of `kind`; such a file is to be removed.
 */
export function storedEnvelopeInfo(
  wire: unknown,
  kind: "revokes" | "leaves",
): StoredEnvelopeInfo {
  const { body } = open(wire);
  const chain = body.chain;
  if (!Array.isArray(chain) || chain.length === 0) {
    throw new TokenError("malformed", "the stored envelope has no chain.");
  }
  const founder = decodeToken(chain[0]).body.issuer;
  const target = decodeToken(chain[chain.length - 1]);
  if (kind === "revokes") {
    if (body.kind !== "revoke" || typeof body.signer !== "string") {
      throw new TokenError("malformed", "the stored file is not a REVOKE.");
    }
    return {
      signer: body.signer,
      founder,
      tokenId: target.id,
      retainedUntil: revocationRetainedUntil(target.body.expires),
    };
  }
  if (
    body.kind !== "leave" || body.v !== LEAVE_VERSION ||
    typeof body.subject !== "string" || typeof body.issued_at !== "number" ||
    body.token_id !== target.id
  ) {
    throw new TokenError(
      "malformed",
      "the stored file is not a format-2 LEAVE.",
    );
  }
  return {
    signer: body.subject,
    founder,
    tokenId: target.id,
    retainedUntil: leaveRetainedUntil(target.body.expires),
  };
}

/**
 * The digest two envoys compare to learn whether they hold the same
 * envelopes of a project: the lowercase hex SHA-256 of the UTF-8 names
 * (`revokes/<token_id>.json`, `leaves/<envelope_id>.json`) sorted in
 * byte order and joined by `\n`, with no trailing newline. No envelopes:
 * the SHA-256 of nothing.
 */
export function envelopeSetDigest(names: readonly string[]): string {
  const encoder = new TextEncoder();
  const sorted = names.map((n) => encoder.encode(n)).sort(compareBytes);
  const parts: Uint8Array[] = [];
  for (const [i, name] of sorted.entries()) {
    if (i > 0) parts.push(new Uint8Array([0x0a]));
    parts.push(name);
  }
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return toHex(sha256(joined));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}
