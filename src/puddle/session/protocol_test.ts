import assert from "node:assert/strict";
import { LineSplitter, MAX_LINE_BYTES, parseRequest } from "./protocol.ts";

/** What an oversized line is refused with (a LineTooLongError). */
const TOO_LONG = /line longer than 65536 bytes/;

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const line = (length: number, fill = 0x61) => {
  const bytes = new Uint8Array(length + 1).fill(fill);
  bytes[length] = 0x0a;
  return bytes;
};

Deno.test("LineSplitter joins lines across chunks and keeps the remainder", () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push(new TextEncoder().encode('{"op":')), []);
  const lines = splitter.push(
    new TextEncoder().encode('"STATUS"}\n{"op":"PUBKEY"}\n{"op"'),
  );
  assert.deepEqual(lines.map(text), ['{"op":"STATUS"}', '{"op":"PUBKEY"}']);
  assert.deepEqual(
    splitter.push(new TextEncoder().encode(':"LOCK"}\n')).map(text),
    ['{"op":"LOCK"}'],
  );
});

Deno.test("LineSplitter's lines do not alias the caller's read buffer", () => {
  const splitter = new LineSplitter();
  const buffer = new TextEncoder().encode("abc\n");
  const [first] = splitter.push(buffer);
  buffer.fill(0x7a);
  assert.equal(text(first), "abc");
});

Deno.test("a line of exactly MAX_LINE_BYTES passes, complete or in pieces", () => {
  assert.equal(
    new LineSplitter().push(line(MAX_LINE_BYTES))[0].length,
    MAX_LINE_BYTES,
  );
  const splitter = new LineSplitter();
  const whole = line(MAX_LINE_BYTES);
  assert.deepEqual(splitter.push(whole.subarray(0, 1000)), []);
  const [done] = splitter.push(whole.subarray(1000));
  assert.equal(done.length, MAX_LINE_BYTES);
});

Deno.test("a complete line over MAX_LINE_BYTES is refused, even in one chunk", () => {
  // The 64 KiB cap once applied only to the unfinished remainder, so a
  // complete 70 KiB line arriving in one chunk went through.
  assert.throws(
    () => new LineSplitter().push(line(70 * 1024)),
    TOO_LONG,
  );
  assert.throws(
    () => new LineSplitter().push(line(MAX_LINE_BYTES + 1)),
    TOO_LONG,
  );
  // Behind a short line in the same chunk, too.
  const chunk = new Uint8Array([...line(3), ...line(MAX_LINE_BYTES + 1)]);
  assert.throws(() => new LineSplitter().push(chunk), TOO_LONG);
});

Deno.test("a complete oversized line split over chunks is refused", () => {
  const splitter = new LineSplitter();
  const big = line(MAX_LINE_BYTES + 10);
  splitter.push(big.subarray(0, MAX_LINE_BYTES - 5));
  assert.throws(
    () => splitter.push(big.subarray(MAX_LINE_BYTES - 5)),
    TOO_LONG,
  );
});

Deno.test("an unfinished line is refused once it outgrows MAX_LINE_BYTES", () => {
  const splitter = new LineSplitter();
  splitter.push(new Uint8Array(MAX_LINE_BYTES).fill(0x61));
  assert.throws(() => splitter.push(new Uint8Array([0x61])), TOO_LONG);
});

Deno.test("parseRequest accepts the four ops and explains the rest", () => {
  assert.deepEqual(parseRequest('{"op":"STATUS"}'), { op: "STATUS" });
  assert.deepEqual(parseRequest('{"op":"SIGN","context":"c","payload":"p"}'), {
    op: "SIGN",
    context: "c",
    payload: "p",
  });
  assert.ok("error" in parseRequest("{"));
  assert.ok("error" in parseRequest("[]"));
  assert.ok("error" in parseRequest('{"op":"SIGN","context":1,"payload":""}'));
  assert.ok("error" in parseRequest('{"op":"NOPE"}'));
});
