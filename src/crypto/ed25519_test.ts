import assert from "node:assert/strict";
import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";
import {
  formatPublicKey,
  generateSeed,
  parsePublicKey,
  publicKeyFromSeed,
  PURE_JS_ENGINE,
  signBytes,
  useVerifyEngine,
  verifyBytes,
  type VerifyEngine,
} from "./ed25519.ts";
import { NATIVE_ENGINE } from "./ed25519_native.ts";

/**
 * Registers `fn` once per engine: every case of the strict rule must hold
 * whichever engine checks the equation.
 */
function engineTest(name: string, fn: () => void): void {
  for (const engine of [PURE_JS_ENGINE, NATIVE_ENGINE] as VerifyEngine[]) {
    Deno.test(`[${engine.name}] ${name}`, () => {
      useVerifyEngine(engine);
      try {
        fn();
      } finally {
        useVerifyEngine(PURE_JS_ENGINE);
      }
    });
  }
}
import { fromHex, toHex } from "./hex.ts";

interface Vector {
  name: string;
  seed: string;
  publicKey: string;
  message: string;
  signature: string;
}

// RFC 8032 section 7.1 message for "TEST 1024" (1023 bytes).
const MESSAGE_1024 =
  "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98" +
  "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8" +
  "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d" +
  "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc" +
  "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe" +
  "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e" +
  "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef" +
  "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7" +
  "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1" +
  "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2" +
  "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24" +
  "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270" +
  "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc" +
  "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07" +
  "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba" +
  "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a" +
  "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e" +
  "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7" +
  "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c" +
  "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8" +
  "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df" +
  "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08" +
  "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649" +
  "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4" +
  "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3" +
  "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e" +
  "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f" +
  "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5" +
  "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1" +
  "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d" +
  "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c" +
  "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0";

// RFC 8032 section 7.1, Ed25519 test vectors.
const RFC8032_VECTORS: Vector[] = [
  {
    name: "TEST 1",
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey:
      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey:
      "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    publicKey:
      "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac" +
      "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
  {
    name: "TEST 1024",
    seed: "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
    publicKey:
      "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
    message: MESSAGE_1024,
    signature:
      "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350" +
      "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
  },
  {
    name: "TEST SHA(abc)",
    seed: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
    publicKey:
      "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    message:
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    signature:
      "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589" +
      "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
  },
];

// Canonical encodings of all eight points of small order (orders 1, 2, 4, 8).
const SMALL_ORDER_POINTS = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
];
// The identity point encoded with y = p + 1 instead of y = 1.
const IDENTITY_Y_PLUS_P =
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
// The identity point with the sign bit of x set although x = 0.
const IDENTITY_NEGATIVE_ZERO =
  "0100000000000000000000000000000000000000000000000000000000000080";

// y = p + 3: a non-canonical encoding of a point that is not of small order.
const NON_CANONICAL_LARGE_ORDER =
  "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";

const L = ed.Point.CURVE().n;
const { Point } = ed;

function leToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function bigIntTo32LE(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return ed.etc.concatBytes(...parts);
}

// k = SHA-512(R ‖ A ‖ M) mod L, as in RFC 8032.
function challenge(r: Uint8Array, a: Uint8Array, m: Uint8Array): bigint {
  return ed.etc.mod(leToBigInt(sha512(concat(r, a, m))), L);
}

function secretScalar(seed: Uint8Array): bigint {
  return ed.utils.getExtendedPublicKey(seed).scalar;
}

function flipBit(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] ^= 0x01;
  return copy;
}

const TEST1 = RFC8032_VECTORS[0];
const TEST2 = RFC8032_VECTORS[1];

Deno.test("RFC 8032 vectors: 1024-byte message is complete", () => {
  assert.equal(fromHex(MESSAGE_1024).length, 1023);
});

Deno.test("RFC 8032 vectors: SHA(abc) message is SHA-512 of 'abc'", () => {
  assert.equal(
    toHex(sha512(new TextEncoder().encode("abc"))),
    RFC8032_VECTORS[4].message,
  );
});

for (const v of RFC8032_VECTORS) {
  engineTest(
    `RFC 8032 ${v.name}: public key, signature and verification`,
    () => {
      const seed = fromHex(v.seed);
      const publicKey = fromHex(v.publicKey);
      const message = fromHex(v.message);
      const signature = fromHex(v.signature);
      assert.equal(toHex(publicKeyFromSeed(seed)), v.publicKey);
      assert.equal(toHex(signBytes(seed, message)), v.signature);
      assert.equal(verifyBytes(publicKey, message, signature), true);
    },
  );
}

engineTest("sign and verify a random key round trip", () => {
  const seed = generateSeed();
  assert.equal(seed.length, 32);
  assert.notDeepEqual(seed, generateSeed());
  const message = new TextEncoder().encode("hello");
  const signature = signBytes(seed, message);
  assert.equal(signature.length, 64);
  assert.equal(verifyBytes(publicKeyFromSeed(seed), message, signature), true);
});

engineTest("tampered message, signature or key is rejected", () => {
  const pk = fromHex(TEST2.publicKey);
  const msg = fromHex(TEST2.message);
  const sig = fromHex(TEST2.signature);
  assert.equal(verifyBytes(pk, flipBit(msg, 0), sig), false);
  assert.equal(verifyBytes(pk, concat(msg, new Uint8Array(1)), sig), false);
  assert.equal(verifyBytes(pk, new Uint8Array(0), sig), false);
  for (const i of [0, 17, 31, 32, 50, 63]) {
    assert.equal(verifyBytes(pk, msg, flipBit(sig, i)), false, `sig byte ${i}`);
  }
  assert.equal(verifyBytes(fromHex(TEST1.publicKey), msg, sig), false);
});

engineTest("signature with S + L (S >= L) is rejected", () => {
  const pk = fromHex(TEST1.publicKey);
  const msg = fromHex(TEST1.message);
  const sig = fromHex(TEST1.signature);
  const s = leToBigInt(sig.subarray(32));
  assert.ok(s < L);
  const malleated = concat(sig.subarray(0, 32), bigIntTo32LE(s + L));
  assert.equal(verifyBytes(pk, msg, malleated), false);
  // S = L exactly and S = 2^256 - 1 are out of range too.
  assert.equal(
    verifyBytes(pk, msg, concat(sig.subarray(0, 32), bigIntTo32LE(L))),
    false,
  );
  assert.equal(
    verifyBytes(
      pk,
      msg,
      concat(sig.subarray(0, 32), new Uint8Array(32).fill(0xff)),
    ),
    false,
  );
});

engineTest(
  "small-order public keys are rejected even with a 'valid' signature",
  () => {
    const msg = new TextEncoder().encode("any message at all");
    // With A of small order, R = rB and S = r satisfy the cofactored equation
    // for every message: a universal forgery that the strict rule must refuse.
    const r = 0x1234567890abcdefn;
    const forged = concat(Point.BASE.multiply(r).toBytes(), bigIntTo32LE(r));
    for (const hex of [...SMALL_ORDER_POINTS, IDENTITY_Y_PLUS_P]) {
      const pk = fromHex(hex);
      const point = Point.fromBytes(pk, true);
      assert.ok(point.isSmallOrder(), `${hex} should be small order`);
      assert.equal(ed.verify(forged, msg, pk), true, `ZIP-215 accepts ${hex}`);
      assert.equal(verifyBytes(pk, msg, forged), false, hex);
    }
  },
);

engineTest("non-canonical encodings of A are rejected", () => {
  const msg = new TextEncoder().encode("m");
  const r = 99n;
  const forged = concat(Point.BASE.multiply(r).toBytes(), bigIntTo32LE(r));
  for (const hex of [IDENTITY_Y_PLUS_P, IDENTITY_NEGATIVE_ZERO]) {
    const pk = fromHex(hex);
    assert.throws(() => Point.fromBytes(pk, false));
    assert.equal(ed.verify(forged, msg, pk), true, `ZIP-215 accepts ${hex}`);
    assert.equal(verifyBytes(pk, msg, forged), false, hex);
  }
  // y = p + 3 encodes a point of large order that also has the canonical
  // encoding y = 3; only the canonical one may be accepted.
  const nonCanonical = fromHex(NON_CANONICAL_LARGE_ORDER);
  assert.throws(() => Point.fromBytes(nonCanonical, false));
  assert.ok(!Point.fromBytes(nonCanonical, true).isSmallOrder());
  assert.equal(verifyBytes(nonCanonical, msg, forged), false);
});

engineTest("non-canonical encodings of R are rejected", () => {
  // R = identity, so the equation reduces to S·B = k·A, i.e. S = k·a.
  // This needs the secret scalar, so it is not a forgery; it isolates the
  // encoding rule from the equation.
  const seed = fromHex(TEST1.seed);
  const pk = fromHex(TEST1.publicKey);
  const a = secretScalar(seed);
  const msg = new TextEncoder().encode("non-canonical R");
  const sigWithR = (rHex: string) => {
    const rBytes = fromHex(rHex);
    const s = ed.etc.mod(challenge(rBytes, pk, msg) * a, L);
    return concat(rBytes, bigIntTo32LE(s));
  };
  // Control: the canonical identity encoding is accepted (RFC 8032 does not
  // forbid small-order R), which shows the rejections below are about the
  // encoding alone.
  assert.equal(verifyBytes(pk, msg, sigWithR(SMALL_ORDER_POINTS[0])), true);
  for (const hex of [IDENTITY_Y_PLUS_P, IDENTITY_NEGATIVE_ZERO]) {
    const sig = sigWithR(hex);
    assert.equal(ed.verify(sig, msg, pk), true, `ZIP-215 accepts ${hex}`);
    assert.equal(verifyBytes(pk, msg, sig), false, hex);
  }
});

engineTest(
  "R with a small-order component is rejected (cofactorless rule)",
  () => {
    const seed = fromHex(TEST1.seed);
    const pk = fromHex(TEST1.publicKey);
    const a = secretScalar(seed);
    const msg = new TextEncoder().encode("mixed-order R");
    const torsion = Point.fromBytes(fromHex(SMALL_ORDER_POINTS[4]), false);
    assert.ok(!torsion.multiply(4n, false).is0(), "torsion point has order 8");
    const r = 0xfeedfacecafebeefn;
    const sign = (rPoint: InstanceType<typeof Point>) => {
      const rBytes = rPoint.toBytes();
      const s = ed.etc.mod(r + challenge(rBytes, pk, msg) * a, L);
      return concat(rBytes, bigIntTo32LE(s));
    };
    // Control: without the torsion component the construction is a normal
    // signature.
    assert.equal(verifyBytes(pk, msg, sign(Point.BASE.multiply(r))), true);
    const mixed = sign(Point.BASE.multiply(r).add(torsion));
    // noble's strict branch uses the cofactored equation and accepts it...
    assert.equal(ed.verify(mixed, msg, pk, { zip215: false }), true);
    // ...but the pinned rule is cofactorless and must not.
    assert.equal(verifyBytes(pk, msg, mixed), false);
  },
);

engineTest(
  "verifyBytes returns false instead of throwing on malformed input",
  () => {
    const pk = fromHex(TEST1.publicKey);
    const msg = fromHex(TEST1.message);
    const sig = fromHex(TEST1.signature);
    assert.equal(verifyBytes(pk.subarray(0, 31), msg, sig), false);
    assert.equal(verifyBytes(concat(pk, new Uint8Array(1)), msg, sig), false);
    assert.equal(verifyBytes(new Uint8Array(0), msg, sig), false);
    assert.equal(verifyBytes(pk, msg, sig.subarray(0, 63)), false);
    assert.equal(verifyBytes(pk, msg, concat(sig, new Uint8Array(1))), false);
    assert.equal(verifyBytes(pk, msg, new Uint8Array(0)), false);
    // A 32-byte value that is not a curve point.
    const notAPoint = new Uint8Array(32);
    notAPoint[0] = 2;
    assert.equal(verifyBytes(notAPoint, msg, sig), false);
    const junk = [undefined, null, "abc", 42, [1, 2, 3], {}] as unknown[];
    for (const value of junk) {
      const v = value as Uint8Array;
      assert.equal(verifyBytes(v, msg, sig), false);
      assert.equal(verifyBytes(pk, v, sig), false);
      assert.equal(verifyBytes(pk, msg, v), false);
    }
  },
);

Deno.test("seed length is enforced with a helpful error", () => {
  assert.throws(() => publicKeyFromSeed(new Uint8Array(31)), /32-byte/);
  assert.throws(
    () => signBytes(new Uint8Array(64), new Uint8Array(0)),
    /32-byte/,
  );
});

Deno.test("formatPublicKey and parsePublicKey round trip", () => {
  const pk = fromHex(TEST1.publicKey);
  const text = formatPublicKey(pk);
  assert.equal(text, `ed25519:${TEST1.publicKey}`);
  assert.deepEqual(parsePublicKey(text), pk);
  assert.deepEqual(parsePublicKey(TEST1.publicKey), pk);
  assert.deepEqual(parsePublicKey(`  ${text}\n`), pk);
  assert.deepEqual(parsePublicKey(`\t${TEST1.publicKey.toUpperCase()} `), pk);
  assert.throws(() => formatPublicKey(new Uint8Array(31)), RangeError);
});

Deno.test("parsePublicKey rejects other text with a clear error", () => {
  const hex = TEST1.publicKey;
  for (
    const bad of [
      "",
      "ed25519:",
      hex.slice(2),
      hex + "00",
      `ed25519:${hex.slice(1)}g`,
      `ssh-ed25519:${hex}`,
      `ED25519:${hex}`,
      `ed25519: ${hex}`,
      `0x${hex}`,
    ]
  ) {
    assert.throws(() => parsePublicKey(bad), /expected "ed25519:"/, bad);
  }
});
