import assert from "node:assert/strict";
import { fromHex, toHex } from "./hex.ts";

Deno.test("toHex encodes lowercase, two digits per byte", () => {
  assert.equal(toHex(new Uint8Array([])), "");
  assert.equal(toHex(new Uint8Array([0, 1, 15, 16, 171, 255])), "00010f10abff");
});

Deno.test("fromHex decodes either case and round trips", () => {
  assert.deepEqual(fromHex(""), new Uint8Array([]));
  assert.deepEqual(
    fromHex("00010f10ABff"),
    new Uint8Array([0, 1, 15, 16, 171, 255]),
  );
  const bytes = crypto.getRandomValues(new Uint8Array(64));
  assert.deepEqual(fromHex(toHex(bytes)), bytes);
});

Deno.test("fromHex rejects odd length and non-hex characters", () => {
  assert.throws(() => fromHex("abc"), /even number/);
  for (const bad of ["0g", " 0", "0 ", "0x00", "+1", "-1", "\u0660\u0660"]) {
    assert.throws(() => fromHex(bad), /0-9 and a-f/, JSON.stringify(bad));
  }
});
