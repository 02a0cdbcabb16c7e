import assert from "node:assert/strict";
import { canonicalBytes } from "./canonical.ts";
import { generateSeed, publicKeyFromSeed, signBytes } from "./ed25519.ts";
import { toHex } from "./hex.ts";
import {
  bodyId,
  isSignContext,
  SIGN_CONTEXTS,
  type SignContext,
  signingInput,
  signWithContext,
  verifyWithContext,
} from "./signed.ts";

const seed = generateSeed();
const publicKey = publicKeyFromSeed(seed);
const body = canonicalBytes({ repo: "vigo", rights: ["read"] });
const ALL = Object.values(SIGN_CONTEXTS);

Deno.test("SIGN_CONTEXTS lists the expected, distinct, NUL-free strings", () => {
  assert.deepEqual(ALL, [
    "vigo-swarm/v1/puddle-session-probe",
    "vigo-swarm/v1/puddle-agent-challenge",
    "vigo-swarm/v1/puddle-envoy-binding",
    "vigo-swarm/v1/puddle-rotation",
    "vigo-swarm/v1/puddle-rotation-accept",
    "vigo-swarm/v1/puddle-name-claim",
    "vigo-swarm/v1/gitback-token",
    "vigo-swarm/v1/gitback-envelope-revoke",
    "vigo-swarm/v1/gitback-envelope-leave",
    "vigo-swarm/v1/gitback-delegation",
    "vigo-swarm/v1/gitback-refs",
    "vigo-swarm/v1/gitback-scope",
    "vigo-swarm/v1/gitback-tombstone",
  ]);
  assert.equal(new Set(ALL).size, ALL.length);
  for (const context of ALL) {
    assert.ok(!context.includes("\0"));
    assert.match(context, /^vigo-swarm\/v1\/[a-z-]+$/);
  }
});

Deno.test("isSignContext accepts only listed strings", () => {
  for (const context of ALL) assert.equal(isSignContext(context), true);
  for (
    const other of [
      "",
      "vigo-swarm/v1/",
      "vigo-swarm/v1/gitback-token ",
      "VIGO-SWARM/v1/gitback-token",
      "vigo-swarm/v2/gitback-token",
      "puddleNameClaim",
      undefined,
      null,
      42,
    ]
  ) {
    assert.equal(isSignContext(other), false, String(other));
  }
});

Deno.test("signingInput is context, NUL, body", () => {
  const input = signingInput(
    SIGN_CONTEXTS.gitbackToken,
    new Uint8Array([1, 2]),
  );
  const expected = new TextEncoder().encode(
    "vigo-swarm/v1/gitback-token\0\x01\x02",
  );
  assert.deepEqual(input, expected);
  assert.deepEqual(
    signingInput(SIGN_CONTEXTS.gitbackToken, new Uint8Array(0)),
    new TextEncoder().encode("vigo-swarm/v1/gitback-token\0"),
  );
  assert.throws(
    () => signingInput("vigo-swarm/v1/nope" as SignContext, body),
    /Unknown signing context "vigo-swarm\/v1\/nope"\. Use one of/,
  );
  assert.throws(
    () =>
      signingInput(SIGN_CONTEXTS.gitbackToken, "text" as unknown as Uint8Array),
    /must be a Uint8Array/,
  );
});

Deno.test("a signature verifies under its own context only", () => {
  for (const context of ALL) {
    const signature = signWithContext(seed, context, body);
    for (const other of ALL) {
      assert.equal(
        verifyWithContext(publicKey, other, body, signature),
        other === context,
        `signed under ${context}, checked under ${other}`,
      );
    }
  }
});

Deno.test("a context signature is not a plain signature over the body, and vice versa", () => {
  const context = SIGN_CONTEXTS.puddleNameClaim;
  const plain = signBytes(seed, body);
  assert.equal(verifyWithContext(publicKey, context, body, plain), false);
  const signature = signWithContext(seed, context, body);
  assert.deepEqual(signature, signBytes(seed, signingInput(context, body)));
});

Deno.test("verifyWithContext rejects tampering and never throws", () => {
  const context = SIGN_CONTEXTS.gitbackDelegation;
  const signature = signWithContext(seed, context, body);
  assert.equal(verifyWithContext(publicKey, context, body, signature), true);
  const tampered = body.slice();
  tampered[3] ^= 1;
  assert.equal(
    verifyWithContext(publicKey, context, tampered, signature),
    false,
  );
  const otherKey = publicKeyFromSeed(generateSeed());
  assert.equal(verifyWithContext(otherKey, context, body, signature), false);
  assert.equal(
    verifyWithContext(publicKey, "bogus" as SignContext, body, signature),
    false,
  );
  assert.equal(
    verifyWithContext(
      publicKey,
      context,
      null as unknown as Uint8Array,
      signature,
    ),
    false,
  );
  assert.equal(
    verifyWithContext(publicKey, context, body, new Uint8Array(3)),
    false,
  );
});

Deno.test("bodyId is the SHA-256 of the body bytes", async () => {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  assert.equal(
    await bodyId(new TextEncoder().encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // A view into a larger buffer hashes only the view.
  const big = new TextEncoder().encode("xxabcxx");
  assert.equal(await bodyId(big.subarray(2, 5)), await bodyId(big.slice(2, 5)));
  assert.match(await bodyId(body), /^[0-9a-f]{64}$/);
});

Deno.test("bodyId changes with the body and ignores the signature", async () => {
  const other = canonicalBytes({ repo: "vigo", rights: ["write"] });
  assert.notEqual(await bodyId(body), await bodyId(other));
  const id = await bodyId(body);
  // Two different signatures over the same body (different contexts, different
  // signers) leave the id unchanged.
  const sigA = signWithContext(seed, SIGN_CONTEXTS.gitbackToken, body);
  const sigB = signWithContext(
    generateSeed(),
    SIGN_CONTEXTS.gitbackToken,
    body,
  );
  assert.notEqual(toHex(sigA), toHex(sigB));
  assert.equal(await bodyId(body), id);
  // The id is of the body alone, not of the signing input.
  assert.notEqual(
    id,
    await bodyId(signingInput(SIGN_CONTEXTS.gitbackToken, body)),
  );
});
