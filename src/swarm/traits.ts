/**
 * Traits: what an envoy reports about itself when it checks in with the
 * fleet server. This module is the one owner of their format; the agent
 * builds them and the server reads them with {@link parseTraits}.
 *
 * ```
 * { "v":1, "envoy":"<host name>", "at":<unix s>,
 *   "users":[ { "user":"<name>",
 *     "puddle": { "pubkey":"ed25519:<hex>", "wrapped_sha256":"<64 hex>",
 *                 "unlocked":bool, "name_claim":<signed claim>|null,
 *                 "pair_pending":bool, "rekey_pending":bool,
 *                 "retired":["ed25519:<hex>",…] } | null,
 *     "gitback": { "projects":[ { "project_id":"<64 hex>", "handle", "scope",
 *                 "heads":{"<ref>":"<40 hex>"}, "repo_bytes", "revokes",
 *                 "leaves", "delegations", "tombstoned", "signed_seq",
 *                 "members":["ed25519:<hex>",…] } ] } | null } ] }
 * ```
 *
 * Parsing is strict: every object has exactly these fields, and the sizes
 * are bounded (see the `MAX_*` constants). The `envoy` must be the host
 * name of the client certificate that delivered the traits, and a name
 * claim must verify and be signed by the puddle's own `pubkey`.
 *
 * @module
 */

import { isValidUsername } from "../envoy/policy.ts";
import { isHostName } from "../envoy/host_name.ts";
import { verifyNameClaim } from "../puddle/names.ts";
import type { SignedObject } from "../crypto/signed_object.ts";
import { HANDLE_PATTERN } from "../gitback/project_id.ts";
import { decodeJsonBase64 } from "../platform/encoding.ts";

/** Most bytes of one traits document. */
export const MAX_TRAITS_BYTES = 256 * 1024;
/** Most users in one traits document. */
export const MAX_TRAIT_USERS = 256;
/** Most gitback projects per user. */
export const MAX_TRAIT_PROJECTS = 512;
/** Most ref heads per project. */
export const MAX_TRAIT_HEADS = 64;
/** Most retired keys per puddle. */
export const MAX_TRAIT_RETIRED = 64;
/** Longest ref name in `heads`. */
export const MAX_REF_CHARS = 255;
/** Most member keys per project. */
export const MAX_TRAIT_MEMBERS = 256;

/** A refusal of traits, with the HTTP status the check-in route answers. */
export class TraitsError extends Error {
  /** 400 malformed, 403 another host, 413 too large. */
  readonly status: 400 | 403 | 413;
  constructor(status: 400 | 403 | 413, message: string) {
    super(message);
    this.name = "TraitsError";
    this.status = status;
  }
}

/** The puddle trait of one user. */
export interface PuddleTrait {
  pubkey: string;
  wrapped_sha256: string;
  unlocked: boolean;
  /** The verified claim's wire form, or null. */
  name_claim: SignedObject | null;
  pair_pending: boolean;
  rekey_pending: boolean;
  retired: string[];
}

/** One project in the gitback trait. */
export interface ProjectTrait {
  project_id: string;
  handle: string;
  scope: "swarm-wide" | "members-only";
  heads: Record<string, string>;
  repo_bytes: number;
  revokes: number;
  leaves: number;
  delegations: number;
  tombstoned: boolean;
  /** The sequence number of the signed ref state the replica is at. */
  signed_seq: number | null;
  /** Member keys this envoy knows of, founder first. */
  members: string[];
}

/** The gitback trait of one user. */
export interface GitbackTrait {
  projects: ProjectTrait[];
}

/** One user's traits. */
export interface UserTraits {
  user: string;
  puddle: PuddleTrait | null;
  gitback: GitbackTrait | null;
}

/** A parsed, verified traits document. */
export interface Traits {
  v: 1;
  envoy: string;
  at: number;
  users: UserTraits[];
}

/**
 * The name a parsed puddle trait claims, or null. The claim was verified by
 * {@link parseTraits}; this only reads its body.
 */
export function claimedName(puddle: PuddleTrait): string | null {
  if (puddle.name_claim === null) return null;
  const body = decodeJsonBase64(puddle.name_claim.body) as { name: string };
  return body.name;
}

/** A puddle key as traits carry it. */
export const TRAIT_PUBKEY = /^ed25519:[0-9a-f]{64}$/;
/** A ref head's object id (SHA-1 repositories). */
export const TRAIT_HEAD_ID = /^[0-9a-f]{40}$/;
/** A ref name in `heads` (and at most {@link MAX_REF_CHARS} long). */
export const TRAIT_REF = /^refs\/[\x21-\x7e]+$/;
const HEX64 = /^[0-9a-f]{64}$/;

function malformed(where: string, what: string): never {
  throw new TraitsError(400, `the traits are malformed: ${where} ${what}.`);
}

function object(
  value: unknown,
  keys: string,
  where: string,
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    malformed(where, "is not an object");
  }
  const record = value as Record<string, unknown>;
  if (Object.keys(record).sort().join(",") !== keys) {
    malformed(where, `must have exactly the fields ${keys}`);
  }
  return record;
}

function count(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    malformed(where, "is not a non-negative integer");
  }
  return value as number;
}

function bool(value: unknown, where: string): boolean {
  if (typeof value !== "boolean") malformed(where, "is not true or false");
  return value;
}

function match(value: unknown, pattern: RegExp, where: string): string {
  if (typeof value !== "string" || !pattern.test(value)) {
    malformed(where, "is not in the expected form");
  }
  return value;
}

function list(value: unknown, max: number, where: string): unknown[] {
  if (!Array.isArray(value)) malformed(where, "is not a list");
  if (value.length > max) {
    throw new TraitsError(
      413,
      `the traits are too large: ${where} has ${value.length} entries, at most ${max} are accepted.`,
    );
  }
  return value;
}

/** Claims that verified, by their exact wire text: agents resend them. */
const verifiedClaims = new Map<string, ReturnType<typeof verifyNameClaim>>();
const MAX_CACHED_CLAIMS = 16_384;

/**
 * {@link verifyNameClaim}, remembered for identical wire objects: a check-in
 * repeats the same claims every period, and a signature verifies the same
 * way every time for the same bytes. Only successes are kept.
 */
function verifyClaimOnce(wire: unknown): ReturnType<typeof verifyNameClaim> {
  const w = wire as { body?: unknown; sig?: unknown } | null;
  const cacheKey = typeof w === "object" && w !== null &&
      typeof w.body === "string" && typeof w.sig === "string" &&
      Object.keys(w).length === 2
    ? `${w.body}.${w.sig}`
    : null;
  const known = cacheKey === null ? undefined : verifiedClaims.get(cacheKey);
  if (known) return known;
  const verified = verifyNameClaim(wire);
  if (cacheKey !== null) {
    if (verifiedClaims.size >= MAX_CACHED_CLAIMS) verifiedClaims.clear();
    verifiedClaims.set(cacheKey, verified);
  }
  return verified;
}

function parsePuddle(value: unknown, where: string): PuddleTrait | null {
  if (value === null) return null;
  const p = object(
    value,
    "name_claim,pair_pending,pubkey,rekey_pending,retired,unlocked,wrapped_sha256",
    where,
  );
  const pubkey = match(p.pubkey, TRAIT_PUBKEY, `${where}.pubkey`);
  const retired = list(p.retired, MAX_TRAIT_RETIRED, `${where}.retired`).map((
    k,
    i,
  ) => match(k, TRAIT_PUBKEY, `${where}.retired[${i}]`));
  let claim: SignedObject | null = null;
  if (p.name_claim !== null) {
    let verified;
    try {
      verified = verifyClaimOnce(p.name_claim);
    } catch (error) {
      throw new TraitsError(
        400,
        `the traits carry an invalid name claim at ${where}: ${
          (error as Error).message
        }`,
      );
    }
    if (verified.key !== pubkey) {
      throw new TraitsError(
        400,
        `the name claim at ${where} is signed by ${verified.key}, not by the puddle's key ${pubkey}.`,
      );
    }
    claim = verified.wire;
  }
  return {
    pubkey,
    wrapped_sha256: match(p.wrapped_sha256, HEX64, `${where}.wrapped_sha256`),
    unlocked: bool(p.unlocked, `${where}.unlocked`),
    name_claim: claim,
    pair_pending: bool(p.pair_pending, `${where}.pair_pending`),
    rekey_pending: bool(p.rekey_pending, `${where}.rekey_pending`),
    retired,
  };
}

function parseProject(value: unknown, where: string): ProjectTrait {
  const p = object(
    value,
    "delegations,handle,heads,leaves,members,project_id,repo_bytes,revokes,scope,signed_seq,tombstoned",
    where,
  );
  if (p.scope !== "swarm-wide" && p.scope !== "members-only") {
    malformed(`${where}.scope`, "is not swarm-wide or members-only");
  }
  if (
    typeof p.heads !== "object" || p.heads === null || Array.isArray(p.heads)
  ) {
    malformed(`${where}.heads`, "is not an object");
  }
  const entries = Object.entries(p.heads as Record<string, unknown>);
  list(entries, MAX_TRAIT_HEADS, `${where}.heads`);
  const heads: Record<string, string> = {};
  for (const [ref, sha] of entries) {
    if (ref.length > MAX_REF_CHARS || !TRAIT_REF.test(ref)) {
      malformed(`${where}.heads`, `has a bad ref name ${JSON.stringify(ref)}`);
    }
    heads[ref] = match(
      sha,
      TRAIT_HEAD_ID,
      `${where}.heads[${JSON.stringify(ref)}]`,
    );
  }
  return {
    project_id: match(p.project_id, HEX64, `${where}.project_id`),
    handle: match(p.handle, HANDLE_PATTERN, `${where}.handle`),
    scope: p.scope,
    heads,
    repo_bytes: count(p.repo_bytes, `${where}.repo_bytes`),
    revokes: count(p.revokes, `${where}.revokes`),
    leaves: count(p.leaves, `${where}.leaves`),
    delegations: count(p.delegations, `${where}.delegations`),
    tombstoned: bool(p.tombstoned, `${where}.tombstoned`),
    signed_seq: p.signed_seq === null
      ? null
      : count(p.signed_seq, `${where}.signed_seq`),
    members: list(p.members, MAX_TRAIT_MEMBERS, `${where}.members`).map((
      k,
      i,
    ) => match(k, TRAIT_PUBKEY, `${where}.members[${i}]`)),
  };
}

function parseGitback(value: unknown, where: string): GitbackTrait | null {
  if (value === null) return null;
  const g = object(value, "projects", where);
  const seen = new Set<string>();
  const projects = list(g.projects, MAX_TRAIT_PROJECTS, `${where}.projects`)
    .map((p, i) => {
      const project = parseProject(p, `${where}.projects[${i}]`);
      if (seen.has(project.project_id)) {
        malformed(`${where}.projects`, `lists ${project.project_id} twice`);
      }
      seen.add(project.project_id);
      return project;
    });
  return { projects };
}

/**
 * Parses and verifies the traits `bytes` delivered over a connection whose
 * client certificate names `certificateHost`. Throws a {@link TraitsError}
 * (400 malformed or a bad name claim, 403 another host's traits, 413 too
 * large) and returns nothing partial.
 */
export function parseTraits(
  bytes: Uint8Array,
  options: { certificateHost: string },
): Traits {
  if (bytes.length > MAX_TRAITS_BYTES) {
    throw new TraitsError(
      413,
      `the traits are too large: ${bytes.length} bytes, at most ${MAX_TRAITS_BYTES} are accepted.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new TraitsError(400, "the traits are not valid UTF-8 JSON.");
  }
  const t = object(value, "at,envoy,users,v", "the document");
  if (t.v !== 1) malformed("v", "is not 1");
  if (!isHostName(t.envoy)) malformed("envoy", "is not a host name");
  if (t.envoy !== options.certificateHost) {
    throw new TraitsError(
      403,
      `these traits are for ${t.envoy}, but the client certificate is ${options.certificateHost}'s; an envoy reports only its own traits.`,
    );
  }
  const at = count(t.at, "at");
  const seen = new Set<string>();
  const users = list(t.users, MAX_TRAIT_USERS, "users").map((u, i) => {
    const where = `users[${i}]`;
    const r = object(u, "gitback,puddle,user", where);
    if (typeof r.user !== "string" || !isValidUsername(r.user)) {
      malformed(`${where}.user`, "is not a valid user name");
    }
    if (seen.has(r.user)) malformed("users", `lists ${r.user} twice`);
    seen.add(r.user);
    return {
      user: r.user,
      puddle: parsePuddle(r.puddle, `${where}.puddle`),
      gitback: parseGitback(r.gitback, `${where}.gitback`),
    };
  });
  return { v: 1, envoy: t.envoy, at, users };
}
