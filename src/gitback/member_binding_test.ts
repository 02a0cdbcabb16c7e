import assert from "node:assert/strict";
import { canonicalBytes } from "../crypto/canonical.ts";
import {
  formatPublicKey,
  generateSeed,
  publicKeyFromSeed,
} from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS, signWithContext } from "../crypto/signed.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import {
  BindingError,
  MAX_BINDING_BYTES,
  memberBindingBody,
  memberBindingBytes,
  memberBindingWire,
  verifyMemberBinding,
} from "./member_binding.ts";

const seed = generateSeed();
const member = formatPublicKey(publicKeyFromSeed(seed));
const NOW = 1_700_000_000;
const body = memberBindingBody({ member, envoy: "a.fleet", now: NOW });
const expected = { member, envoy: "a.fleet", now: NOW };

function signed(bytes: Uint8Array) {
  return {
    body: encodeBase64(bytes),
    sig: toHex(signWithContext(seed, SIGN_CONTEXTS.puddleEnvoyBinding, bytes)),
  };
}

function refused(wire: unknown, pattern: RegExp, at = expected): void {
  assert.throws(
    () => verifyMemberBinding(wire, at),
    (e) => e instanceof BindingError && pattern.test(e.message),
  );
}

Deno.test("a member binding verifies for its member and envoy", () => {
  const wire = signed(memberBindingBytes(body));
  assert.deepEqual(
    memberBindingWire(
      body,
      signWithContext(
        seed,
        SIGN_CONTEXTS.puddleEnvoyBinding,
        memberBindingBytes(body),
      ),
    ),
    wire,
  );
  assert.deepEqual(verifyMemberBinding(wire, expected), body);
});

Deno.test("a member binding is refused with a message for each defect", () => {
  const wire = signed(memberBindingBytes(body));
  const shape = /a binding must be/;
  refused(null, shape);
  refused({ ...wire, extra: 1 }, shape);
  refused({ ...wire, sig: "00" }, shape);
  refused({ ...wire, body: "A".repeat(MAX_BINDING_BYTES + 4) }, shape);
  refused({ ...wire, body: wire.body + "!" }, /not base64/);
  refused(
    { ...wire, body: encodeBase64(new Uint8Array([0xff])) },
    /UTF-8 JSON/,
  );
  refused({ ...wire, body: btoa("[]") }, /malformed/);
  refused(signed(canonicalBytes({ ...body, v: 2 })), /malformed/);
  const spaced = new TextEncoder().encode(JSON.stringify(body, null, 1));
  refused(signed(spaced), /canonical form/);
  refused(wire, /another member/, {
    ...expected,
    member: formatPublicKey(publicKeyFromSeed(generateSeed())),
  });
  refused(wire, /not this envoy/, { ...expected, envoy: "b.fleet" });
  refused(wire, /not valid now/, { ...expected, now: body.expires + 61 });
  refused({ ...wire, sig: "0".repeat(128) }, /not signed by its member/);
  const other = { ...body, envoy: "x" };
  refused(
    { body: encodeBase64(memberBindingBytes(other)), sig: wire.sig },
    /not signed by its member/,
    { ...expected, envoy: "x" },
  );
});
