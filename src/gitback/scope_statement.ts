/**
 * Scope statements: the founder's signed word on where a project's bare
 * repositories may live, `swarm-wide` (every envoy of the fleet) or
 * `members-only` (only envoys where a member proved to live). A project's
 * scope is only ever what such a statement says; an envoy that has no
 * statement that verifies treats the project as `members-only`. Headers,
 * announcements, peers' records and users' files that merely name a scope
 * decide nothing.
 *
 * Body (RFC 8785):
 * `{"v":1,"kind":"gitback-scope","project_id","handle","founder":"ed25519:<hex>","scope","at"}`,
 * signed under `vigo-swarm/v1/gitback-scope` by `founder`, whose key with
 * `handle` must make `project_id`. Wire form:
 * `{"body": "<base64 of the body>", "sig": "<128 hex>"}`, at most
 * {@link MAX_SCOPE_STATEMENT_BYTES} of base64 body.
 *
 * This module is the one owner of the format: everything that signs,
 * verifies, stores or carries a statement goes through it.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  refusalMessages,
  type SignedObject,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import { decodeJsonBase64, encodeJsonBase64 } from "../platform/encoding.ts";
import { HANDLE_PATTERN } from "./project_id.ts";

/** Where a project's bare repositories may live. */
export type Scope = "swarm-wide" | "members-only";

/** The scope of a project that has no statement that verifies. */
export const DEFAULT_SCOPE: Scope = "members-only";

/** Most characters of a statement's base64 body. */
export const MAX_SCOPE_STATEMENT_BYTES = 1024;

/** Most characters of an encoded statement header ({@link encodeScopeHeader}). */
export const MAX_SCOPE_HEADER_BYTES = 2048;

/** The signed body. */
export interface ScopeStatementBody {
  v: 1;
  kind: "gitback-scope";
  project_id: string;
  handle: string;
  /** The founder's puddle key, `ed25519:<hex>`. */
  founder: string;
  scope: Scope;
  /** When it was signed, Unix seconds (informational). */
  at: number;
}

/** A statement as it travels and is stored. */
export type ScopeStatementWire = SignedObject;

/** A statement refused, with why. */
export class ScopeStatementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScopeStatementError";
  }
}

const KEYS = ["at", "founder", "handle", "kind", "project_id", "scope", "v"]
  .join(",");
const HEX64 = /^[0-9a-f]{64}$/;

function refuse(message: string): never {
  throw new ScopeStatementError(message);
}

/** True for `swarm-wide` or `members-only`. */
export function isScope(value: unknown): value is Scope {
  return value === "swarm-wide" || value === "members-only";
}

/** SHA-256(founder key ‖ UTF-8 handle), as project_id.ts computes it. */
function projectIdOf(founder: Uint8Array, handle: string): string {
  const handleBytes = new TextEncoder().encode(handle);
  const input = new Uint8Array(founder.length + handleBytes.length);
  input.set(founder);
  input.set(handleBytes, founder.length);
  return toHex(sha256(input));
}

/**
 * Signs the statement that the project `handle` founded by `signer`'s key
 * has `scope`. The signer must be the founder: the statement names its key,
 * and the project id is computed from it.
 */
export async function signScopeStatement(
  signer: Signer,
  fields: { projectId: string; handle: string; scope: Scope; now?: number },
): Promise<ScopeStatementWire> {
  if (!isScope(fields.scope)) {
    refuse(`${JSON.stringify(fields.scope)} is not a scope.`);
  }
  if (!HANDLE_PATTERN.test(fields.handle)) {
    refuse(`${JSON.stringify(fields.handle)} is not a valid handle.`);
  }
  if (projectIdOf(signer.publicKey, fields.handle) !== fields.projectId) {
    refuse(
      "only the founder signs a project's scope: this key and handle do not make that project id.",
    );
  }
  const body: ScopeStatementBody = {
    v: 1,
    kind: "gitback-scope",
    project_id: fields.projectId,
    handle: fields.handle,
    founder: formatPublicKey(signer.publicKey),
    scope: fields.scope,
    at: fields.now ?? Math.floor(Date.now() / 1000),
  };
  return await signObject(signer, SIGN_CONTEXTS.gitbackScope, body);
}

function checkBody(b: Record<string, unknown>): ScopeStatementBody {
  if (Object.keys(b).sort().join(",") !== KEYS) {
    refuse(
      `the scope statement's body has fields ${
        Object.keys(b).sort().join(", ")
      }.`,
    );
  }
  if (
    b.v !== 1 || b.kind !== "gitback-scope" ||
    typeof b.project_id !== "string" || !HEX64.test(b.project_id) ||
    typeof b.handle !== "string" || !HANDLE_PATTERN.test(b.handle) ||
    typeof b.founder !== "string" || !isScope(b.scope) ||
    !Number.isSafeInteger(b.at) || (b.at as number) < 0
  ) {
    refuse("the scope statement's body is malformed.");
  }
  return b as unknown as ScopeStatementBody;
}

/** Why a statement's wire form was refused, in a statement's words. */
const DECODE_MESSAGES = refusalMessages(
  "scope statement",
  MAX_SCOPE_STATEMENT_BYTES,
  "the",
);

/**
 * Checks a statement for `projectId` and returns its body: the wire form is
 * exactly `{body, sig}` within the size bound, the body canonical and well
 * formed, for this project, `founder` with `handle` makes the project id,
 * and `founder` signed it under `vigo-swarm/v1/gitback-scope`. Throws a
 * {@link ScopeStatementError} saying what failed.
 */
export function verifyScopeStatementBody(
  wire: unknown,
  projectId: string,
): ScopeStatementBody {
  const decoded = decodeSigned(wire, {
    maxBodyChars: MAX_SCOPE_STATEMENT_BYTES,
    check: checkBody,
    refuse: (reason) => refuse(DECODE_MESSAGES[reason]),
  });
  const { bytes, body } = decoded;
  if (body.project_id !== projectId) {
    refuse("the scope statement is for another project.");
  }
  let founder: Uint8Array;
  try {
    founder = parsePublicKey(body.founder);
  } catch {
    refuse("the scope statement's founder is not a public key.");
  }
  if (formatPublicKey(founder) !== body.founder) {
    refuse("the scope statement's founder is not in canonical form.");
  }
  if (projectIdOf(founder, body.handle) !== projectId) {
    refuse(
      "the scope statement's founder and handle do not make this project id.",
    );
  }
  if (
    !verifySigned(
      founder,
      SIGN_CONTEXTS.gitbackScope,
      bytes,
      decoded.wire.sig,
    )
  ) {
    refuse("the scope statement was not signed by the project's founder.");
  }
  return body;
}

/**
 * The scope a statement for `projectId` states, once it verified
 * ({@link verifyScopeStatementBody}); throws a {@link ScopeStatementError}
 * otherwise.
 */
export function verifyScopeStatement(wire: unknown, projectId: string): Scope {
  return verifyScopeStatementBody(wire, projectId).scope;
}

/** Verdicts of {@link checkScopeStatement}, by project, body and signature. */
const verdicts = new Map<string, ScopeStatementBody | null>();
const MAX_VERDICTS = 4096;

/**
 * The verified statement for `projectId` (exactly `{body, sig}`) with its
 * body, or null when `wire` is absent or does not verify. Verdicts are
 * remembered (verification is a pure function of its input), so records
 * read often are re-verified at the cost of a lookup.
 */
export function checkScopeStatement(
  wire: unknown,
  projectId: string,
): { wire: ScopeStatementWire; body: ScopeStatementBody } | null {
  if (wire === null || wire === undefined) return null;
  const w = wire as Partial<ScopeStatementWire>;
  // The shape is checked before the lookup, so a remembered verdict is one
  // for exactly this wire form.
  if (
    typeof w !== "object" || Array.isArray(w) || Object.keys(w).length !== 2 ||
    typeof w.body !== "string" || typeof w.sig !== "string" ||
    w.body.length > MAX_SCOPE_STATEMENT_BYTES || w.sig.length !== 128
  ) return null;
  const key = `${projectId}\n${w.body}\n${w.sig}`;
  let body = verdicts.get(key);
  if (body === undefined) {
    try {
      body = verifyScopeStatementBody(wire, projectId);
    } catch {
      body = null;
    }
    if (verdicts.size >= MAX_VERDICTS) {
      verdicts.delete(verdicts.keys().next().value!);
    }
    verdicts.set(key, body);
  }
  return body ? { wire: { body: w.body, sig: w.sig }, body } : null;
}

/**
 * The scope of `projectId` by `wire`: what the statement says when it
 * verifies, else {@link DEFAULT_SCOPE} (`members-only`).
 */
export function scopeFromStatement(wire: unknown, projectId: string): Scope {
  return checkScopeStatement(wire, projectId)?.body.scope ?? DEFAULT_SCOPE;
}

/** A statement as a header value: standard base64 of its JSON. */
export function encodeScopeHeader(wire: ScopeStatementWire): string {
  return encodeJsonBase64({ body: wire.body, sig: wire.sig });
}

/**
 * The statement a header value carries, undecoded beyond JSON (verify it
 * with {@link checkScopeStatement}), or null when the header is absent,
 * oversized, not base64 or not JSON: a plain `swarm-wide` is no statement.
 */
export function decodeScopeHeader(header: string | null | undefined): unknown {
  if (!header || header.length > MAX_SCOPE_HEADER_BYTES) return null;
  try {
    return decodeJsonBase64(header);
  } catch {
    return null;
  }
}
