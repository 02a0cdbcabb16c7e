/**
 * Rotation statements and the rotation log (`retired_puddles.json`).
 *
 * When a puddle key rotates, both keys sign one statement: the new key
 * signs its acceptance of `{old, new, seq, previous, at}`
 * (`vigo-swarm/v1/puddle-rotation-accept`), and the old key signs the whole
 * body with that acceptance inside (`vigo-swarm/v1/puddle-rotation`). `seq`
 * counts rotations from 1; `previous` is the id (SHA-256 of the body) of
 * the statement before, null for the first. So the log is a hash chain from
 * the first key to the current one, and every link shows possession of
 * both of its keys.
 *
 * Body (RFC 8785):
 * `{"v":1,"kind":"puddle-rotation","old","new","seq","previous","at","accept"}`.
 * Wire form: `{"body","sig"}` (signed_object.ts).
 *
 * `retired_puddles.json` (0600):
 * `{"version":1,"rotations":[{"retired","successor","seq","at","statement"}]}`,
 * oldest first, so the retired keys read newest last.
 *
 * @module
 */

import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { fromHex, toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS, verifyWithContext } from "../crypto/signed.ts";
import {
  decodeSigned,
  type SignedObject,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import { PuddleError } from "./identity.ts";

/** The rotation log in `~/.vigo-puddle`. */
export const RETIRED_FILE = "retired_puddles.json";
/** Most rotations a log may hold (a bound on what a claim carries). */
export const MAX_ROTATIONS = 64;
/** Most bytes of the rotation log. */
export const MAX_RETIRED_BYTES = 256 * 1024;

/** The signed body of a rotation statement. */
export interface RotationBody {
  v: 1;
  kind: "puddle-rotation";
  /** The retiring key, `ed25519:<hex>`. */
  old: string;
  /** The key that replaces it. */
  new: string;
  /** 1 for the first rotation of this puddle, then 2, … */
  seq: number;
  /** The id of the statement with `seq - 1`; null for the first. */
  previous: string | null;
  /** When it was signed, Unix seconds (informational). */
  at: number;
  /** The new key's signature (128 hex) over the body without `accept`. */
  accept: string;
}

/** One entry of `retired_puddles.json`. */
export interface RetiredEntry {
  retired: string;
  successor: string;
  seq: number;
  /** ISO time of the rotation, for people. */
  at: string;
  statement: SignedObject;
}

/** A verified statement. */
export interface VerifiedRotation {
  body: RotationBody;
  id: string;
  wire: SignedObject;
}

const KEYS = "accept,at,kind,new,old,previous,seq,v";
const PUBKEY = /^ed25519:[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** Raised for a statement or log that does not hold; says which and why. */
export class RotationError extends PuddleError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "RotationError";
  }
}

function checkBody(b: Record<string, unknown>): RotationBody {
  if (Object.keys(b).sort().join(",") !== KEYS) {
    throw new RotationError("a rotation statement has unexpected fields.");
  }
  if (
    b.v !== 1 || b.kind !== "puddle-rotation" ||
    typeof b.old !== "string" || !PUBKEY.test(b.old) ||
    typeof b.new !== "string" || !PUBKEY.test(b.new) ||
    !Number.isSafeInteger(b.seq) || (b.seq as number) < 1 ||
    (b.previous !== null &&
      (typeof b.previous !== "string" || !HEX64.test(b.previous))) ||
    !Number.isSafeInteger(b.at) || (b.at as number) < 0 ||
    typeof b.accept !== "string" || !/^[0-9a-f]{128}$/.test(b.accept)
  ) {
    throw new RotationError("a rotation statement is malformed.");
  }
  return b as unknown as RotationBody;
}

/** The bytes the new key signs: the body without `accept`. */
function acceptanceBytes(body: Omit<RotationBody, "accept">): Uint8Array {
  const { v, kind, old, seq, previous, at } = body;
  return canonicalBytes({ v, kind, old, new: body.new, seq, previous, at });
}

/**
 * Signs the rotation from `oldSigner`'s key to `newSigner`'s: the new key
 * accepts, the old key signs the whole.
 */
export async function signRotation(
  oldSigner: Signer,
  newSigner: Signer,
  fields: { seq: number; previous: string | null; now?: number },
): Promise<SignedObject> {
  const inner = {
    v: 1 as const,
    kind: "puddle-rotation" as const,
    old: formatPublicKey(oldSigner.publicKey),
    new: formatPublicKey(newSigner.publicKey),
    seq: fields.seq,
    previous: fields.previous,
    at: fields.now ?? Math.floor(Date.now() / 1000),
  };
  const accept = await newSigner.sign(
    SIGN_CONTEXTS.puddleRotationAccept,
    acceptanceBytes(inner),
  );
  const body: RotationBody = { ...inner, accept: toHex(accept) };
  return await signObject(oldSigner, SIGN_CONTEXTS.puddleRotation, body);
}

/**
 * Decodes a statement and checks both signatures: the old key's over the
 * body and the new key's acceptance inside it.
 */
export function verifyRotation(wire: unknown): VerifiedRotation {
  const decoded = decodeSigned(wire, {
    maxBodyChars: 4096,
    check: checkBody,
    refuse: () => {
      throw new RotationError("a rotation statement is not a signed object.");
    },
  });
  const body = decoded.body;
  if (body.old === body.new) {
    throw new RotationError("a rotation statement rotates a key to itself.");
  }
  if (
    !verifySigned(
      parsePublicKey(body.old),
      SIGN_CONTEXTS.puddleRotation,
      decoded.bytes,
      decoded.wire.sig,
    )
  ) {
    throw new RotationError(
      `the rotation statement ${body.seq} is not signed by the old key ${body.old}.`,
    );
  }
  if (
    !verifyWithContext(
      parsePublicKey(body.new),
      SIGN_CONTEXTS.puddleRotationAccept,
      acceptanceBytes(body),
      fromHex(body.accept),
    )
  ) {
    throw new RotationError(
      `the rotation statement ${body.seq} is not accepted by the new key ${body.new}.`,
    );
  }
  return { body, id: decoded.id, wire: decoded.wire };
}

/**
 * Verifies a list of statements as a chain: `seq` 1, 2, …, each following
 * the one before by id and starting from the key the one before rotated to.
 */
export function verifyRotationChain(
  statements: readonly unknown[],
): VerifiedRotation[] {
  if (statements.length > MAX_ROTATIONS) {
    throw new RotationError(
      `a rotation log holds at most ${MAX_ROTATIONS} rotations.`,
    );
  }
  const verified: VerifiedRotation[] = [];
  for (const [i, wire] of statements.entries()) {
    const r = verifyRotation(wire);
    const before = verified[i - 1];
    if (
      r.body.seq !== i + 1 || r.body.previous !== (before?.id ?? null) ||
      (before && r.body.old !== before.body.new)
    ) {
      throw new RotationError(
        `rotation statement ${r.body.seq} is out of sequence: it does not follow rotation ${i} of this log.`,
      );
    }
    verified.push(r);
  }
  return verified;
}

/** The log's entries for verified statements. */
export function retiredEntries(
  rotations: readonly VerifiedRotation[],
): RetiredEntry[] {
  return rotations.map((r) => ({
    retired: r.body.old,
    successor: r.body.new,
    seq: r.body.seq,
    at: new Date(r.body.at * 1000).toISOString(),
    statement: r.wire,
  }));
}

/** The text of `retired_puddles.json` for verified statements. */
export function encodeRetiredLog(
  rotations: readonly VerifiedRotation[],
): string {
  return JSON.stringify(
    { version: 1, rotations: retiredEntries(rotations) },
    null,
    2,
  ) + "\n";
}

/**
 * Reads the statements of a `retired_puddles.json` text and verifies them
 * as a chain. An empty text is an empty log.
 */
export function decodeRetiredLog(bytes: Uint8Array | null): VerifiedRotation[] {
  if (bytes === null || bytes.length === 0) return [];
  if (bytes.length > MAX_RETIRED_BYTES) {
    throw new RotationError(`${RETIRED_FILE} is too large.`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new RotationError(`${RETIRED_FILE} is not JSON.`);
  }
  const rotations = (value as { rotations?: unknown })?.rotations;
  if (!Array.isArray(rotations)) {
    throw new RotationError(`${RETIRED_FILE} holds no list of rotations.`);
  }
  return verifyRotationChain(
    rotations.map((entry) => (entry as { statement?: unknown })?.statement),
  );
}

/**
 * Checks that `offered` (a whole log) continues `held` (this envoy's log,
 * maybe empty) from `current`, the key this envoy holds, and ends at
 * `successor`: the held log is a prefix, and some rotation of the offered
 * one retires `current`. Returns the offered statements from there on.
 */
export function rotationsFrom(
  offered: readonly VerifiedRotation[],
  held: readonly VerifiedRotation[],
  current: Uint8Array,
  successor: Uint8Array,
): VerifiedRotation[] {
  for (const [i, r] of held.entries()) {
    if (offered[i]?.id !== r.id) {
      throw new RotationError(
        `the offered rotation log differs from this envoy's at rotation ${
          i + 1
        }; nothing was written.`,
        "the other envoy holds another history of this puddle; check which one is yours.",
      );
    }
  }
  const key = formatPublicKey(current);
  const start = offered.findIndex((r) => r.body.old === key);
  if (start < 0) {
    throw new RotationError(
      `no rotation statement is signed by ${key}, the key this envoy holds; nothing was written.`,
      "rekey from an envoy of this puddle that ran `vigo swarm puddle rekey-pair`.",
    );
  }
  const last = offered[offered.length - 1];
  if (last.body.new !== formatPublicKey(successor)) {
    throw new RotationError(
      "the offered key is not the one the last rotation statement names; nothing was written.",
    );
  }
  return offered.slice(start);
}
