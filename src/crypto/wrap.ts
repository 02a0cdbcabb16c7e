/**
 * Passphrase wrapping of a 32-byte Ed25519 seed: Argon2id derives a key from
 * the passphrase and a separately stored salt, and XChaCha20-Poly1305 seals
 * the seed under it. The byte layout is documented in `docs/formats.md`.
 *
 * Version 1 layout (integers big-endian, 87 bytes in total):
 *
 * | offset | length | field                                   |
 * | ------ | ------ | --------------------------------------- |
 * | 0      | 4      | magic, ASCII `VGPW`                     |
 * | 4      | 1      | format version, 1                       |
 * | 5      | 1      | KDF id, 1 = Argon2id v1.3               |
 * | 6      | 4      | Argon2id memory in KiB (u32)            |
 * | 10     | 4      | Argon2id passes (u32)                   |
 * | 14     | 1      | Argon2id lanes (u8)                     |
 * | 15     | 24     | XChaCha20-Poly1305 nonce                |
 * | 39     | 48     | ciphertext (32) and Poly1305 tag (16)   |
 *
 * Bytes 0..14 are the AEAD associated data, so altering any parameter makes
 * authentication fail.
 *
 * @module
 */

import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { argon2id } from "hash-wasm";

/** Argon2id cost parameters. */
export interface KdfParams {
  /** Memory in KiB (Argon2 `m`). */
  memoryKiB: number;
  /** Number of passes over memory (Argon2 `t`). */
  passes: number;
  /** Degree of parallelism (Argon2 `p`). */
  lanes: number;
}

/** Parameters used for new wrappings: 64 MiB, 3 passes, 1 lane. */
export const DEFAULT_KDF: Readonly<KdfParams> = Object.freeze({
  memoryKiB: 65536,
  passes: 3,
  lanes: 1,
});

/** The weakest parameters accepted, when wrapping and when unwrapping. */
export const KDF_FLOOR: Readonly<KdfParams> = Object.freeze({
  memoryKiB: 65536,
  passes: 3,
  lanes: 1,
});

/**
 * The most expensive parameters accepted. Checked before the KDF runs, so a
 * hostile file cannot make us allocate unbounded memory or spin for hours.
 */
export const KDF_CAP: Readonly<KdfParams> = Object.freeze({
  memoryKiB: 1048576,
  passes: 16,
  lanes: 8,
});

/** Length in bytes of the salt kept in the separate `identity.salt` file. */
export const SALT_LENGTH = 16;

/** Total length in bytes of a version 1 wrapped seed. */
export const WRAPPED_LENGTH = 87;

/** Why wrapping or unwrapping was refused; see {@linkcode WrapError}. */
export type WrapErrorCode =
  | "truncated"
  | "bad-magic"
  | "unsupported-version"
  | "unsupported-kdf"
  | "weak-params"
  | "excessive-params"
  | "bad-salt"
  | "wrong-passphrase";

/** An error from wrapping or unwrapping, with a machine-readable code. */
export class WrapError extends Error {
  /** What went wrong, for callers that react differently per case. */
  readonly code: WrapErrorCode;

  /**
   * Creates a wrap error.
   *
   * @param code What went wrong.
   * @param message A sentence explaining the problem and what to do.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(code: WrapErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WrapError";
    this.code = code;
  }
}

/** The parameters readable from a wrapped seed without the passphrase. */
export interface WrappedHeader {
  /** Format version; always 1 for now. */
  version: number;
  /** The Argon2id parameters the seed was wrapped with. */
  params: KdfParams;
}

const MAGIC = new Uint8Array([0x56, 0x47, 0x50, 0x57]); // "VGPW"
const VERSION = 1;
const KDF_ARGON2ID = 1;
const HEADER_LENGTH = 15;
const NONCE_LENGTH = 24;
const KEY_LENGTH = 32;
const SEED_LENGTH = 32;

const FILE_HINT =
  "The file may have been altered; restore identity.wrapped from a backup.";

/**
 * Seals a seed under a passphrase. A fresh random nonce is used every time,
 * so wrapping the same seed twice gives different bytes.
 *
 * @param seed The 32-byte seed to protect. Not modified.
 * @param passphrase The passphrase as bytes (e.g. UTF-8).
 * @param salt The 16 random bytes stored in `identity.salt`.
 * @param params Argon2id parameters, within {@linkcode KDF_FLOOR} and
 * {@linkcode KDF_CAP}.
 * @returns The 87-byte wrapped seed.
 * @throws {WrapError} `bad-salt`, `weak-params` or `excessive-params`.
 * @throws {TypeError} If an argument has the wrong type or a parameter is not
 * an integer.
 */
export async function wrapSeed(
  seed: Uint8Array,
  passphrase: Uint8Array,
  salt: Uint8Array,
  params: KdfParams = DEFAULT_KDF,
): Promise<Uint8Array> {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LENGTH) {
    throw new TypeError(
      `The seed to wrap must be a ${SEED_LENGTH}-byte Uint8Array. Pass the seed from generateSeed().`,
    );
  }
  assertPassphrase(passphrase);
  assertSalt(salt);
  // Snapshot so a caller mutating `params` during the KDF cannot desync the
  // header from the key.
  const p: KdfParams = {
    memoryKiB: params?.memoryKiB,
    passes: params?.passes,
    lanes: params?.lanes,
  };
  assertKdfParams(p);
  const header = encodeHeader(p);
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH));
  const key = await deriveKey(passphrase, salt, p);
  try {
    const sealed = xchacha20poly1305(key, nonce, header).encrypt(seed);
    const out = new Uint8Array(WRAPPED_LENGTH);
    out.set(header, 0);
    out.set(nonce, HEADER_LENGTH);
    out.set(sealed, HEADER_LENGTH + NONCE_LENGTH);
    return out;
  } finally {
    key.fill(0);
  }
}

/**
 * Recovers a seed sealed by {@linkcode wrapSeed}. The header is validated and
 * the parameters checked against the floor and cap before the KDF runs.
 *
 * @param wrapped The 87-byte wrapped seed.
 * @param passphrase The passphrase as bytes.
 * @param salt The 16 bytes from `identity.salt`.
 * @returns The 32-byte seed. The caller owns it and should `.fill(0)` it
 * when done.
 * @throws {WrapError} With any {@linkcode WrapErrorCode}; `wrong-passphrase`
 * when authentication fails.
 */
export async function unwrapSeed(
  wrapped: Uint8Array,
  passphrase: Uint8Array,
  salt: Uint8Array,
): Promise<Uint8Array> {
  const { params } = parseWrappedHeader(wrapped);
  checkParams(params, FILE_HINT);
  assertPassphrase(passphrase);
  assertSalt(salt);
  // Copies, so the caller's buffer may change while the KDF runs.
  const header = wrapped.slice(0, HEADER_LENGTH);
  const nonce = wrapped.slice(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH);
  const sealed = wrapped.slice(HEADER_LENGTH + NONCE_LENGTH, WRAPPED_LENGTH);
  const key = await deriveKey(passphrase, salt, params);
  try {
    return xchacha20poly1305(key, nonce, header).decrypt(sealed);
  } catch (error) {
    throw new WrapError(
      "wrong-passphrase",
      "Could not unlock the identity: the passphrase is wrong, or identity.wrapped or identity.salt was altered. Try the passphrase again; if it is right, restore both files from a backup.",
      { cause: error },
    );
  } finally {
    key.fill(0);
  }
}

/**
 * Reads the version and KDF parameters of a wrapped seed without the
 * passphrase, e.g. for a status display. Checks the magic, version, KDF id
 * and total length, but not the floor and cap, so that weak or excessive
 * parameters can still be shown; {@linkcode unwrapSeed} refuses them.
 *
 * @param wrapped The wrapped seed.
 * @returns The header fields.
 * @throws {WrapError} `truncated`, `bad-magic`, `unsupported-version` or
 * `unsupported-kdf`.
 */
export function parseWrappedHeader(wrapped: Uint8Array): WrappedHeader {
  if (!(wrapped instanceof Uint8Array)) {
    throw new TypeError("The wrapped identity must be a Uint8Array.");
  }
  // Check magic and version before the length, so a foreign file or a newer
  // format is reported as such rather than as truncated.
  if (wrapped.length < MAGIC.length) throw truncated(wrapped.length);
  if (!MAGIC.every((byte, i) => wrapped[i] === byte)) {
    throw new WrapError(
      "bad-magic",
      'This is not a wrapped identity: it does not start with "VGPW". Check that the path points at identity.wrapped.',
    );
  }
  if (wrapped.length < 5) throw truncated(wrapped.length);
  const version = wrapped[4];
  if (version !== VERSION) {
    throw new WrapError(
      "unsupported-version",
      `The wrapped identity uses format version ${version}, but this program reads only version ${VERSION}. Upgrade to a release that supports it.`,
    );
  }
  if (wrapped.length < 6) throw truncated(wrapped.length);
  const kdf = wrapped[5];
  if (kdf !== KDF_ARGON2ID) {
    throw new WrapError(
      "unsupported-kdf",
      `The wrapped identity names key-derivation function ${kdf}, but this program supports only ${KDF_ARGON2ID} (Argon2id). Upgrade to a release that supports it, or restore identity.wrapped from a backup.`,
    );
  }
  if (wrapped.length !== WRAPPED_LENGTH) throw truncated(wrapped.length);
  const view = new DataView(
    wrapped.buffer,
    wrapped.byteOffset,
    wrapped.byteLength,
  );
  return {
    version,
    params: {
      memoryKiB: view.getUint32(6),
      passes: view.getUint32(10),
      lanes: wrapped[14],
    },
  };
}

/**
 * Checks that KDF parameters are integers within {@linkcode KDF_FLOOR} and
 * {@linkcode KDF_CAP}. Useful to validate user-chosen settings before
 * asking for a passphrase.
 *
 * @param params The parameters to check.
 * @throws {WrapError} `weak-params` or `excessive-params`.
 * @throws {TypeError} If a parameter is not a non-negative integer.
 */
export function assertKdfParams(params: KdfParams): void {
  checkParams(
    params,
    "Choose parameters between the floor and the cap, or use DEFAULT_KDF.",
  );
}

function checkParams(params: KdfParams, hint: string): void {
  for (const name of ["memoryKiB", "passes", "lanes"] as const) {
    const value = params?.[name];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(
        `The KDF parameter ${name} must be a non-negative integer, not ${
          String(value)
        }. Use DEFAULT_KDF or whole numbers.`,
      );
    }
  }
  const describe = (p: Readonly<KdfParams>) =>
    `${p.memoryKiB} KiB memory, ${p.passes} passes, ${p.lanes} lanes`;
  if (
    params.memoryKiB < KDF_FLOOR.memoryKiB ||
    params.passes < KDF_FLOOR.passes ||
    params.lanes < KDF_FLOOR.lanes
  ) {
    throw new WrapError(
      "weak-params",
      `The key-derivation parameters (${
        describe(params)
      }) are below the minimum (${describe(KDF_FLOOR)}). ${hint}`,
    );
  }
  if (
    params.memoryKiB > KDF_CAP.memoryKiB ||
    params.passes > KDF_CAP.passes ||
    params.lanes > KDF_CAP.lanes
  ) {
    throw new WrapError(
      "excessive-params",
      `The key-derivation parameters (${
        describe(params)
      }) exceed the maximum (${describe(KDF_CAP)}). ${hint}`,
    );
  }
}

function encodeHeader(params: KdfParams): Uint8Array {
  const header = new Uint8Array(HEADER_LENGTH);
  const view = new DataView(header.buffer);
  header.set(MAGIC, 0);
  header[4] = VERSION;
  header[5] = KDF_ARGON2ID;
  view.setUint32(6, params.memoryKiB);
  view.setUint32(10, params.passes);
  header[14] = params.lanes;
  return header;
}

/** An Argon2id implementation: the same function, computed somewhere. */
export interface Argon2Engine {
  name: string;
  derive(
    passphrase: Uint8Array,
    salt: Uint8Array,
    params: KdfParams,
  ): Promise<Uint8Array>;
}

/** Portable WebAssembly (hash-wasm): runs under any permissions. */
export const WASM_ARGON2: Argon2Engine = {
  name: "WebAssembly (hash-wasm)",
  derive: async (passphrase, salt, params) =>
    await argon2id({
      password: passphrase,
      salt,
      iterations: params.passes,
      parallelism: params.lanes,
      memorySize: params.memoryKiB,
      hashLength: KEY_LENGTH,
      outputType: "binary",
    }),
};

let nativeArgon2: Promise<Argon2Engine | null> | undefined;

/**
 * The reference C implementation (the `argon2` package's prebuilt Node-API
 * addon), about 1.7× faster here than WebAssembly; null where it cannot be
 * loaded (no `--allow-ffi`, no prebuilt binary for the platform). Loaded on
 * first use, so only the faces that unwrap pay for it.
 */
export function loadNativeArgon2(): Promise<Argon2Engine | null> {
  nativeArgon2 ??= (async () => {
    try {
      const { Buffer } = await import("node:buffer");
      const argon2 = (await import("argon2")).default;
      // Views, not copies: the caller zeroes the passphrase it owns.
      const view = (bytes: Uint8Array) =>
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return {
        name: "native (argon2, reference C)",
        derive: async (passphrase, salt, params) => {
          const raw = await argon2.hash(view(passphrase), {
            type: argon2.argon2id,
            raw: true,
            salt: view(salt),
            timeCost: params.passes,
            memoryCost: params.memoryKiB,
            parallelism: params.lanes,
            hashLength: KEY_LENGTH,
          });
          const key = new Uint8Array(raw);
          raw.fill(0);
          return key;
        },
      } satisfies Argon2Engine;
    } catch {
      return null;
    }
  })();
  return nativeArgon2;
}

async function deriveKey(
  passphrase: Uint8Array,
  salt: Uint8Array,
  params: KdfParams,
): Promise<Uint8Array> {
  const engine = (await loadNativeArgon2()) ?? WASM_ARGON2;
  return await engine.derive(passphrase, salt, params);
}

function assertPassphrase(passphrase: Uint8Array): void {
  // A string would linger in memory beyond our reach; bytes can be zeroed.
  if (!(passphrase instanceof Uint8Array)) {
    throw new TypeError(
      "The passphrase must be a Uint8Array, not a string. Encode it with TextEncoder and zero the bytes after use.",
    );
  }
}

function assertSalt(salt: Uint8Array): void {
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_LENGTH) {
    const got = salt instanceof Uint8Array
      ? `${salt.length} bytes`
      : "no bytes";
    throw new WrapError(
      "bad-salt",
      `The salt must be ${SALT_LENGTH} bytes, but ${got} were given. Check that identity.salt is intact, and restore it from a backup if not.`,
    );
  }
}

function truncated(length: number): WrapError {
  return new WrapError(
    "truncated",
    `The wrapped identity is ${length} bytes, but a version ${VERSION} file is exactly ${WRAPPED_LENGTH} bytes. It is truncated or corrupted; restore identity.wrapped from a backup.`,
  );
}
