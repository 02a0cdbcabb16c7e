import assert from "node:assert/strict";
import { encodeBase64 } from "../platform/encoding.ts";
import { canonicalBytes } from "./canonical.ts";
import { generateSeed } from "./ed25519.ts";
import { bodyId, SIGN_CONTEXTS } from "./signed.ts";
import {
  decodeSigned,
  refusalMessages,
  seedSigner,
  SignedObjectError,
  type SignedObjectErrorReason,
  signedObjectId,
  signObject,
  verifySigned,
} from "./signed_object.ts";

const signer = seedSigner(generateSeed());
const CONTEXT = SIGN_CONTEXTS.gitbackScope;

function refused(
  wire: unknown,
  reason: SignedObjectErrorReason,
  options = {},
): void {
  assert.throws(
    () => decodeSigned(wire, options),
    (e) => e instanceof SignedObjectError && e.reason === reason,
  );
}

Deno.test("a signed object round-trips; its id is the SHA-256 of the body bytes", async () => {
  const wire = await signObject(signer, CONTEXT, { b: [1, 2], a: "x" });
  const decoded = decodeSigned(wire);
  assert.deepEqual(decoded.body, { a: "x", b: [1, 2] });
  assert.deepEqual(decoded.wire, wire);
  assert.deepEqual(decoded.bytes, canonicalBytes({ a: "x", b: [1, 2] }));
  assert.equal(decoded.id, await bodyId(decoded.bytes));
  assert.equal(decoded.id, signedObjectId(decoded.bytes));
  assert.ok(verifySigned(signer.publicKey, CONTEXT, decoded.bytes, wire.sig));
  assert.ok(
    !verifySigned(
      signer.publicKey,
      SIGN_CONTEXTS.gitbackToken,
      decoded.bytes,
      wire.sig,
    ),
  );
  assert.ok(!verifySigned(signer.publicKey, CONTEXT, decoded.bytes, "00"));
});

Deno.test("decodeSigned refuses each defect with its reason, in order", async () => {
  const wire = await signObject(signer, CONTEXT, { a: 1 });
  refused(null, "shape");
  refused({ body: wire.body }, "shape");
  refused({ ...wire, chain: [] }, "shape");
  assert.ok(decodeSigned({ ...wire, chain: [] }, { extraFields: true }));
  refused(wire, "too-large", { maxBodyChars: wire.body.length - 1 });
  refused({ ...wire, sig: "AB".repeat(64) }, "signature");
  refused({ ...wire, body: wire.body + "!" }, "base64");
  refused({ ...wire, body: encodeBase64(new Uint8Array([0xff])) }, "json");
  refused({ ...wire, body: btoa("[1]") }, "not-object");
  refused({ ...wire, body: btoa('{"a":"\\ud800"}') }, "not-i-json");
  refused({ ...wire, body: btoa('{ "a": 1 }') }, "not-canonical");
});

Deno.test("the caller's check runs before the canonical-form check", async () => {
  const wire = { body: btoa('{ "a": 1 }'), sig: "0".repeat(128) };
  assert.throws(
    () =>
      decodeSigned(wire, {
        check: () => {
          throw new RangeError("mine");
        },
      }),
    RangeError,
  );
  const good = await signObject(signer, CONTEXT, { a: 1 });
  const decoded = decodeSigned(good, { check: (b) => ({ a: b.a as number }) });
  assert.equal(decoded.body.a, 1);
});

Deno.test("with refuse, refusals become the caller's error, and an unencodable body the encoder's", async () => {
  class Mine extends Error {}
  const wire = await signObject(signer, CONTEXT, { a: 1 });
  const refuse = (reason: SignedObjectErrorReason): never => {
    throw new Mine(reason);
  };
  assert.throws(
    () => decodeSigned({ ...wire, sig: "00" }, { refuse }),
    (e) => e instanceof Mine && e.message === "signature",
  );
  assert.throws(
    () => decodeSigned({ ...wire, body: btoa('{ "a": 1 }') }, { refuse }),
    (e) => e instanceof Mine && e.message === "not-canonical",
  );
  assert.throws(
    () => decodeSigned({ ...wire, body: btoa('{"a":"\\ud800"}') }, { refuse }),
    (e) => e instanceof TypeError,
  );
  assert.deepEqual(decodeSigned(wire, { refuse }).body, { a: 1 });
});

Deno.test("refusal messages name the format in every sentence", () => {
  const messages = refusalMessages("tombstone", 4096);
  assert.equal(
    messages.shape,
    'a tombstone must be {"body": "<base64>", "sig": "<hex>"}.',
  );
  assert.equal(
    messages["too-large"],
    "a tombstone is larger than 4096 characters.",
  );
  assert.equal(messages.base64, "a tombstone's body is not base64.");
  const scope = refusalMessages("scope statement", 10, "the");
  assert.equal(
    scope.shape,
    'a scope statement must be {"body": "<base64>", "sig": "<hex>"}.',
  );
  assert.equal(
    scope.signature,
    "the scope statement's signature is not 128 hex digits.",
  );
});
