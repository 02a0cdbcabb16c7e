import assert from "node:assert/strict";
import * as ed from "@noble/ed25519";
import {
  isCanonicalPoint,
  PURE_JS_ENGINE,
  SMALL_ORDER_ENCODINGS,
  useVerifyEngine,
  verifyBytes,
} from "./ed25519.ts";
import { NATIVE_ENGINE } from "./ed25519_native.ts";
import { fromHex, toHex } from "./hex.ts";

const { Point } = ed;
const L = Point.CURVE().n;

function le32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function leToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function withEngine<T>(engine: typeof NATIVE_ENGINE, fn: () => T): T {
  useVerifyEngine(engine);
  try {
    return fn();
  } finally {
    useVerifyEngine(PURE_JS_ENGINE);
  }
}

Deno.test("node:crypto alone takes a small-order key's universal forgery; the strict rule around it does not", () => {
  const identity = fromHex(SMALL_ORDER_ENCODINGS[0]);
  const r = 0x1234567890abcdefn;
  // With A = identity, [S]B = R + [k]A holds for R = rB, S = r, any message.
  const forged = ed.etc.concatBytes(Point.BASE.multiply(r).toBytes(), le32(r));
  for (const text of ["pay ann", "pay mallory"]) {
    const message = new TextEncoder().encode(text);
    assert.equal(NATIVE_ENGINE.equationHolds(identity, message, forged), true);
    assert.equal(
      withEngine(NATIVE_ENGINE, () => verifyBytes(identity, message, forged)),
      false,
    );
  }
});

Deno.test("the small-order list is exactly the eight points of small order", () => {
  const listed = new Set(SMALL_ORDER_ENCODINGS);
  assert.equal(listed.size, 8);
  // The torsion subgroup: the multiples of one point of order 8.
  const t = Point.fromBytes(fromHex(SMALL_ORDER_ENCODINGS[4]), false);
  const multiples = new Set<string>();
  let p = Point.ZERO;
  for (let i = 0; i < 8; i++, p = p.add(t)) multiples.add(toHex(p.toBytes()));
  assert.deepEqual(multiples, listed);
  for (const hex of listed) assert.ok(isCanonicalPoint(fromHex(hex)), hex);
});

Deno.test("canonical encodings, by bytes", () => {
  const p = (2n ** 255n) - 19n;
  const refused = [
    le32(p), // y = p
    le32(p + 1n), // the identity as y = p + 1
    le32(2n ** 255n - 1n), // y = 2^255 - 1
    fromHex(
      "0100000000000000000000000000000000000000000000000000000000000080",
    ), // y = 1, x = "-0"
    fromHex(
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ), // y = p - 1, x = "-0"
  ];
  for (const bytes of refused) {
    assert.ok(!isCanonicalPoint(bytes), toHex(bytes));
  }
  const taken = [le32(0n), le32(1n), le32(p - 1n), Point.BASE.toBytes()];
  for (const bytes of taken) assert.ok(isCanonicalPoint(bytes), toHex(bytes));
});

Deno.test("both engines agree on 3,000 signatures, valid and mangled", () => {
  const seedOf = (i: number) => {
    const seed = new Uint8Array(32);
    new DataView(seed.buffer).setUint32(0, i + 1);
    return seed;
  };
  const torsion = Point.fromBytes(fromHex(SMALL_ORDER_ENCODINGS[4]), false);
  let valid = 0;
  for (let i = 0; i < 3000; i++) {
    const seed = seedOf(i % 50);
    let key: Uint8Array = ed.getPublicKey(seed);
    let message = new TextEncoder().encode(`message ${i}`);
    let signature: Uint8Array = ed.sign(message, seed);
    switch (i % 10) {
      case 1: // a flipped bit anywhere in the signature
        signature = signature.slice();
        signature[(i * 7) % 64] ^= 1 << (i % 8);
        break;
      case 2: // S + L
        signature = ed.etc.concatBytes(
          signature.subarray(0, 32),
          le32(leToBigInt(signature.subarray(32)) + L),
        );
        break;
      case 3: // another message
        message = new TextEncoder().encode(`other ${i}`);
        break;
      case 4: // a small-order key
        key = fromHex(SMALL_ORDER_ENCODINGS[i % 8]);
        break;
      case 5: // a key off the curve or not canonical
        key = key.slice();
        key[(i * 3) % 32] ^= 0x40;
        break;
      case 6: // R with a torsion component
        signature = ed.etc.concatBytes(
          Point.fromBytes(signature.subarray(0, 32), false).add(torsion)
            .toBytes(),
          signature.subarray(32),
        );
        break;
    }
    const pure = verifyBytes(key, message, signature);
    const native = withEngine(
      NATIVE_ENGINE,
      () => verifyBytes(key, message, signature),
    );
    assert.equal(native, pure, `case ${i}`);
    if (pure) valid++;
  }
  // About a third of the cases are untouched signatures.
  assert.ok(valid >= 1200, `${valid} valid`);
});
