/**
 * Signed ref states: after every push the pusher signs, through their
 * session helper, the project's complete ref state, its sequence number and
 * the id of the state it follows. Replicas move refs only to a state that
 * verifies against a chain granting push rights, so an envoy that merely
 * holds someone's chain can neither create, move nor delete a ref, and an
 * older state can never be replayed over a newer one.
 *
 * Wire form: `{"body": "<base64 of canonical JSON>", "sig": "<hex>",
 * "chain": [<signer's token chain, root first>]}`; the id of a state is the
 * SHA-256 of its body bytes.
 *
 * @module
 */

import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  type SignedObjectErrorReason,
  signedObjectWire,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import { writeTextAtomic } from "../platform/fs.ts";
import {
  type ChainVerifier,
  decodeToken,
  TokenError,
  type VerifiedChain,
  verifyChain,
} from "./tokens.ts";

const CONTEXT = SIGN_CONTEXTS.gitbackRefs;

/** Most refs one state may list. */
export const MAX_REFS = 4096;
/** Largest encoded state (body, signature and chain). */
export const MAX_REF_STATE_BYTES = 512 * 1024;
/** States an envoy keeps per project besides the current one. */
export const MAX_RECENT_STATES = 64;
/**
 * Refs under this prefix belong to the envoys, not to pushers: tips that
 * lost a conflict are kept there. No state lists them; no push may set them.
 */
export const LOST_PREFIX = "refs/gitback/";

/** The signed body. */
export interface RefStateBody {
  v: 1;
  kind: "gitback-refs";
  project_id: string;
  /** One more than the state it follows; 1 for the first. */
  seq: number;
  /** Id of the state this one follows, null for the first. */
  parent: string | null;
  /** Every ref of the repository after the push: name → object id. */
  refs: Record<string, string>;
  /** The pusher's puddle key, `ed25519:<hex>`; the chain's leaf subject. */
  signer: string;
  /** When it was signed, Unix seconds (informational). */
  at: number;
}

/** A state as it travels and is stored. */
export interface RefStateWire {
  body: string;
  sig: string;
  chain: unknown[];
}

/** A state decoded and checked for shape (not yet for signature). */
export interface RefState {
  wire: RefStateWire;
  body: RefStateBody;
  id: string;
}

/** A state whose signature and chain verified. */
export interface VerifiedRefState extends RefState {
  chain: VerifiedChain;
}

const KEYS = [
  "at",
  "kind",
  "parent",
  "project_id",
  "refs",
  "seq",
  "signer",
  "v",
];
const HEX64 = /^[0-9a-f]{64}$/;
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * True for a ref name a state may carry: `refs/…`, of safe characters,
 * no empty, `.`-led or `.lock` component, no `..`, not under
 * {@link LOST_PREFIX}, at most 255 bytes.
 */
export function isStateRefName(name: unknown): name is string {
  if (typeof name !== "string" || name.length > 255) return false;
  if (!/^refs\/[A-Za-z0-9._\/+@-]+$/.test(name)) return false;
  if (name.startsWith(LOST_PREFIX) || name.includes("..")) return false;
  return name.split("/").every((part) =>
    part.length > 0 && !part.startsWith(".") && !part.endsWith(".lock")
  );
}

function malformed(what: string): never {
  throw new TokenError("malformed", `ref state ${what}.`);
}

function checkBody(value: unknown): RefStateBody {
  const b = value as Record<string, unknown>;
  if (typeof b !== "object" || b === null || Array.isArray(b)) {
    malformed("body is not an object");
  }
  if (Object.keys(b).sort().join(",") !== KEYS.join(",")) {
    malformed(`body has fields ${Object.keys(b).sort().join(", ")}`);
  }
  if (b.v !== 1 || b.kind !== "gitback-refs") malformed("has an unknown kind");
  if (typeof b.project_id !== "string" || !HEX64.test(b.project_id)) {
    malformed("has a bad project_id");
  }
  if (!Number.isSafeInteger(b.seq) || (b.seq as number) < 1) {
    malformed("has a bad seq");
  }
  if (
    b.parent !== null && (typeof b.parent !== "string" || !HEX64.test(b.parent))
  ) {
    malformed("has a bad parent");
  }
  if ((b.seq === 1) !== (b.parent === null)) {
    malformed("has a parent exactly when its seq is above 1");
  }
  if (
    typeof b.signer !== "string" || !/^ed25519:[0-9a-f]{64}$/.test(b.signer)
  ) {
    malformed("has a bad signer");
  }
  if (!Number.isSafeInteger(b.at) || (b.at as number) < 0) {
    malformed("has a bad time");
  }
  const refs = b.refs as Record<string, unknown>;
  if (typeof refs !== "object" || refs === null || Array.isArray(refs)) {
    malformed("has no refs object");
  }
  const names = Object.keys(refs);
  if (names.length > MAX_REFS) {
    malformed(`lists ${names.length} refs (at most ${MAX_REFS})`);
  }
  const all = new Set(names);
  for (const name of names) {
    if (!isStateRefName(name)) {
      malformed("lists a ref name that is not allowed");
    }
    // git cannot hold refs/x and refs/x/y at once.
    for (let i = name.indexOf("/"); i > 0; i = name.indexOf("/", i + 1)) {
      if (all.has(name.slice(0, i))) {
        malformed("lists a ref inside another ref's name");
      }
    }
    if (
      typeof refs[name] !== "string" || !OBJECT_ID.test(refs[name] as string)
    ) {
      malformed("lists a ref whose value is not an object id");
    }
  }
  return b as unknown as RefStateBody;
}

/** Why a state's `{body, sig}` was refused, completing "ref state …". */
const DECODE_MESSAGES: Record<SignedObjectErrorReason, string> = {
  "shape": 'is not {"body": "<base64>", "sig": "<hex>", "chain": […]}',
  "too-large": `is larger than ${MAX_REF_STATE_BYTES} bytes`,
  "signature": "signature is not 128 hex digits",
  "base64": "body is not base64 of UTF-8 JSON",
  "json": "body is not base64 of UTF-8 JSON",
  "not-object": "body is not an object",
  "not-i-json": "body is not in canonical (RFC 8785) form",
  "not-canonical": "body is not in canonical (RFC 8785) form",
};

/** Decodes a wire state and checks its shape and canonical encoding. */
export function decodeRefState(wire: unknown): RefState {
  const w = wire as Partial<RefStateWire>;
  if (
    typeof w !== "object" || w === null || typeof w.body !== "string" ||
    typeof w.sig !== "string" || !Array.isArray(w.chain) ||
    Object.keys(w).length !== 3
  ) {
    malformed(DECODE_MESSAGES.shape);
  }
  if (JSON.stringify(w).length > MAX_REF_STATE_BYTES) {
    malformed(DECODE_MESSAGES["too-large"]);
  }
  const { body, id } = decodeSigned({ body: w.body, sig: w.sig }, {
    check: checkBody,
    refuse: (reason) => malformed(DECODE_MESSAGES[reason]),
  });
  return { wire: { body: w.body, sig: w.sig, chain: w.chain }, body, id };
}

/**
 * Checks a state for `projectId`: its shape, its signature by `signer`, and
 * its chain, which must verify for the project (not revoked, not left,
 * within its validity window, through the founder's `delegations`) and end
 * at `signer`. An envoy passes its own `verifyChain`, which supplies the
 * delegations it knows, instead.
 */
export async function verifyRefState(
  wire: unknown,
  options: {
    projectId: string;
    revoked?: ReadonlySet<string>;
    tombstoned?: boolean;
    delegations?: readonly unknown[];
    verifyChain?: ChainVerifier;
  },
): Promise<VerifiedRefState> {
  const state = decodeRefState(wire);
  if (state.body.project_id !== options.projectId) {
    throw new TokenError(
      "wrong-project",
      "the ref state is for another project.",
    );
  }
  const signer = parsePublicKey(state.body.signer);
  if (
    !verifySigned(signer, CONTEXT, refStateBytes(state.body), state.wire.sig)
  ) {
    throw new TokenError(
      "bad-signature",
      "the ref state was not signed by its signer.",
    );
  }
  const chain = await (options.verifyChain ?? verifyChain)(state.wire.chain, {
    projectId: options.projectId,
    presenter: signer,
    revoked: options.revoked,
    tombstoned: options.tombstoned,
    delegations: options.delegations,
  });
  return { ...state, chain };
}

/** The body a pusher is asked to sign: `refs` after `parent`. */
export function nextRefStateBody(fields: {
  projectId: string;
  parent: RefState | null;
  refs: Map<string, string>;
  signer: Uint8Array;
  now?: number;
}): RefStateBody {
  return {
    v: 1,
    kind: "gitback-refs",
    project_id: fields.projectId,
    seq: (fields.parent?.body.seq ?? 0) + 1,
    parent: fields.parent?.id ?? null,
    refs: Object.fromEntries(
      [...fields.refs].filter(([name]) => !name.startsWith(LOST_PREFIX)),
    ),
    signer: formatPublicKey(fields.signer),
    at: fields.now ?? Math.floor(Date.now() / 1000),
  };
}

/** The bytes signed for `body`. */
export function refStateBytes(body: RefStateBody): Uint8Array {
  return canonicalBytes(body);
}

/** Signs `body` with `signer` and attaches the signer's `chain`. */
export async function signRefState(
  signer: Signer,
  body: RefStateBody,
  chain: unknown[],
): Promise<RefStateWire> {
  return { ...await signObject(signer, CONTEXT, checkBody(body)), chain };
}

/** The wire form of a body signed elsewhere (by a session helper). */
export function refStateWire(
  body: RefStateBody,
  signature: Uint8Array,
  chain: unknown[],
): RefStateWire {
  return { ...signedObjectWire(refStateBytes(body), signature), chain };
}

/**
 * True when `a` wins over `b`: the higher seq; at equal seq an admin's state
 * over a member's, then the smaller id.
 */
export function supersedes(a: RefState, b: RefState): boolean {
  if (a.body.seq !== b.body.seq) return a.body.seq > b.body.seq;
  const ranks = [a, b].map((s) => roleOf(s) === "admin" ? 1 : 0);
  if (ranks[0] !== ranks[1]) return ranks[0] > ranks[1];
  return a.id < b.id;
}

/**
 * The role of the state's signer: its chain's last token. Only states that
 * verified are kept, so the chain here is one that verified.
 */
export function roleOf(state: RefState): "admin" | "member" {
  try {
    return decodeToken(state.wire.chain[state.wire.chain.length - 1]).body
      .role;
  } catch {
    return "member";
  }
}

/** The states an envoy keeps for a project, inside its bare repository. */
export interface StoredRefStates {
  current: RefState | null;
  /**
   * False while the current state is a member's that followed a state this
   * envoy did not know (a fresh replica's first state): any admin state
   * then wins over it, whatever its seq, so a member cannot freeze a fresh
   * replica with a huge seq. Absent means true.
   */
  anchored?: boolean;
  /** Earlier and losing states, newest last, at most {@link MAX_RECENT_STATES}. */
  recent: RefState[];
}

/** Where a repository's states are kept. */
export function refStatesPath(repo: string): string {
  return `${repo}/vigo-refs.json`;
}

/**
 * The states recorded inside `repo`; none when there is no readable record.
 * Only this envoy writes the file (root-owned, inside the repository).
 */
export function readRefStates(repo: string): StoredRefStates {
  const none: StoredRefStates = { current: null, recent: [] };
  let text: string;
  try {
    const info = Deno.lstatSync(refStatesPath(repo));
    if (!info.isFile) return none;
    text = Deno.readTextFileSync(refStatesPath(repo));
  } catch {
    return none;
  }
  try {
    const value = JSON.parse(text);
    const decode = (wire: unknown) => {
      try {
        return decodeRefState(wire);
      } catch {
        return null;
      }
    };
    return {
      current: value?.current ? decode(value.current) : null,
      anchored: value?.anchored !== false,
      recent: Array.isArray(value?.recent)
        ? value.recent.map(decode).filter((s: RefState | null) => s !== null)
        : [],
    };
  } catch {
    return none;
  }
}

/** Records `current` and the recent states inside `repo` (atomically). */
export function writeRefStates(repo: string, states: StoredRefStates): void {
  const recent = states.recent
    .filter((s) => s.id !== states.current?.id)
    .filter((s, i, all) => all.findIndex((t) => t.id === s.id) === i)
    .slice(-MAX_RECENT_STATES);
  writeTextAtomic(
    refStatesPath(repo),
    JSON.stringify({
      current: states.current?.wire ?? null,
      ...(states.anchored === false ? { anchored: false } : {}),
      recent: recent.map((s) => s.wire),
    }) + "\n",
    0o600,
  );
}
