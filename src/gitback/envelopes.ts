/**
 * Signed REVOKE and LEAVE envelopes. Same wire form as tokens
 * (`{"body": "<base64>", "sig": "<hex>"}`, canonical JSON bodies), each kind
 * under its own signing context.
 *
 * A REVOKE carries the chain of the token it revokes, so any envoy can check
 * offline that the signer is the founder or an issuer in that chain.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { fromHex, toHex } from "../crypto/hex.ts";
import { type SignContext, verifyWithContext } from "../crypto/signed.ts";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import {
  decodeToken,
  type SignedToken,
  type Signer,
  TokenError,
  verifyChain,
} from "./tokens.ts";

/** Largest envelope accepted, serialized. */
export const MAX_ENVELOPE_BYTES = 32 * 1024;
/** Longest revocation reason. */
export const MAX_REASON_LENGTH = 512;

const REVOKE: SignContext = "vigo-swarm/v1/gitback-envelope-revoke";
const LEAVE: SignContext = "vigo-swarm/v1/gitback-envelope-leave";

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

/** Body of a LEAVE. */
export interface LeaveBody {
  v: 1;
  kind: "leave";
  project_id: string;
  subject: string;
  token_id: string;
  issued_at: number;
}

/** An envelope as it travels. */
export interface SignedEnvelope {
  body: string;
  sig: string;
}

async function seal(
  signer: Signer,
  context: SignContext,
  body: unknown,
): Promise<SignedEnvelope> {
  const bytes = canonicalBytes(body);
  return {
    body: encodeBase64(bytes),
    sig: toHex(await signer.sign(context, bytes)),
  };
}

function open(
  wire: unknown,
): {
  bytes: Uint8Array;
  body: Record<string, unknown>;
  sig: Uint8Array;
  id: string;
} {
  const w = wire as Partial<SignedEnvelope>;
  if (
    typeof w !== "object" || w === null || typeof w.body !== "string" ||
    typeof w.sig !== "string" ||
    !/^[0-9a-f]{128}$/.test(w.sig)
  ) {
    throw new TokenError(
      "malformed",
      'an envelope must be {"body": "<base64>", "sig": "<hex>"}.',
    );
  }
  if (w.body.length > MAX_ENVELOPE_BYTES) {
    throw new TokenError("too-large", "the envelope is too large.");
  }
  let bytes: Uint8Array;
  let body: unknown;
  try {
    bytes = decodeBase64(w.body);
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new TokenError(
      "malformed",
      "the envelope body is not base64 of UTF-8 JSON.",
    );
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new TokenError("malformed", "the envelope body is not an object.");
  }
  const canonical = canonicalBytes(body);
  if (
    canonical.length !== bytes.length ||
    canonical.some((b, i) => b !== bytes[i])
  ) {
    throw new TokenError(
      "malformed",
      "the envelope body is not in canonical form.",
    );
  }
  return {
    bytes,
    body: body as Record<string, unknown>,
    sig: fromHex(w.sig),
    id: toHex(sha256(bytes)),
  };
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

/** Who may revoke the last token of `chain`: the founder and its issuers. */
function authorities(chain: unknown[]): Set<string> {
  const links = chain.map(decodeToken);
  const set = new Set<string>([links[0].body.issuer]);
  for (const link of links) set.add(link.body.issuer);
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
  },
): Promise<SignedEnvelope> {
  const reason = options.reason ?? "";
  if (reason.length > MAX_REASON_LENGTH) {
    throw new TokenError(
      "malformed",
      `a reason may have at most ${MAX_REASON_LENGTH} characters.`,
    );
  }
  await verifyChain(options.chain, {
    projectId: options.projectId,
    ignoreTime: true,
  });
  const signerKey = formatPublicKey(signer.publicKey);
  if (!authorities(options.chain).has(signerKey)) {
    throw new TokenError(
      "broken-link",
      "only the founder or an issuer in the token's chain may revoke it.",
    );
  }
  const target = decodeToken(options.chain[options.chain.length - 1]);
  return await seal(
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
      chain: options.chain as SignedToken[],
    } satisfies RevokeBody,
  );
}

/** A revocation that verified. */
export interface VerifiedRevocation {
  id: string;
  tokenId: string;
  signer: string;
  reason: string;
  issuedAt: number;
}

/** Checks a REVOKE: signature, project, embedded chain, and authority. */
export async function verifyRevocation(
  wire: unknown,
  options: { projectId: string },
): Promise<VerifiedRevocation> {
  const { bytes, body, sig, id } = open(wire);
  const b = body as Partial<RevokeBody>;
  if (
    b.v !== 1 || b.kind !== "revoke" || typeof b.project_id !== "string" ||
    typeof b.token_id !== "string" ||
    typeof b.reason !== "string" || b.reason.length > MAX_REASON_LENGTH ||
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
  if (!verifyWithContext(signerKey, REVOKE, bytes, sig)) {
    throw new TokenError(
      "bad-signature",
      "the revocation's signature is invalid.",
    );
  }
  await verifyChain(b.chain, {
    projectId: options.projectId,
    ignoreTime: true,
  });
  if (decodeToken(b.chain[b.chain.length - 1]).id !== b.token_id) {
    throw new TokenError(
      "broken-link",
      "the revocation's chain does not end at the revoked token.",
    );
  }
  if (!authorities(b.chain).has(b.signer)) {
    throw new TokenError(
      "broken-link",
      "the revocation was signed by someone without authority over the token.",
    );
  }
  return {
    id,
    tokenId: b.token_id,
    signer: b.signer,
    reason: b.reason,
    issuedAt: b.issued_at,
  };
}

/** Signs a LEAVE for the signer's own token `tokenId`. */
export async function mintLeave(
  signer: Signer,
  options: { projectId: string; tokenId: string; now?: number },
): Promise<SignedEnvelope> {
  return await seal(
    signer,
    LEAVE,
    {
      v: 1,
      kind: "leave",
      project_id: options.projectId,
      subject: formatPublicKey(signer.publicKey),
      token_id: options.tokenId,
      issued_at: options.now ?? now(),
    } satisfies LeaveBody,
  );
}

/** Checks a LEAVE: signed by its own subject, for this project. */
export function verifyLeave(
  wire: unknown,
  options: { projectId: string },
): Promise<{ id: string; subject: string; tokenId: string }> {
  const { bytes, body, sig, id } = open(wire);
  const b = body as Partial<LeaveBody>;
  if (
    b.v !== 1 || b.kind !== "leave" || typeof b.project_id !== "string" ||
    typeof b.subject !== "string" ||
    typeof b.token_id !== "string" || !/^[0-9a-f]{64}$/.test(b.token_id) ||
    typeof b.issued_at !== "number"
  ) {
    return Promise.reject(
      new TokenError("malformed", "the leave body is missing fields."),
    );
  }
  if (b.project_id !== options.projectId) {
    return Promise.reject(
      new TokenError("wrong-project", "the leave is for another project."),
    );
  }
  let subject: Uint8Array;
  try {
    subject = parsePublicKey(b.subject);
  } catch {
    return Promise.reject(
      new TokenError("malformed", "the leave's subject is not a public key."),
    );
  }
  if (!verifyWithContext(subject, LEAVE, bytes, sig)) {
    return Promise.reject(
      new TokenError(
        "bad-signature",
        "the leave was not signed by its subject.",
      ),
    );
  }
  return Promise.resolve({ id, subject: b.subject, tokenId: b.token_id });
}
