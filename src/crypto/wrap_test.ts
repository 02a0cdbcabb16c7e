import assert from "node:assert/strict";
import { fromHex, toHex } from "./hex.ts";
import {
  assertKdfParams,
  DEFAULT_KDF,
  KDF_CAP,
  KDF_FLOOR,
  type KdfParams,
  loadNativeArgon2,
  parseWrappedHeader,
  SALT_LENGTH,
  unwrapSeed,
  WASM_ARGON2,
  WrapError,
  type WrapErrorCode,
  WRAPPED_LENGTH,
  wrapSeed,
} from "./wrap.ts";

// Each Argon2id run at the default cost takes a noticeable fraction of a
// second, so the tests share one wrapping and keep real KDF runs to about ten.

const encoder = new TextEncoder();
const seed = crypto.getRandomValues(new Uint8Array(32));
const passphrase = encoder.encode("correct horse battery staple");
const salt = crypto.getRandomValues(new Uint8Array(SALT_LENGTH));

let shared: Promise<Uint8Array> | undefined;
function sharedWrapped(): Promise<Uint8Array> {
  shared ??= wrapSeed(seed, passphrase, salt);
  return shared;
}

async function rejectsWith(
  code: WrapErrorCode,
  promise: Promise<unknown>,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof WrapError, `expected WrapError, got ${error}`);
    assert.equal(error.code, code);
    assert.equal(error.name, "WrapError");
    if (message) assert.match(error.message, message);
    return true;
  });
}

function edit(
  wrapped: Uint8Array,
  change: (bytes: Uint8Array, view: DataView) => void,
): Uint8Array {
  const copy = wrapped.slice();
  change(copy, new DataView(copy.buffer));
  return copy;
}

Deno.test("wrapped layout: 87 bytes with the documented header", async () => {
  const wrapped = await sharedWrapped();
  assert.equal(wrapped.length, WRAPPED_LENGTH);
  assert.equal(
    toHex(wrapped.subarray(0, 15)),
    "5647505701010001000000000003" + "01",
  );
  assert.deepEqual(parseWrappedHeader(wrapped), {
    version: 1,
    params: { memoryKiB: 65536, passes: 3, lanes: 1 },
  });
});

Deno.test("round trip returns the original seed", async () => {
  const wrapped = await sharedWrapped();
  const unwrapped = await unwrapSeed(wrapped, passphrase, salt);
  assert.deepEqual(unwrapped, seed);
  // Inputs are left alone.
  assert.equal(passphrase.length, 28);
});

Deno.test("unwraps a known version 1 file", async () => {
  // Built independently from docs/formats.md with @noble/hashes' Argon2id
  // (m=65536, t=3, p=1, v1.3): seed 00..1f, salt a0..af, nonce 40..57.
  const wrapped = fromHex(
    "564750570101000100000000000301" +
      "404142434445464748494a4b4c4d4e4f5051525354555657" +
      "8cee834c3dfcfd846f5e914e2f44d1a5952ee826dc7311d8b5447c017bf4330e" +
      "5cda787e3a7b4203a213ffa39e10c50f",
  );
  const knownSalt = fromHex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  const unwrapped = await unwrapSeed(wrapped, passphrase, knownSalt);
  assert.equal(
    toHex(unwrapped),
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  );
});

Deno.test("each wrap uses a fresh nonce", async () => {
  const first = await sharedWrapped();
  const second = await wrapSeed(seed, passphrase, salt);
  assert.deepEqual(first.subarray(0, 15), second.subarray(0, 15));
  assert.notDeepEqual(first.subarray(15, 39), second.subarray(15, 39));
  assert.notDeepEqual(first.subarray(39), second.subarray(39));
});

Deno.test("wrong passphrase is reported as such", async () => {
  const wrapped = await sharedWrapped();
  await rejectsWith(
    "wrong-passphrase",
    unwrapSeed(wrapped, encoder.encode("correct horse battery stapler"), salt),
    /passphrase is wrong, or identity\.wrapped or identity\.salt was altered/,
  );
});

Deno.test("wrong salt fails authentication", async () => {
  const wrapped = await sharedWrapped();
  const otherSalt = salt.slice();
  otherSalt[0] ^= 1;
  await rejectsWith(
    "wrong-passphrase",
    unwrapSeed(wrapped, passphrase, otherSalt),
  );
});

Deno.test("flipped nonce byte fails authentication", async () => {
  const wrapped = edit(await sharedWrapped(), (b) => b[20] ^= 0x01);
  await rejectsWith("wrong-passphrase", unwrapSeed(wrapped, passphrase, salt));
});

Deno.test("flipped ciphertext byte fails authentication", async () => {
  const wrapped = edit(await sharedWrapped(), (b) => b[45] ^= 0x80);
  await rejectsWith("wrong-passphrase", unwrapSeed(wrapped, passphrase, salt));
});

Deno.test("in-range parameter change fails authentication (header is AD)", async () => {
  const wrapped = edit(await sharedWrapped(), (_, v) => v.setUint32(10, 4));
  assert.equal(parseWrappedHeader(wrapped).params.passes, 4);
  await rejectsWith("wrong-passphrase", unwrapSeed(wrapped, passphrase, salt));
});

// Everything below is refused before any KDF run.

Deno.test("tampered magic, version or KDF id is refused", async () => {
  const wrapped = await sharedWrapped();
  const cases: [WrapErrorCode, (b: Uint8Array) => void, RegExp][] = [
    ["bad-magic", (b) => b[0] = 0x58, /does not start with "VGPW"/],
    ["bad-magic", (b) => b[3] ^= 0x20, /Check that the path/],
    ["unsupported-version", (b) => b[4] = 2, /format version 2.*Upgrade/],
    ["unsupported-version", (b) => b[4] = 0, /format version 0/],
    ["unsupported-kdf", (b) => b[5] = 2, /key-derivation function 2/],
    ["unsupported-kdf", (b) => b[5] = 0, /supports only 1 \(Argon2id\)/],
  ];
  for (const [code, change, message] of cases) {
    const tampered = edit(wrapped, change);
    assert.throws(() => parseWrappedHeader(tampered), WrapError);
    await rejectsWith(code, unwrapSeed(tampered, passphrase, salt), message);
  }
});

Deno.test("parameters below the floor or above the cap are refused", async () => {
  const wrapped = await sharedWrapped();
  const cases: [WrapErrorCode, (v: DataView) => void][] = [
    ["weak-params", (v) => v.setUint32(6, 65535)],
    ["weak-params", (v) => v.setUint32(6, 8)],
    ["weak-params", (v) => v.setUint32(10, 2)],
    ["weak-params", (v) => v.setUint32(10, 0)],
    ["weak-params", (v) => v.setUint8(14, 0)],
    ["excessive-params", (v) => v.setUint32(6, 1048577)],
    ["excessive-params", (v) => v.setUint32(6, 0xffffffff)],
    // Were this run, it would spin practically forever.
    ["excessive-params", (v) => v.setUint32(10, 0xffffffff)],
    ["excessive-params", (v) => v.setUint32(10, 17)],
    ["excessive-params", (v) => v.setUint8(14, 9)],
    ["excessive-params", (v) => v.setUint8(14, 255)],
  ];
  for (const [code, change] of cases) {
    const tampered = edit(wrapped, (_, v) => change(v));
    // Still readable for status display.
    assert.equal(parseWrappedHeader(tampered).version, 1);
    await rejectsWith(
      code,
      unwrapSeed(tampered, passphrase, salt),
      /key-derivation parameters .* (below the minimum|exceed the maximum) .*restore identity\.wrapped/,
    );
  }
});

Deno.test("truncated or overlong files are refused", async () => {
  const wrapped = await sharedWrapped();
  for (const length of [0, 3, 4, 5, 6, 14, 15, 39, 86]) {
    const cut = wrapped.slice(0, length);
    await rejectsWith(
      "truncated",
      unwrapSeed(cut, passphrase, salt),
      new RegExp(
        `is ${length} bytes, but a version 1 file is exactly 87 bytes`,
      ),
    );
    assert.throws(() => parseWrappedHeader(cut), /truncated/);
  }
  const long = new Uint8Array(88);
  long.set(wrapped);
  await rejectsWith("truncated", unwrapSeed(long, passphrase, salt));
});

Deno.test("salt of the wrong length is refused", async () => {
  const wrapped = await sharedWrapped();
  for (const length of [0, 8, 15, 17, 32]) {
    const badSalt = new Uint8Array(length);
    await rejectsWith(
      "bad-salt",
      unwrapSeed(wrapped, passphrase, badSalt),
      /salt must be 16 bytes.*identity\.salt/,
    );
    await rejectsWith("bad-salt", wrapSeed(seed, passphrase, badSalt));
  }
});

Deno.test("wrapSeed refuses weak or excessive parameters", async () => {
  const weak: KdfParams[] = [
    { ...DEFAULT_KDF, memoryKiB: KDF_FLOOR.memoryKiB - 1 },
    { ...DEFAULT_KDF, passes: KDF_FLOOR.passes - 1 },
    { ...DEFAULT_KDF, lanes: 0 },
  ];
  const excessive: KdfParams[] = [
    { ...DEFAULT_KDF, memoryKiB: KDF_CAP.memoryKiB + 1 },
    { ...DEFAULT_KDF, passes: KDF_CAP.passes + 1 },
    { ...DEFAULT_KDF, lanes: KDF_CAP.lanes + 1 },
  ];
  for (const params of weak) {
    await rejectsWith("weak-params", wrapSeed(seed, passphrase, salt, params));
    assert.throws(
      () => assertKdfParams(params),
      /below the minimum.*DEFAULT_KDF/,
    );
  }
  for (const params of excessive) {
    await rejectsWith(
      "excessive-params",
      wrapSeed(seed, passphrase, salt, params),
    );
    assert.throws(() => assertKdfParams(params), /exceed the maximum/);
  }
  assertKdfParams(KDF_FLOOR);
  assertKdfParams(KDF_CAP);
  await assert.rejects(
    wrapSeed(seed, passphrase, salt, { ...DEFAULT_KDF, passes: 3.5 }),
    /passes must be a non-negative integer/,
  );
});

Deno.test("wrapSeed and unwrapSeed reject misuse with clear errors", async () => {
  await assert.rejects(
    wrapSeed(new Uint8Array(31), passphrase, salt),
    /32-byte Uint8Array/,
  );
  await assert.rejects(
    wrapSeed(seed, "hunter2" as unknown as Uint8Array, salt),
    /passphrase must be a Uint8Array, not a string/,
  );
  await assert.rejects(
    unwrapSeed(await sharedWrapped(), "hunter2" as unknown as Uint8Array, salt),
    TypeError,
  );
});

Deno.test("constants match the documented format", () => {
  assert.deepEqual({ ...DEFAULT_KDF }, {
    memoryKiB: 65536,
    passes: 3,
    lanes: 1,
  });
  assert.deepEqual({ ...KDF_FLOOR }, { memoryKiB: 65536, passes: 3, lanes: 1 });
  assert.deepEqual({ ...KDF_CAP }, {
    memoryKiB: 1048576,
    passes: 16,
    lanes: 8,
  });
  assert.equal(SALT_LENGTH, 16);
  assert.equal(WRAPPED_LENGTH, 87);
});

Deno.test("both Argon2id engines derive the same key; the native one loads under the test's permissions", async () => {
  const native = await loadNativeArgon2();
  assert.ok(native, "the argon2 package's addon loads (npm ci installs it)");
  const knownSalt = fromHex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  const params = { memoryKiB: 65536, passes: 3, lanes: 1 };
  const fromNative = await native.derive(passphrase, knownSalt, params);
  const fromWasm = await WASM_ARGON2.derive(passphrase, knownSalt, params);
  assert.equal(toHex(fromNative), toHex(fromWasm));
  assert.equal(fromNative.length, 32);
  // The passphrase view given to the addon is left as it was.
  assert.equal(
    new TextDecoder().decode(passphrase),
    "correct horse battery staple",
  );
});
