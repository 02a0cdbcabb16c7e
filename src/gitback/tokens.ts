/**
 * Capability tokens: signed statements "issuer grants subject role R on
 * project P", chained from the founder's bootstrap token, and verified
 * offline against the project id.
 *
 * Wire form: `{"body": "<base64 of the exact body bytes>", "sig": "<hex>"}`.
 * The body is RFC 8785 JSON; its id is the SHA-256 of those bytes.
 *
 * @module
 */

import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  type SignedObject,
  type SignedObjectErrorReason,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import { projectId as computeProjectId } from "./project_id.ts";
import {
  DelegationError,
  type FounderPath,
  verifyDelegations,
} from "./delegations.ts";

/** A token's role; admins may mint children and revoke. */
export type Role = "admin" | "member";

/** The signed body of a token. */
export interface TokenBody {
  v: 1;
  project_id: string;
  handle: string;
  issuer: string;
  subject: string;
  role: Role;
  not_before: number;
  expires: number | null;
  parent: string | null;
  nonce: string;
}

/** A token as it travels. */
export type SignedToken = SignedObject;

/** A token decoded and checked for shape (not yet for signature). */
export interface DecodedToken {
  wire: SignedToken;
  bodyBytes: Uint8Array;
  body: TokenBody;
  id: string;
}

/** A chain that passed {@link verifyChain}. */
export interface VerifiedChain {
  projectId: string;
  handle: string;
  founder: Uint8Array;
  leaf: DecodedToken;
  role: Role;
  ids: string[];
  /** The chain's wire tokens, root first, as they verified. */
  chain: SignedToken[];
  /** The founder keys the delegations made, genesis first. */
  founderPath: FounderPath;
  /** The current founder: `founder` when the project has no delegations. */
  currentFounder: Uint8Array;
}

/** Most links a chain may have. */
export const MAX_CHAIN_LENGTH = 8;
/** Most bytes a chain may take, serialized as JSON. */
export const MAX_CHAIN_BYTES = 16 * 1024;
/** Allowed clock difference between envoys, in seconds. */
export const CLOCK_SKEW_S = 60;

const CONTEXT = SIGN_CONTEXTS.gitbackToken;
const KEYS = [
  "expires",
  "handle",
  "issuer",
  "nonce",
  "not_before",
  "parent",
  "project_id",
  "role",
  "subject",
  "v",
];
const HEX64 = /^[0-9a-f]{64}$/;
const PUBKEY = /^ed25519:[0-9a-f]{64}$/;

/** Why a token or chain was refused. */
export type TokenErrorCode =
  | "too-long"
  | "too-large"
  | "malformed"
  | "bad-signature"
  | "not-anchored"
  | "wrong-project"
  | "broken-link"
  | "outranks-parent"
  | "outlives-parent"
  | "not-yet-valid"
  | "expired"
  | "revoked"
  | "tombstoned"
  | "not-presenter"
  | "bad-delegation"
  | "not-sealed"
  | "retired-holder";

/** A refused token or chain. */
export class TokenError extends Error {
  readonly code: TokenErrorCode;
  constructor(code: TokenErrorCode, message: string) {
    super(message);
    this.name = "TokenError";
    this.code = code;
  }
}

const RANK: Record<Role, number> = { member: 0, admin: 1 };

function isInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function checkBody(value: unknown): TokenBody {
  const b = value as Record<string, unknown>;
  const bad = (what: string): never => {
    throw new TokenError("malformed", `token body has ${what}.`);
  };
  if (typeof b !== "object" || b === null || Array.isArray(b)) bad("no object");
  const keys = Object.keys(b).sort();
  if (keys.join(",") !== KEYS.join(",")) {
    bad(`fields ${keys.join(", ")} instead of ${KEYS.join(", ")}`);
  }
  if (b.v !== 1) bad("an unknown version");
  if (typeof b.project_id !== "string" || !HEX64.test(b.project_id)) {
    bad("a bad project_id");
  }
  if (
    typeof b.handle !== "string" || b.handle.length === 0 ||
    b.handle.length > 64
  ) bad("a bad handle");
  if (typeof b.issuer !== "string" || !PUBKEY.test(b.issuer)) {
    bad("a bad issuer");
  }
  if (typeof b.subject !== "string" || !PUBKEY.test(b.subject)) {
    bad("a bad subject");
  }
  if (b.role !== "admin" && b.role !== "member") bad("a bad role");
  if (!isInteger(b.not_before)) bad("a bad not_before");
  if (b.expires !== null && !isInteger(b.expires)) bad("a bad expires");
  if (
    b.parent !== null && (typeof b.parent !== "string" || !HEX64.test(b.parent))
  ) bad("a bad parent");
  if (typeof b.nonce !== "string" || !/^[0-9a-f]{32}$/.test(b.nonce)) {
    bad("a bad nonce");
  }
  return b as unknown as TokenBody;
}

/** Why a token's wire form was refused, in a token's words. */
const DECODE_MESSAGES: Record<SignedObjectErrorReason, string> = {
  "shape": 'a token must be {"body": "<base64>", "sig": "<hex>"}.',
  "too-large": 'a token must be {"body": "<base64>", "sig": "<hex>"}.',
  "signature": "a token signature must be 128 hex digits.",
  "base64": "a token body is not base64 of UTF-8 JSON.",
  "json": "a token body is not base64 of UTF-8 JSON.",
  "not-object": "token body has no object.",
  "not-i-json": "a token body is not in canonical (RFC 8785) form.",
  "not-canonical": "a token body is not in canonical (RFC 8785) form.",
};

/**
 * Decodes a wire token and checks its shape and canonical encoding. The id
 * (SHA-256 of the body bytes, as `bodyId` computes it) is computed
 * synchronously so that listings need no await.
 */
export function decodeToken(wire: unknown): DecodedToken {
  const decoded = decodeSigned(wire, {
    check: checkBody,
    refuse: (reason) => {
      throw new TokenError("malformed", DECODE_MESSAGES[reason]);
    },
  });
  return {
    wire: decoded.wire,
    bodyBytes: decoded.bytes,
    body: decoded.body,
    id: decoded.id,
  };
}

async function sign(signer: Signer, body: TokenBody): Promise<SignedToken> {
  return await signObject(signer, CONTEXT, body);
}

function nonce(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The founder's bootstrap admin token for `handle`. */
export async function mintBootstrapToken(
  signer: Signer,
  handle: string,
  options: { now?: number } = {},
): Promise<SignedToken> {
  const founder = formatPublicKey(signer.publicKey);
  return await sign(signer, {
    v: 1,
    project_id: await computeProjectId(signer.publicKey, handle),
    handle,
    issuer: founder,
    subject: founder,
    role: "admin",
    not_before: options.now ?? nowSeconds(),
    expires: null,
    parent: null,
    nonce: nonce(),
  });
}

/**
 * A child of the last token of `parentChain`, for `subject`. The signer must
 * be the parent's subject and the parent an admin token; the child may not
 * outrank or outlive it.
 */
export async function mintChildToken(
  signer: Signer,
  parentChain: readonly SignedToken[],
  options: {
    subject: Uint8Array;
    role: Role;
    expires?: number | null;
    now?: number;
  },
): Promise<SignedToken> {
  const parent = decodeToken(parentChain[parentChain.length - 1]);
  if (parent.body.subject !== formatPublicKey(signer.publicKey)) {
    throw new TokenError(
      "broken-link",
      "only the subject of the parent token can mint its children.",
    );
  }
  if (parent.body.role !== "admin") {
    throw new TokenError(
      "outranks-parent",
      "a member token cannot mint children; ask an admin.",
    );
  }
  const expires = options.expires ?? null;
  if (
    parent.body.expires !== null &&
    (expires === null || expires > parent.body.expires)
  ) {
    throw new TokenError(
      "outlives-parent",
      `a child token cannot outlive its parent (which expires ${
        new Date(parent.body.expires * 1000).toISOString()
      }).`,
    );
  }
  return await sign(signer, {
    v: 1,
    project_id: parent.body.project_id,
    handle: parent.body.handle,
    issuer: parent.body.subject,
    subject: formatPublicKey(options.subject),
    role: options.role,
    not_before: Math.max(options.now ?? nowSeconds(), parent.body.not_before),
    expires,
    parent: parent.id,
    nonce: nonce(),
  });
}

/**
 * The new founder's admin token after a rotation: issued by the new key to
 * itself under the bootstrap token, which a delegation lets it do.
 */
export async function mintSuccessorToken(
  signer: Signer,
  bootstrap: SignedToken,
  options: { now?: number } = {},
): Promise<SignedToken> {
  const root = decodeToken(bootstrap);
  if (root.body.parent !== null) {
    throw new TokenError(
      "not-anchored",
      "a successor token hangs under the bootstrap token.",
    );
  }
  const key = formatPublicKey(signer.publicKey);
  return await sign(signer, {
    v: 1,
    project_id: root.body.project_id,
    handle: root.body.handle,
    issuer: key,
    subject: key,
    role: "admin",
    not_before: Math.max(options.now ?? nowSeconds(), root.body.not_before),
    expires: null,
    parent: root.id,
    nonce: nonce(),
  });
}

/** Options for {@link verifyChain}. */
export interface VerifyOptions {
  projectId: string;
  /** When given, the leaf's subject must be this key. */
  presenter?: Uint8Array;
  /** Unix seconds; defaults to now. */
  now?: number;
  revoked?: ReadonlySet<string>;
  tombstoned?: boolean;
  /** Skip validity-window checks (used to judge revocations of expired tokens). */
  ignoreTime?: boolean;
  /**
   * The founder's delegations (delegations.ts), first rotation first; none
   * when the genesis founder never rotated.
   */
  delegations?: readonly unknown[];
}

/**
 * Something that verifies a chain as {@link verifyChain} does: that
 * function, or an envoy's wrapper that supplies the delegations it knows.
 */
export type ChainVerifier = (
  chain: unknown,
  options: VerifyOptions,
) => Promise<VerifiedChain>;

/**
 * Verifies a chain offline: root first, anchored to the founder key that
 * reproduces `projectId`, every link issued by its parent's subject under an
 * admin parent, never outranking or outliving it, every signature valid,
 * every link within its validity window (±60 s), none revoked.
 *
 * With delegations, the walk from the genesis founder to the current one
 * comes first. Any founder key may then issue under a token held by any
 * founder key, but a retired founder key's tokens verify only when its
 * delegation sealed them, and a retired key cannot hold the leaf.
 */
export async function verifyChain(
  chain: unknown,
  options: VerifyOptions,
): Promise<VerifiedChain> {
  if (!Array.isArray(chain) || chain.length === 0) {
    throw new TokenError(
      "malformed",
      "a token chain must be a non-empty array, root first.",
    );
  }
  if (chain.length > MAX_CHAIN_LENGTH) {
    throw new TokenError(
      "too-long",
      `a token chain may have at most ${MAX_CHAIN_LENGTH} links, not ${chain.length}.`,
    );
  }
  if (JSON.stringify(chain).length > MAX_CHAIN_BYTES) {
    throw new TokenError(
      "too-large",
      `a token chain may take at most ${MAX_CHAIN_BYTES} bytes.`,
    );
  }
  if (options.tombstoned) {
    throw new TokenError(
      "tombstoned",
      "this project is tombstoned; it was re-founded under a new id.",
    );
  }
  const links = chain.map(decodeToken);
  const root = links[0].body;
  if (
    root.parent !== null || root.issuer !== root.subject ||
    root.role !== "admin"
  ) {
    throw new TokenError(
      "not-anchored",
      "the first token must be the founder's bootstrap token.",
    );
  }
  const founder = parsePublicKey(root.issuer);
  if (await computeProjectId(founder, root.handle) !== options.projectId) {
    throw new TokenError(
      "not-anchored",
      `the chain's founder and handle do not make project ${options.projectId}.`,
    );
  }
  let path: FounderPath;
  try {
    path = verifyDelegations(options.delegations ?? [], {
      projectId: options.projectId,
      genesis: root.issuer,
    });
  } catch (error) {
    if (!(error instanceof DelegationError)) throw error;
    throw new TokenError("bad-delegation", error.message);
  }
  const now = options.now ?? nowSeconds();
  for (const [i, link] of links.entries()) {
    const b = link.body;
    if (b.project_id !== options.projectId) {
      throw new TokenError(
        "wrong-project",
        `token ${
          i + 1
        } is for project ${b.project_id}, not ${options.projectId}.`,
      );
    }
    if (b.handle !== root.handle) {
      throw new TokenError(
        "wrong-project",
        `token ${i + 1} names another handle.`,
      );
    }
    if (i > 0) {
      const parent = links[i - 1];
      // The founder role passes along the delegations: any founder key may
      // issue under a token held by a founder key.
      const issuerHeldParent = b.issuer === parent.body.subject ||
        (path.isFounder(b.issuer) && path.isFounder(parent.body.subject));
      if (b.parent !== parent.id || !issuerHeldParent) {
        throw new TokenError(
          "broken-link",
          `token ${i + 1} was not issued by the subject of token ${i}.`,
        );
      }
      if (parent.body.role !== "admin") {
        throw new TokenError(
          "outranks-parent",
          `token ${i} is a member token and cannot have children.`,
        );
      }
      if (RANK[b.role] > RANK[parent.body.role]) {
        throw new TokenError(
          "outranks-parent",
          `token ${i + 1} outranks its parent.`,
        );
      }
      if (
        parent.body.expires !== null &&
        (b.expires === null || b.expires > parent.body.expires)
      ) {
        throw new TokenError(
          "outlives-parent",
          `token ${i + 1} outlives its parent.`,
        );
      }
      if (b.not_before < parent.body.not_before - CLOCK_SKEW_S) {
        throw new TokenError(
          "broken-link",
          `token ${i + 1} predates its parent.`,
        );
      }
    } else if (b.parent !== null) {
      throw new TokenError("not-anchored", "the root token has a parent.");
    }
    if (path.isRetired(b.issuer) && !path.sealed(b.issuer, link.id)) {
      throw new TokenError(
        "not-sealed",
        `token ${
          i + 1
        } was issued by ${b.issuer}, a founder key retired by delegation ${
          path.retiredAt(b.issuer)
        }, and that delegation did not seal it; its holder needs a new invitation (the founder runs \`vigo swarm gitback project re-invite-all\`, the holder \`vigo swarm gitback project rejoin\`).`,
      );
    }
    if (
      !verifySigned(
        parsePublicKey(b.issuer),
        CONTEXT,
        link.bodyBytes,
        link.wire.sig,
      )
    ) {
      throw new TokenError(
        "bad-signature",
        `token ${i + 1} has an invalid signature.`,
      );
    }
    if (!options.ignoreTime) {
      if (b.not_before > now + CLOCK_SKEW_S) {
        throw new TokenError(
          "not-yet-valid",
          `token ${i + 1} is not valid until ${
            new Date(b.not_before * 1000).toISOString()
          }.`,
        );
      }
      if (b.expires !== null && b.expires <= now - CLOCK_SKEW_S) {
        throw new TokenError(
          "expired",
          `token ${i + 1} expired at ${
            new Date(b.expires * 1000).toISOString()
          }.`,
        );
      }
    }
    if (options.revoked?.has(link.id)) {
      throw new TokenError(
        "revoked",
        `token ${link.id} in this chain was revoked (or its holder left the project).`,
      );
    }
  }
  const leaf = links[links.length - 1];
  if (path.isRetired(leaf.body.subject)) {
    throw new TokenError(
      "retired-holder",
      `the chain's last token is held by ${leaf.body.subject}, a founder key retired by delegation ${
        path.retiredAt(leaf.body.subject)
      }.`,
    );
  }
  if (
    options.presenter &&
    leaf.body.subject !== formatPublicKey(options.presenter)
  ) {
    throw new TokenError(
      "not-presenter",
      "the chain's last token was issued to another puddle.",
    );
  }
  return {
    projectId: options.projectId,
    handle: root.handle,
    founder,
    leaf,
    role: leaf.body.role,
    ids: links.map((l) => l.id),
    chain: links.map((l) => l.wire),
    founderPath: path,
    currentFounder: parsePublicKey(path.current),
  };
}
