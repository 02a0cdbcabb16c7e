/**
 * Founder delegations: the retiring founder key's signed word that a
 * project's founder authority passes to a new key, sealing what it signed
 * before it retired.
 *
 * A project's id names its genesis founder key forever
 * (`sha256(key ‖ handle)`). When that key rotates, it signs a delegation
 * `from` → `to` at position k (1-based), following delegation k-1 by id.
 * The delegation **seals** the ids of every token the retiring key issued
 * for the project. After its retirement the key has no authority of its
 * own: a token it issued verifies only when its id is in its seal, and it
 * can no longer be the holder (leaf) of a chain. No clock decides, so a
 * deposed key cannot backdate a token with any `not_before`.
 *
 * Body (RFC 8785):
 * `{"v":1,"kind":"gitback-delegation","project_id","position","previous","from","to","sealed","at"}`,
 * signed by `from` under `vigo-swarm/v1/gitback-delegation`; `sealed` is
 * the sorted list of 64-hex token ids. Wire form: `{"body","sig"}`.
 *
 * This module is the one owner of the format, of the walk from the genesis
 * founder to the current one, of the first-seen-wins merge of a stored list
 * with an offered one, and of the push-chain envelope
 * (`{chain, delegations}`) that carries delegations beside a token chain.
 *
 * @module
 */

import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  refusalMessages,
  type SignedObject,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";

/** Most delegations a project may have; a sixth rotation needs a re-found. */
export const DELEGATION_MAX_LEN = 5;
/** From this many delegations on, status warns. */
export const DELEGATION_WARN_LEN = 3;
/** Most token ids one delegation may seal. */
export const MAX_SEALED_IDS = 256;
/** Most characters of one delegation's base64 body. */
export const MAX_DELEGATION_BYTES = 32 * 1024;

/** A delegation as it travels and is stored. */
export type DelegationWire = SignedObject;

/** The signed body. */
export interface DelegationBody {
  v: 1;
  kind: "gitback-delegation";
  project_id: string;
  /** 1 for the first rotation of the project's founder, then 2, … */
  position: number;
  /** The id of the delegation at `position - 1`; null at position 1. */
  previous: string | null;
  /** The retiring founder key, `ed25519:<hex>`; the signer. */
  from: string;
  /** The new founder key. */
  to: string;
  /** Sorted ids of the tokens `from` issued for the project. */
  sealed: string[];
  /** When it was signed, Unix seconds (informational; decides nothing). */
  at: number;
}

/** A delegation decoded and checked for form (not yet for signature). */
export interface DecodedDelegation {
  wire: DelegationWire;
  bytes: Uint8Array;
  body: DelegationBody;
  id: string;
}

/** Why a delegation list was refused. */
export type DelegationErrorCode =
  | "malformed"
  | "too-many"
  | "wrong-project"
  | "not-anchored"
  | "out-of-order"
  | "bad-signature"
  | "reused-key";

/** A refused delegation or list. */
export class DelegationError extends Error {
  readonly code: DelegationErrorCode;
  constructor(code: DelegationErrorCode, message: string) {
    super(message);
    this.name = "DelegationError";
    this.code = code;
  }
}

const KEYS = [
  "at",
  "from",
  "kind",
  "position",
  "previous",
  "project_id",
  "sealed",
  "to",
  "v",
].join(",");
const HEX64 = /^[0-9a-f]{64}$/;
const PUBKEY = /^ed25519:[0-9a-f]{64}$/;

function malformed(message: string): never {
  throw new DelegationError("malformed", message);
}

function checkBody(b: Record<string, unknown>): DelegationBody {
  const keys = Object.keys(b).sort().join(",");
  if (keys !== KEYS) malformed(`a delegation body has fields ${keys}.`);
  if (b.v !== 1 || b.kind !== "gitback-delegation") {
    malformed("a delegation body has an unknown version or kind.");
  }
  if (typeof b.project_id !== "string" || !HEX64.test(b.project_id)) {
    malformed("a delegation has a bad project_id.");
  }
  if (
    !Number.isSafeInteger(b.position) || (b.position as number) < 1 ||
    (b.position as number) > DELEGATION_MAX_LEN
  ) {
    malformed(
      `a delegation's position must be 1 to ${DELEGATION_MAX_LEN}.`,
    );
  }
  if (
    b.previous !== null &&
    (typeof b.previous !== "string" || !HEX64.test(b.previous))
  ) malformed("a delegation has a bad previous id.");
  if (typeof b.from !== "string" || !PUBKEY.test(b.from)) {
    malformed("a delegation has a bad from key.");
  }
  if (typeof b.to !== "string" || !PUBKEY.test(b.to)) {
    malformed("a delegation has a bad to key.");
  }
  if (!Array.isArray(b.sealed) || b.sealed.length > MAX_SEALED_IDS) {
    malformed(`a delegation seals a list of at most ${MAX_SEALED_IDS} ids.`);
  }
  const sealed = b.sealed as unknown[];
  for (const [i, id] of sealed.entries()) {
    if (typeof id !== "string" || !HEX64.test(id)) {
      malformed("a delegation seals something that is not a token id.");
    }
    if (i > 0 && (sealed[i - 1] as string) >= id) {
      malformed("a delegation's sealed ids are not sorted and unique.");
    }
  }
  if (!Number.isSafeInteger(b.at) || (b.at as number) < 0) {
    malformed("a delegation has a bad time.");
  }
  return b as unknown as DelegationBody;
}

const DECODE_MESSAGES = refusalMessages("delegation", MAX_DELEGATION_BYTES);

/** Decodes a wire delegation and checks its form. */
export function decodeDelegation(wire: unknown): DecodedDelegation {
  const decoded = decodeSigned(wire, {
    maxBodyChars: MAX_DELEGATION_BYTES,
    check: checkBody,
    refuse: (reason) => malformed(DECODE_MESSAGES[reason]),
  });
  return {
    wire: decoded.wire,
    bytes: decoded.bytes,
    body: decoded.body,
    id: decoded.id,
  };
}

/** The sorted, de-duplicated form of a set of token ids, ready to seal. */
export function sealOf(ids: Iterable<string>): string[] {
  const unique = [...new Set(ids)].sort();
  for (const id of unique) {
    if (!HEX64.test(id)) throw new Error(`${id} is not a token id.`);
  }
  if (unique.length > MAX_SEALED_IDS) {
    throw new DelegationError(
      "too-many",
      `the retiring key issued ${unique.length} tokens for this project; a delegation seals at most ${MAX_SEALED_IDS}.`,
    );
  }
  return unique;
}

/**
 * The delegation at `position` from `signer` (the current founder) to
 * `to`, following `previous`, sealing `sealed` token ids.
 */
export async function signDelegation(
  signer: Signer,
  fields: {
    projectId: string;
    position: number;
    previous: string | null;
    to: Uint8Array;
    sealed: Iterable<string>;
    now?: number;
  },
): Promise<DelegationWire> {
  const body: DelegationBody = {
    v: 1,
    kind: "gitback-delegation",
    project_id: fields.projectId,
    position: fields.position,
    previous: fields.previous,
    from: formatPublicKey(signer.publicKey),
    to: formatPublicKey(fields.to),
    sealed: sealOf(fields.sealed),
    at: fields.now ?? Math.floor(Date.now() / 1000),
  };
  checkBody(body as unknown as Record<string, unknown>);
  return await signObject(signer, SIGN_CONTEXTS.gitbackDelegation, body);
}

/**
 * The founder keys of a project, genesis first, as a verified delegation
 * list makes them: every key but the last is retired and keeps only what
 * its delegation sealed.
 */
export interface FounderPath {
  /** `ed25519:<hex>` keys: the genesis founder, then each `to`. */
  keys: readonly string[];
  /** The current founder: the last key. */
  current: string;
  /** The verified delegations, position order. */
  delegations: readonly DecodedDelegation[];
  /** True when `key` is one of the project's founder keys, retired or not. */
  isFounder(key: string): boolean;
  /** True when `key` was a founder key and has retired. */
  isRetired(key: string): boolean;
  /** True when retired `key`'s delegation sealed token `id`. */
  sealed(key: string, id: string): boolean;
  /** The 1-based position of the delegation that retired `key`, or 0. */
  retiredAt(key: string): number;
}

/**
 * Walks `list` from `genesis` (the key inside the project id): at most
 * {@link DELEGATION_MAX_LEN}, each for `projectId`, at its position,
 * following the previous one by id, from the key the previous one
 * delegated to, to a key never used before in the walk, and signed by its
 * `from`. Throws a {@link DelegationError} saying what failed.
 */
export function verifyDelegations(
  list: unknown,
  options: { projectId: string; genesis: string },
): FounderPath {
  const wires = list ?? [];
  if (!Array.isArray(wires)) {
    malformed("delegations must be a list, first rotation first.");
  }
  if (wires.length > DELEGATION_MAX_LEN) {
    throw new DelegationError(
      "too-many",
      `a project has at most ${DELEGATION_MAX_LEN} delegations, not ${wires.length}; it must be re-founded.`,
    );
  }
  const decoded = wires.map(decodeDelegation);
  const keys = [options.genesis];
  const seals = new Map<string, Set<string>>();
  const positions = new Map<string, number>();
  for (const [i, d] of decoded.entries()) {
    const b = d.body;
    const at = i + 1;
    if (b.project_id !== options.projectId) {
      throw new DelegationError(
        "wrong-project",
        `delegation ${at} is for project ${b.project_id}, not ${options.projectId}.`,
      );
    }
    if (
      b.position !== at || b.previous !== (i === 0 ? null : decoded[i - 1].id)
    ) {
      throw new DelegationError(
        "out-of-order",
        `delegation ${at} does not follow delegation ${i} (position ${b.position}); delegations must come in order, each naming the one before.`,
      );
    }
    if (b.from !== keys[i]) {
      throw new DelegationError(
        "not-anchored",
        i === 0
          ? `the first delegation is not from the genesis founder ${options.genesis}.`
          : `delegation ${at} is not from ${
            keys[i]
          }, the founder delegation ${i} named.`,
      );
    }
    if (keys.includes(b.to)) {
      throw new DelegationError(
        "reused-key",
        `delegation ${at} hands the project back to ${b.to}, a key it already had.`,
      );
    }
    if (
      !verifySigned(
        parsePublicKey(b.from),
        SIGN_CONTEXTS.gitbackDelegation,
        d.bytes,
        d.wire.sig,
      )
    ) {
      throw new DelegationError(
        "bad-signature",
        `delegation ${at} is not signed by ${b.from}.`,
      );
    }
    seals.set(b.from, new Set(b.sealed));
    positions.set(b.from, at);
    keys.push(b.to);
  }
  const current = keys[keys.length - 1];
  const all = new Set(keys);
  return {
    keys,
    current,
    delegations: decoded,
    isFounder: (key) => all.has(key),
    isRetired: (key) => seals.has(key),
    sealed: (key, id) => seals.get(key)?.has(id) ?? false,
    retiredAt: (key) => positions.get(key) ?? 0,
  };
}

/** What {@link mergeDelegations} decided. */
export interface MergedDelegations {
  /** The list to verify with: the stored one, extended when the offer did. */
  delegations: DelegationWire[];
  /** True when the offer added delegations after the stored ones. */
  extended: boolean;
  /** Set when the offer holds a different delegation where one is stored. */
  conflict?: { position: number; kept: string; offered: string };
}

/**
 * First seen wins: an offered list that starts with the stored one may
 * extend it; one that differs at a stored position does not replace it,
 * and the difference is reported. Compares ids only; the caller verifies
 * the result (and verifies an offered list on its own before it reports a
 * conflict, so that garbage is not called a conflict).
 */
export function mergeDelegations(
  stored: readonly DelegationWire[],
  offered: readonly unknown[],
): MergedDelegations {
  const storedIds = stored.map((w) => decodeDelegation(w).id);
  const offeredDecoded = offered.map(decodeDelegation);
  const common = Math.min(storedIds.length, offeredDecoded.length);
  for (let i = 0; i < common; i++) {
    if (storedIds[i] !== offeredDecoded[i].id) {
      return {
        delegations: [...stored],
        extended: false,
        conflict: {
          position: i + 1,
          kept: storedIds[i],
          offered: offeredDecoded[i].id,
        },
      };
    }
  }
  if (offeredDecoded.length <= storedIds.length) {
    return { delegations: [...stored], extended: false };
  }
  return {
    delegations: [
      ...stored,
      ...offeredDecoded.slice(common).map((d) => d.wire),
    ],
    extended: true,
  };
}

/** A token chain with the founder's delegations, as `X-Vigo-Chain` carries it. */
export interface PushChain {
  chain: unknown[];
  delegations: unknown[];
}

/**
 * Reads a push chain: `{chain, delegations}`, or a bare chain array (which
 * has no delegations). Anything else yields an empty chain, which every
 * verifier refuses.
 */
export function readPushChain(value: unknown): PushChain {
  if (Array.isArray(value)) return { chain: value, delegations: [] };
  const v = value as Partial<PushChain> | null;
  if (
    typeof v === "object" && v !== null && Array.isArray(v.chain) &&
    (v.delegations === undefined || Array.isArray(v.delegations))
  ) {
    return { chain: v.chain, delegations: v.delegations ?? [] };
  }
  return { chain: [], delegations: [] };
}

/** The push chain to send: the chain and the delegations it needs. */
export function pushChain(
  chain: readonly unknown[],
  delegations: readonly unknown[],
): PushChain {
  return { chain: [...chain], delegations: [...delegations] };
}
