/**
 * The puddle identity on disk: one Ed25519 key, wrapped under the user's
 * passphrase, in `~/.vigo-puddle/identity.{wrapped,salt,pub}`.
 *
 * @module
 */

import {
  formatPublicKey,
  parsePublicKey,
  publicKeyFromSeed,
} from "../crypto/ed25519.ts";
import { generateSeed } from "../crypto/ed25519.ts";
import {
  SALT_LENGTH,
  unwrapSeed,
  WrapError,
  wrapSeed,
} from "../crypto/wrap.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import {
  assertPrivateFile,
  COMMIT_JOURNAL,
  commitFileSet,
  ensurePrivateDir,
  exists,
  type FileSetEntry,
  readFileBounded,
  recoverFileSet,
  withFileLock,
} from "../platform/fs.ts";

/** File names of the identity, as every member envoy holds them. */
export const IDENTITY_FILES = {
  wrapped: "identity.wrapped",
  salt: "identity.salt",
  pub: "identity.pub",
} as const;

const MAX_WRAPPED_BYTES = 4096;
const MAX_PUB_BYTES = 256;

/** An identity read from disk; `wrapped` and `salt` are the caller's to zero. */
export interface StoredIdentity {
  wrapped: Uint8Array;
  salt: Uint8Array;
  publicKey: Uint8Array;
}

/** Raised when the user's input or files are wrong, with a hint to fix it. */
export class PuddleError extends Error {
  /** A second line telling the user what to do next. */
  hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "PuddleError";
    this.hint = hint;
  }
}

/**
 * What an identity change did. It is committed once the function returns;
 * `unfinished`, when set, says why the identity files do not show it yet
 * (a full disk, typically). The next command that takes the puddle lock
 * finishes it; until then that command fails with a PuddleError saying so.
 */
export interface IdentityChange {
  /** The identity's public key. */
  publicKey: Uint8Array;
  /** Why replacing the files stopped after the commit point, if it did. */
  unfinished?: Error;
}

/**
 * Serializes writers of `~/.vigo-puddle` and finishes any committed change
 * a crash or a full disk interrupted before `fn` looks at the files.
 */
export async function withPuddleLock<T>(
  puddleDir: string,
  fn: () => T | Promise<T>,
): Promise<T> {
  ensurePrivateDir(puddleDir);
  return await withFileLock(`${puddleDir}/.lock`, () => {
    try {
      recoverFileSet(puddleDir);
    } catch (error) {
      if (!exists(`${puddleDir}/${COMMIT_JOURNAL}`)) throw error;
      throw new PuddleError(
        `an earlier change to the puddle identity in ${puddleDir} is committed but not finished, and finishing it failed: ${
          describe(error)
        }.`,
        "free space on that filesystem (or fix the cause above) and run the command again; it finishes the change first, and the identity is usable then.",
      );
    }
    return fn();
  });
}

function describe(error: unknown): string {
  return (error instanceof Error ? error.message : String(error))
    .replace(/\.$/, "");
}

/**
 * Commits a change to the identity files. Failing before the commit point
 * (the journal) changes nothing and is reported as a PuddleError that says
 * so; after it the change stands, and what stopped it is returned.
 */
function commitIdentity(
  puddleDir: string,
  entries: FileSetEntry[],
  failed: { what: string; nothing: string; hint: string },
): Error | undefined {
  let outcome;
  try {
    outcome = commitFileSet(puddleDir, entries);
  } catch (error) {
    throw new PuddleError(
      `could not ${failed.what}: ${describe(error)}; ${failed.nothing}.`,
      failed.hint,
    );
  }
  return outcome.finished ? undefined : outcome.cause;
}

/** Which of the three identity files are present. */
export function identityFilesPresent(puddleDir: string): string[] {
  return Object.values(IDENTITY_FILES).filter((name) =>
    exists(`${puddleDir}/${name}`)
  );
}

/** True when all three identity files exist: this envoy is a member. */
export function isInitialized(puddleDir: string): boolean {
  return identityFilesPresent(puddleDir).length === 3;
}

/** Reads `identity.pub` (`ed25519:<hex>`). */
export function readPublicKey(puddleDir: string): Uint8Array {
  const path = `${puddleDir}/${IDENTITY_FILES.pub}`;
  if (!exists(path)) {
    throw new PuddleError(
      `no puddle identity here (${path} is missing).`,
      "run `vigo swarm puddle init` on your first envoy, or `join` from one that has it.",
    );
  }
  const text = new TextDecoder().decode(readFileBounded(path, MAX_PUB_BYTES));
  try {
    return parsePublicKey(text);
  } catch {
    throw new PuddleError(
      `${path} does not hold an ed25519:<hex> public key.`,
      "restore it from another member envoy.",
    );
  }
}

/**
 * Reads and checks the three identity files: present, private where they
 * hold secrets, and of the right shape.
 */
export function readIdentity(puddleDir: string): StoredIdentity {
  const present = identityFilesPresent(puddleDir);
  if (present.length === 0) {
    throw new PuddleError(
      "this user has no puddle identity on this envoy.",
      "run `vigo swarm puddle init` on your first envoy, or `join` from one that has it.",
    );
  }
  for (const name of Object.values(IDENTITY_FILES)) {
    if (!present.includes(name)) {
      throw new PuddleError(
        `the puddle identity is incomplete: ${puddleDir}/${name} is missing.`,
        "copy all three identity files from another member envoy, or `join` again.",
      );
    }
  }
  const wrappedPath = `${puddleDir}/${IDENTITY_FILES.wrapped}`;
  const saltPath = `${puddleDir}/${IDENTITY_FILES.salt}`;
  for (const path of [wrappedPath, saltPath]) {
    try {
      assertPrivateFile(path);
    } catch (error) {
      throw new PuddleError((error as Error).message);
    }
  }
  const publicKey = readPublicKey(puddleDir);
  const salt = readFileBounded(saltPath, MAX_WRAPPED_BYTES);
  if (salt.length !== SALT_LENGTH) {
    salt.fill(0);
    throw new PuddleError(
      `${saltPath} holds ${salt.length} bytes, not ${SALT_LENGTH}.`,
      "restore identity.salt from another member envoy.",
    );
  }
  const wrapped = readFileBounded(wrappedPath, MAX_WRAPPED_BYTES);
  return { wrapped, salt, publicKey };
}

/**
 * Unwraps `identity.wrapped` with `passphrase` and checks that the key is
 * the one `identity.publicKey` names. Returns the seed, which the caller
 * must zero, or null (having zeroed it) when the key is another. Unwrap
 * failures (a wrong passphrase, a damaged file) throw the WrapError.
 */
export async function unwrapMatching(
  identity: { wrapped: Uint8Array; salt: Uint8Array; publicKey: Uint8Array },
  passphrase: Uint8Array,
): Promise<Uint8Array | null> {
  const seed = await unwrapSeed(identity.wrapped, passphrase, identity.salt);
  if (constantTimeEqual(publicKeyFromSeed(seed), identity.publicKey)) {
    return seed;
  }
  seed.fill(0);
  return null;
}

/**
 * Unwraps the identity with `passphrase` and checks the key against
 * `identity.pub`. Returns the 32-byte seed, which the caller must zero.
 */
export async function unwrapIdentity(
  puddleDir: string,
  passphrase: Uint8Array,
): Promise<{ seed: Uint8Array; publicKey: Uint8Array }> {
  const stored = readIdentity(puddleDir);
  try {
    const seed = await unwrapMatching(stored, passphrase).catch((error) => {
      throw explainWrapError(error);
    });
    if (!seed) {
      throw new PuddleError(
        "the wrapped key does not match identity.pub.",
        "restore identity.pub from another member envoy.",
      );
    }
    return { seed, publicKey: stored.publicKey };
  } finally {
    stored.wrapped.fill(0);
    stored.salt.fill(0);
  }
}

/** Turns a low-level unwrap failure into a message about the user's files. */
function explainWrapError(error: unknown): unknown {
  if (!(error instanceof WrapError)) return error;
  switch (error.code) {
    case "wrong-passphrase":
      return new PuddleError(
        "the passphrase is wrong, or identity.wrapped or identity.salt was altered; nothing was unlocked.",
        "try again; if the passphrase is right, copy both files from another member envoy.",
      );
    case "weak-params":
    case "excessive-params":
      return new PuddleError(
        `identity.wrapped asks for key-derivation parameters this program refuses (${error.code}).`,
        "restore identity.wrapped from another member envoy; a file with these parameters was not written by vigo.",
      );
    default:
      return new PuddleError(
        `identity.wrapped is damaged or not a puddle key file (${error.code}).`,
        "restore identity.wrapped from another member envoy.",
      );
  }
}

function encodePub(publicKey: Uint8Array): Uint8Array {
  return new TextEncoder().encode(formatPublicKey(publicKey) + "\n");
}

/**
 * Creates a new identity under `passphrase`. Refuses, touching nothing,
 * when any identity file exists; concurrent calls leave exactly one. Once it
 * returns the identity exists: if a full disk stopped the files from being
 * written after the commit point, the next puddle command writes them.
 */
export async function initIdentity(
  puddleDir: string,
  passphrase: Uint8Array,
): Promise<IdentityChange> {
  return await withPuddleLock(puddleDir, async () => {
    const present = identityFilesPresent(puddleDir);
    if (present.length > 0) {
      throw new PuddleError(
        `a puddle identity already exists in ${puddleDir} (${
          present.join(", ")
        }).`,
        "use `vigo swarm puddle status` to inspect it; init never overwrites an identity.",
      );
    }
    const seed = generateSeed();
    const salt = crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
    try {
      const publicKey = publicKeyFromSeed(seed);
      const wrapped = await wrapSeed(seed, passphrase, salt);
      const unfinished = commitIdentity(puddleDir, [
        { name: IDENTITY_FILES.salt, data: salt, mode: 0o600 },
        { name: IDENTITY_FILES.wrapped, data: wrapped, mode: 0o600 },
        { name: IDENTITY_FILES.pub, data: encodePub(publicKey), mode: 0o644 },
      ], {
        what: "write the new identity",
        nothing: "nothing was written",
        hint:
          "free space on that filesystem and run `vigo swarm puddle init` again.",
      });
      return { publicKey, unfinished };
    } finally {
      seed.fill(0);
      salt.fill(0);
    }
  });
}

/**
 * Rewraps the key under `newPassphrase` with a fresh salt and nonce. The
 * public key does not change; salt and wrapped file change together. When it
 * throws, the old passphrase still works; when it returns, only the new one
 * does, even if `unfinished` is set (see {@link IdentityChange}).
 */
export async function rotatePassphrase(
  puddleDir: string,
  oldPassphrase: Uint8Array,
  newPassphrase: Uint8Array,
): Promise<IdentityChange> {
  return await withPuddleLock(puddleDir, async () => {
    const { seed, publicKey } = await unwrapIdentity(puddleDir, oldPassphrase);
    const salt = crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
    try {
      const wrapped = await wrapSeed(seed, newPassphrase, salt);
      const unfinished = commitIdentity(puddleDir, [
        { name: IDENTITY_FILES.salt, data: salt, mode: 0o600 },
        { name: IDENTITY_FILES.wrapped, data: wrapped, mode: 0o600 },
      ], {
        what: "write the new wrapping",
        nothing: "nothing was changed",
        hint:
          "the current passphrase still works; free space on that filesystem and run the command again.",
      });
      return { publicKey, unfinished };
    } finally {
      seed.fill(0);
      salt.fill(0);
    }
  });
}

/**
 * Finishes a committed change to the identity files that a crash or a full
 * disk interrupted, so that readers see the complete old or new identity.
 * Cheap when there is none; a PuddleError when it cannot be finished yet.
 */
export async function repairPuddleDir(puddleDir: string): Promise<void> {
  if (exists(`${puddleDir}/${COMMIT_JOURNAL}`)) {
    await withPuddleLock(puddleDir, () => {});
  }
}

/**
 * Installs an identity received from another member envoy (pairing). The
 * caller has already proven the passphrase unwraps it. Refuses, touching
 * nothing, when any identity file exists here. Once it returns the identity
 * is installed; `unfinished` is as for {@link IdentityChange}.
 */
export async function installIdentity(
  puddleDir: string,
  identity: { wrapped: Uint8Array; salt: Uint8Array; publicKey: Uint8Array },
  /** Files that come with it in the same commit (the rotation log). */
  extra: FileSetEntry[] = [],
): Promise<IdentityChange> {
  return await withPuddleLock(puddleDir, () => {
    const present = identityFilesPresent(puddleDir);
    if (present.length > 0) {
      throw new PuddleError(
        `a puddle identity already exists in ${puddleDir} (${
          present.join(", ")
        }); nothing was written.`,
        "an envoy joins a puddle once; `vigo swarm puddle status` shows the identity here.",
      );
    }
    const unfinished = commitIdentity(puddleDir, [
      { name: IDENTITY_FILES.salt, data: identity.salt, mode: 0o600 },
      { name: IDENTITY_FILES.wrapped, data: identity.wrapped, mode: 0o600 },
      {
        name: IDENTITY_FILES.pub,
        data: encodePub(identity.publicKey),
        mode: 0o644,
      },
      ...extra,
    ], {
      what: "write the identity",
      nothing: "nothing was written",
      hint:
        "free space on that filesystem, then join again with a new code from `vigo swarm puddle pair`.",
    });
    return { publicKey: identity.publicKey, unfinished };
  });
}
