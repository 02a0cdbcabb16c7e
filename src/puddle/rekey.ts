/**
 * Puddle key rotation on disk: `rekey-pair` replaces the identity with a
 * new key on the envoy where the user is, and `rekey` installs that new
 * key on every other member envoy.
 *
 * Both write one commit (the commit journal of identity.ts): the three
 * identity files, `retired_puddles.json`, and, when the user's projects
 * need changing, `rekey.projects.json`, which holds those changes until
 * gitback applied them. A crash before the commit point leaves the old
 * identity, after it the new one; a later command applies the project
 * changes left behind ({@link pendingFounderUpdates}).
 *
 * @module
 */

import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { publicKeyFromSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { SALT_LENGTH, wrapSeed } from "../crypto/wrap.ts";
import {
  COMMIT_JOURNAL,
  commitFileSet,
  exists,
  type FileSetEntry,
  readFileBounded,
  removeIfExists,
} from "../platform/fs.ts";
import {
  IDENTITY_FILES,
  type IdentityChange,
  isInitialized,
  PuddleError,
  readPublicKey,
  unwrapIdentity,
  withPuddleLock,
} from "./identity.ts";
import { MAX_PENDING_BYTES, pendingClaim, REKEY_PENDING } from "./pair.ts";
import {
  decodeRetiredLog,
  encodeRetiredLog,
  MAX_RETIRED_BYTES,
  RETIRED_FILE,
  RotationError,
  rotationsFrom,
  signRotation,
  type VerifiedRotation,
  verifyRotation,
  verifyRotationChain,
} from "./rotation.ts";

/** Project changes of a rotation not yet applied, in `~/.vigo-puddle`. */
export const FOUNDER_UPDATES = "rekey.projects.json";

/**
 * What the rotation asks of the user's projects: gitback's business, opaque
 * here. `local` is applied on this envoy; `payload` goes to the other
 * envoys with the new key.
 */
export interface FounderChanges {
  local: unknown;
  payload: unknown;
}

/** What `rekey-pair` did. */
export interface RekeyPairResult extends IdentityChange {
  retired: Uint8Array;
  /** The new seed: the caller moves the session helper to it, then zeroes it. */
  newSeed: Uint8Array;
  seq: number;
  code: string;
  expiresAt: Date;
}

function encode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function encodePub(publicKey: Uint8Array): Uint8Array {
  return encode(formatPublicKey(publicKey) + "\n");
}

/** The rotation log here, verified; empty when there is none. */
export function readRotationLog(puddleDir: string): VerifiedRotation[] {
  const path = `${puddleDir}/${RETIRED_FILE}`;
  if (!exists(path)) return [];
  return decodeRetiredLog(readFileBounded(path, MAX_RETIRED_BYTES));
}

/** Refuses to rotate on top of a log that does not end at `current`. */
function checkLogEndsAt(
  log: readonly VerifiedRotation[],
  current: Uint8Array,
): void {
  const last = log[log.length - 1];
  if (last && last.body.new !== formatPublicKey(current)) {
    throw new RotationError(
      `${RETIRED_FILE} ends at ${last.body.new}, not at this envoy's key ${
        formatPublicKey(current)
      }; nothing was changed.`,
      "restore retired_puddles.json from another member envoy.",
    );
  }
}

/** Refuses while an earlier rotation's project changes are unapplied. */
function checkNoPendingUpdates(puddleDir: string): void {
  if (exists(`${puddleDir}/${FOUNDER_UPDATES}`)) {
    throw new PuddleError(
      "an earlier key rotation has not finished updating your projects; nothing was changed.",
      "run `vigo swarm puddle status`, which finishes it, then try again.",
    );
  }
}

function commit(
  puddleDir: string,
  entries: FileSetEntry[],
  hint: string,
): Error | undefined {
  let outcome;
  try {
    outcome = commitFileSet(puddleDir, entries);
  } catch (error) {
    throw new PuddleError(
      `could not write the new identity: ${
        (error as Error).message.replace(/\.$/, "")
      }; nothing was changed.`,
      hint,
    );
  }
  return outcome.finished ? undefined : outcome.cause;
}

/**
 * Rotates the puddle key here. `passphrase` must unwrap the current key and
 * wraps the new one. Both keys sign the rotation statement; `founder`
 * signs what the user's projects need (delegations with the old key, new
 * tokens with the new) and returns the changes. Commits the new identity,
 * the log, a fresh rekey code and the project changes as one unit.
 */
export async function rekeyPair(
  puddleDir: string,
  passphrase: Uint8Array,
  founder: (oldKey: Signer, newKey: Signer) => Promise<FounderChanges>,
  now = new Date(),
): Promise<RekeyPairResult> {
  return await withPuddleLock(puddleDir, async () => {
    checkNoPendingUpdates(puddleDir);
    const { seed: oldSeed, publicKey: retired } = await unwrapIdentity(
      puddleDir,
      passphrase,
    );
    const newSeed = generateSeed();
    const salt = crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
    let handedOver = false;
    try {
      const log = readRotationLog(puddleDir);
      checkLogEndsAt(log, retired);
      const oldKey = seedSigner(oldSeed);
      const newKey = seedSigner(newSeed);
      const publicKey = publicKeyFromSeed(newSeed);
      const seq = log.length + 1;
      const statement = verifyRotation(
        await signRotation(oldKey, newKey, {
          seq,
          previous: log[log.length - 1]?.id ?? null,
          now: Math.floor(now.getTime() / 1000),
        }),
      );
      const changes = await founder(oldKey, newKey);
      const claim = await pendingClaim(now, changes.payload);
      const wrapped = await wrapSeed(newSeed, passphrase, salt);
      const unfinished = commit(
        puddleDir,
        [
          { name: IDENTITY_FILES.salt, data: salt, mode: 0o600 },
          { name: IDENTITY_FILES.wrapped, data: wrapped, mode: 0o600 },
          { name: IDENTITY_FILES.pub, data: encodePub(publicKey), mode: 0o644 },
          {
            name: RETIRED_FILE,
            data: encode(encodeRetiredLog([...log, statement])),
            mode: 0o600,
          },
          { name: REKEY_PENDING, data: encode(claim.text), mode: 0o600 },
          ...founderEntry(changes.local),
        ],
        "the old key is still yours; free space on that filesystem and run `vigo swarm puddle rekey-pair` again.",
      );
      handedOver = true;
      return {
        publicKey,
        retired,
        newSeed,
        seq,
        code: claim.code,
        expiresAt: claim.expiresAt,
        unfinished,
      };
    } finally {
      oldSeed.fill(0);
      salt.fill(0);
      if (!handedOver) newSeed.fill(0);
    }
  });
}

function founderEntry(local: unknown): FileSetEntry[] {
  if (local === undefined || local === null) return [];
  return [{
    name: FOUNDER_UPDATES,
    data: encode(JSON.stringify(local, null, 2) + "\n"),
    mode: 0o600,
  }];
}

/**
 * A fresh rekey code for the latest rotation (the first one expired, or an
 * envoy came late), carrying `payload` like the first.
 */
export async function reissueRekeyCode(
  puddleDir: string,
  payload: unknown,
  now = new Date(),
): Promise<{ code: string; expiresAt: Date; seq: number }> {
  return await withPuddleLock(puddleDir, async () => {
    const log = readRotationLog(puddleDir);
    if (log.length === 0) {
      throw new PuddleError(
        "this puddle key was never rotated here; there is nothing to hand out.",
        "`vigo swarm puddle rekey-pair` rotates it.",
      );
    }
    checkLogEndsAt(log, readPublicKey(puddleDir));
    const claim = await pendingClaim(now, payload);
    const unfinished = commit(puddleDir, [
      { name: REKEY_PENDING, data: encode(claim.text), mode: 0o600 },
    ], "free space on that filesystem and run the command again.");
    if (unfinished) throw unfinished;
    return { code: claim.code, expiresAt: claim.expiresAt, seq: log.length };
  });
}

/** The new identity and the rotation log another envoy handed over. */
export interface RotationOffer {
  wrapped: Uint8Array;
  salt: Uint8Array;
  publicKey: Uint8Array;
  /** The whole log, as wire statements, oldest first. */
  statements: readonly unknown[];
}

/**
 * Checks an offer against this envoy: the log verifies as a chain, continues
 * the log held here, retires the key held here, and ends at the offered
 * key. Returns the verified log and the rotations this envoy takes.
 */
function checkRotationOffer(
  puddleDir: string,
  offer: RotationOffer,
): { offered: VerifiedRotation[]; taken: VerifiedRotation[] } {
  if (!isInitialized(puddleDir)) {
    throw new PuddleError(
      "this user has no puddle identity on this envoy to rekey; nothing was written.",
      "an envoy without the puddle joins it with `vigo swarm puddle join`.",
    );
  }
  const current = readPublicKey(puddleDir);
  if (formatPublicKey(current) === formatPublicKey(offer.publicKey)) {
    throw new PuddleError(
      "this envoy already holds the new key; nothing was written.",
    );
  }
  const held = readRotationLog(puddleDir);
  const offered = verifyRotationChain(offer.statements);
  return {
    offered,
    taken: rotationsFrom(offered, held, current, offer.publicKey),
  };
}

/**
 * Installs a rotation received from another envoy (`rekey`): under the
 * lock, the offer is checked against the key and log held here
 * ({@link checkRotationOffer}), then one commit writes the identity files,
 * the log and `local` project changes.
 */
export async function installRotation(
  puddleDir: string,
  offer: RotationOffer,
  local?: unknown,
): Promise<IdentityChange & { taken: number }> {
  return await withPuddleLock(puddleDir, () => {
    checkNoPendingUpdates(puddleDir);
    const { offered, taken } = checkRotationOffer(puddleDir, offer);
    const unfinished = commit(
      puddleDir,
      [
        { name: IDENTITY_FILES.salt, data: offer.salt, mode: 0o600 },
        { name: IDENTITY_FILES.wrapped, data: offer.wrapped, mode: 0o600 },
        {
          name: IDENTITY_FILES.pub,
          data: encodePub(offer.publicKey),
          mode: 0o644,
        },
        {
          name: RETIRED_FILE,
          data: encode(encodeRetiredLog(offered)),
          mode: 0o600,
        },
        ...founderEntry(local),
      ],
      "the old key is still in place; free space on that filesystem and rekey again.",
    );
    return { publicKey: offer.publicKey, unfinished, taken: taken.length };
  });
}

/** Project changes a rotation left for gitback to apply, or null. */
export function pendingFounderUpdates(puddleDir: string): unknown | null {
  const path = `${puddleDir}/${FOUNDER_UPDATES}`;
  if (!exists(path) || exists(`${puddleDir}/${COMMIT_JOURNAL}`)) return null;
  try {
    return JSON.parse(
      new TextDecoder().decode(readFileBounded(path, MAX_PENDING_BYTES)),
    );
  } catch {
    throw new PuddleError(
      `${path} is damaged; the key rotation's changes to your projects cannot be applied.`,
      "rekey this envoy again from another member envoy, or remove the file and re-join the projects.",
    );
  }
}

/** Removes the project changes once gitback applied them. */
export async function clearFounderUpdates(puddleDir: string): Promise<void> {
  await withPuddleLock(puddleDir, () => {
    removeIfExists(`${puddleDir}/${FOUNDER_UPDATES}`);
  });
}

/** What `status` shows about rotations. */
export interface RotationStatus {
  /** Retired keys, oldest first (newest last). */
  retired: string[];
  /** Set when the log does not verify. */
  logError?: string;
  /** True while project changes of a rotation are unapplied. */
  projectsPending: boolean;
}

/** The rotation state of the puddle in `puddleDir`. */
export function rotationStatus(puddleDir: string): RotationStatus {
  const status: RotationStatus = {
    retired: [],
    projectsPending: exists(`${puddleDir}/${FOUNDER_UPDATES}`),
  };
  try {
    status.retired = readRotationLog(puddleDir).map((r) => r.body.old);
  } catch (error) {
    status.logError = (error as Error).message;
  }
  return status;
}
