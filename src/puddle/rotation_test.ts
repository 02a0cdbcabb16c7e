import assert from "node:assert/strict";
import { generateSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import {
  decodeRetiredLog,
  encodeRetiredLog,
  rotationsFrom,
  signRotation,
  verifyRotation,
  verifyRotationChain,
} from "./rotation.ts";

const key = () => seedSigner(generateSeed());

/** k0 → k1 → k2, as a log of two statements. */
async function twoRotations() {
  const [k0, k1, k2] = [key(), key(), key()];
  const first = verifyRotation(
    await signRotation(k0, k1, { seq: 1, previous: null }),
  );
  const second = verifyRotation(
    await signRotation(k1, k2, { seq: 2, previous: first.id }),
  );
  return { k0, k1, k2, log: [first, second] };
}

Deno.test("a rotation statement carries both signatures and chains by id", async () => {
  const { k0, k2, log } = await twoRotations();
  const wires = log.map((r) => r.wire);
  assert.equal(verifyRotationChain(wires).length, 2);
  const text = encodeRetiredLog(log);
  const back = decodeRetiredLog(new TextEncoder().encode(text));
  assert.deepEqual(back.map((r) => r.id), log.map((r) => r.id));
  // An envoy that holds k0 takes both; one that holds nothing else too.
  assert.equal(rotationsFrom(back, [], k0.publicKey, k2.publicKey).length, 2);
});

Deno.test("a statement signed by one key only is refused", async () => {
  const [old, next, stranger] = [key(), key(), key()];
  const notAccepting: Signer = {
    publicKey: next.publicKey,
    sign: stranger.sign,
  };
  const wire = await signRotation(old, notAccepting, {
    seq: 1,
    previous: null,
  });
  assert.throws(() => verifyRotation(wire), /not accepted by the new key/);
  const notSigning: Signer = { publicKey: old.publicKey, sign: stranger.sign };
  const forged = await signRotation(notSigning, next, {
    seq: 1,
    previous: null,
  });
  assert.throws(() => verifyRotation(forged), /not signed by the old key/);
});

Deno.test("out-of-sequence and broken logs are refused", async () => {
  const { k0, k1, k2, log } = await twoRotations();
  const [first, second] = log.map((r) => r.wire);
  assert.throws(() => verifyRotationChain([second]), /out of sequence/);
  assert.throws(() => verifyRotationChain([second, first]), /out of sequence/);
  const skipped = await signRotation(k1, k2, { seq: 2, previous: null });
  assert.throws(() => verifyRotationChain([first, skipped]), /out of sequence/);
  const elsewhere = await signRotation(k0, k2, {
    seq: 2,
    previous: log[0].id,
  });
  assert.throws(
    () => verifyRotationChain([first, elsewhere]),
    /out of sequence/,
  );
  assert.throws(
    () => decodeRetiredLog(new TextEncoder().encode("{")),
    /not JSON/,
  );
});

Deno.test("an offer must continue the log held here and retire the key held here", async () => {
  const { k0, k1, k2, log } = await twoRotations();
  const stranger = key();
  assert.throws(
    () => rotationsFrom(log, [], stranger.publicKey, k2.publicKey),
    /no rotation statement is signed by .* the key this envoy holds/,
  );
  assert.throws(
    () => rotationsFrom(log, [], k0.publicKey, k1.publicKey),
    /not the one the last rotation statement names/,
  );
  const other = verifyRotation(
    await signRotation(k0, stranger, { seq: 1, previous: null }),
  );
  assert.throws(
    () => rotationsFrom(log, [other], k1.publicKey, k2.publicKey),
    /differs from this envoy's at rotation 1/,
  );
  assert.equal(
    rotationsFrom(log, [log[0]], k1.publicKey, k2.publicKey).length,
    1,
  );
});
