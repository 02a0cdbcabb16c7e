/**
 * Peer pairing: a five-minute, single-use code that lets another enrolled
 * envoy fetch this user's wrapped identity once.
 *
 * The founder side (`pair`) stores only a salted hash of the code in
 * `pair.pending`. The agent checks a claim against it in constant time and
 * removes the file on the first claim, right or wrong, and once expired.
 *
 * @module
 */

import { toHex } from "../crypto/hex.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { fromHex } from "../crypto/hex.ts";
import { writeTextAtomic } from "../platform/fs.ts";
import { OwnedDir } from "../platform/user_files.ts";
import {
  IDENTITY_FILES,
  isInitialized,
  PuddleError,
  withPuddleLock,
} from "./identity.ts";

/** How long a pairing code stays valid. */
export const PAIR_TTL_MS = 5 * 60 * 1000;
/** The pending-pairing file in `~/.vigo-puddle`. */
export const PAIR_PENDING = "pair.pending";
/** The pending rekey-claim file: same rules, and the rotation's payload. */
export const REKEY_PENDING = "rekey.pending";
/** Most bytes of a pending file (a rekey's payload carries delegations). */
export const MAX_PENDING_BYTES = 1024 * 1024;

/** Which claim session: joining the puddle, or taking a key rotation. */
export type PendingKind = typeof PAIR_PENDING | typeof REKEY_PENDING;

const CODE_CONTEXT = new TextEncoder().encode("vigo-swarm/v1/pair-code\0");
const CODE_PATTERN = /^(\d{4})-?(\d{4})$/;

/** What `pair.pending` holds (JSON). */
export interface PendingPair {
  version: 1;
  /** hex SHA-256 of context ‖ salt ‖ code. */
  code_sha256: string;
  /** 16 random bytes, hex. */
  salt: string;
  created_at: string;
  expires_at: string;
  /** Public data handed over with the identity on a claim (rekey only). */
  payload?: unknown;
}

/** Puts a code typed by a person into its `NNNN-NNNN` form, or null. */
export function normalizePairCode(input: string): string | null {
  const match = CODE_PATTERN.exec(input.trim());
  return match ? `${match[1]}-${match[2]}` : null;
}

/** A uniformly random code `NNNN-NNNN` (10^8 possibilities). */
export function generatePairCode(): string {
  const limit = 4_294_967_296 - (4_294_967_296 % 100_000_000);
  const word = new Uint32Array(1);
  do {
    crypto.getRandomValues(word);
  } while (word[0] >= limit);
  const digits = String(word[0] % 100_000_000).padStart(8, "0");
  word[0] = 0;
  return `${digits.slice(0, 4)}-${digits.slice(4)}`;
}

async function hashCode(salt: Uint8Array, code: string): Promise<Uint8Array> {
  const codeBytes = new TextEncoder().encode(code);
  const input = new Uint8Array(
    CODE_CONTEXT.length + salt.length + codeBytes.length,
  );
  input.set(CODE_CONTEXT);
  input.set(salt, CODE_CONTEXT.length);
  input.set(codeBytes, CODE_CONTEXT.length + salt.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  input.fill(0);
  codeBytes.fill(0);
  return digest;
}

/**
 * Starts a pairing session for the identity in `puddleDir`: writes
 * `pair.pending` (0600), replacing any earlier one, and returns the code.
 */
export async function startPairing(
  puddleDir: string,
  now = new Date(),
): Promise<{ code: string; expiresAt: Date }> {
  if (!isInitialized(puddleDir)) {
    throw new PuddleError(
      "there is no puddle identity on this envoy to pair.",
      "run `vigo swarm puddle init` first.",
    );
  }
  return await withPuddleLock(puddleDir, async () => {
    const { code, expiresAt, text } = await pendingClaim(now);
    writeTextAtomic(`${puddleDir}/${PAIR_PENDING}`, text, 0o600);
    return { code, expiresAt };
  });
}

/**
 * A fresh code and the text of its pending file, holding only a salted
 * hash of the code, and `payload` when given. The caller writes the file
 * (under the puddle lock, or inside a commit with other files).
 */
export async function pendingClaim(
  now = new Date(),
  payload?: unknown,
): Promise<{ code: string; expiresAt: Date; text: string }> {
  const code = generatePairCode();
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const expiresAt = new Date(now.getTime() + PAIR_TTL_MS);
  const pending: PendingPair = {
    version: 1,
    code_sha256: toHex(await hashCode(salt, code)),
    salt: toHex(salt),
    created_at: now.toISOString(),
    expires_at: expiresAt.toISOString(),
    ...(payload === undefined ? {} : { payload }),
  };
  const text = JSON.stringify(pending) + "\n";
  if (text.length > MAX_PENDING_BYTES) {
    throw new PuddleError(
      `the claim's payload is larger than ${MAX_PENDING_BYTES} bytes.`,
    );
  }
  return { code, expiresAt, text };
}

/** What a claim found. */
export type ClaimOutcome =
  | {
    ok: true;
    wrapped: Uint8Array;
    salt: Uint8Array;
    pubkey: string;
    /** The pending file's payload (rekey), if it had one. */
    payload?: unknown;
    /** Extra files the claim asked for, read from the same directory. */
    extra: Record<string, Uint8Array>;
  }
  | {
    ok: false;
    reason: "no-pending" | "expired" | "mismatch" | "no-identity" | "damaged";
  };

function parsePending(bytes: Uint8Array): PendingPair | null {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    if (
      value?.version === 1 && typeof value.code_sha256 === "string" &&
      typeof value.salt === "string" && typeof value.expires_at === "string" &&
      /^[0-9a-f]{64}$/.test(value.code_sha256) &&
      /^[0-9a-f]{32}$/.test(value.salt) &&
      Number.isFinite(Date.parse(value.expires_at))
    ) {
      return value as PendingPair;
    }
  } catch {
    // Falls through to null.
  }
  return null;
}

/**
 * Checks `code` against the pending pairing of the user owning `puddleDir`
 * (uid `uid`) and, when it matches, returns the identity files. Runs with
 * privilege on the user's behalf, so every read refuses files the user does
 * not own. The pending file is removed on every outcome: a code works once,
 * and a wrong guess burns it. Callers serialize claims per user.
 */
export async function claimPairing(
  puddleDir: string,
  uid: number,
  code: string,
  now = new Date(),
  session: { kind?: PendingKind; extraFiles?: readonly string[] } = {},
): Promise<ClaimOutcome> {
  const pendingName = session.kind ?? PAIR_PENDING;
  // The directory is opened once and must be the user's own; every file is
  // read from that descriptor (no symlinks, FIFOs or foreign files), and the
  // pending file is removed only there.
  let dir: OwnedDir;
  try {
    dir = OwnedDir.open(puddleDir, uid);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { ok: false, reason: "no-pending" };
    }
    return { ok: false, reason: "damaged" };
  }
  try {
    if (!dir.has(pendingName)) return { ok: false, reason: "no-pending" };
    let pending: PendingPair | null;
    try {
      pending = parsePending(dir.readFile(pendingName, MAX_PENDING_BYTES));
    } catch {
      pending = null;
    }
    try {
      dir.removeFile(pendingName);
    } catch {
      // Not a regular file of the user's: it was never a pending pairing.
    }
    if (!pending) return { ok: false, reason: "damaged" };
    if (Date.parse(pending.expires_at) <= now.getTime()) {
      return { ok: false, reason: "expired" };
    }
    const expected = fromHex(pending.code_sha256);
    const offered = await hashCode(fromHex(pending.salt), code);
    if (!constantTimeEqual(expected, offered)) {
      return { ok: false, reason: "mismatch" };
    }
    try {
      const wrapped = dir.readFile(IDENTITY_FILES.wrapped, 4096);
      const salt = dir.readFile(IDENTITY_FILES.salt, 4096);
      const pubkey = new TextDecoder().decode(
        dir.readFile(IDENTITY_FILES.pub, 256),
      ).trim();
      const extra: Record<string, Uint8Array> = {};
      for (const name of session.extraFiles ?? []) {
        if (dir.has(name)) extra[name] = dir.readFile(name, MAX_PENDING_BYTES);
      }
      return {
        ok: true,
        wrapped,
        salt,
        pubkey,
        extra,
        ...(pending.payload === undefined ? {} : { payload: pending.payload }),
      };
    } catch {
      return { ok: false, reason: "no-identity" };
    }
  } finally {
    dir.close();
  }
}
