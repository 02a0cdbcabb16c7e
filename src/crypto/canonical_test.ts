import assert from "node:assert/strict";
import { canonicalBytes, canonicalJson } from "./canonical.ts";
import { toHex } from "./hex.ts";

function fromIeee754(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

Deno.test("RFC 8785 section 3.2.2: sample with literals, numbers, strings", () => {
  const input = JSON.parse(`{
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
    "literals": [null, true, false]
  }`);
  assert.equal(
    canonicalJson(input),
    `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA'B\\"\\\\\\\\\\"/"}`,
  );
});

Deno.test("RFC 8785 section 3.2.3: member sorting by UTF-16 code units", () => {
  const input = JSON.parse(`{
    "\\u20ac": "Euro Sign",
    "\\r": "Carriage Return",
    "\\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\\ud83d\\ude00": "Emoji: Grinning Face",
    "\\u0080": "Control",
    "\\u00f6": "Latin Small Letter O With Diaeresis"
  }`);
  assert.equal(
    canonicalJson(input),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
      '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
      '"\ud83d\ude00":"Emoji: Grinning Face",' +
      '"\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
});

Deno.test("sorting is by UTF-16 code units, not code points", () => {
  // U+1F600 is encoded as D83D DE00, which sorts before U+FB33 although its
  // code point is larger.
  assert.equal(
    canonicalJson({ "\ufb33": 1, "\u{1f600}": 2, "b": 3, "B": 4, "": 5 }),
    '{"":5,"B":4,"b":3,"\u{1f600}":2,"\ufb33":1}',
  );
  // Integer-like keys are not special, unlike JS property order.
  assert.equal(
    canonicalJson({ "10": 1, "9": 2, "a": 3, "1": 4 }),
    '{"1":4,"10":1,"9":2,"a":3}',
  );
});

Deno.test("canonicalBytes is UTF-8", () => {
  assert.equal(
    toHex(canonicalBytes({ "€": "ö", "a": "\u{1f600}" })),
    // {"a":"😀","€":"ö"}
    "7b2261223a22f09f9880222c22e282ac223a22c3b6227d",
  );
});

Deno.test("RFC 8785 appendix B: number serialization", () => {
  const cases: [string, string][] = [
    ["0000000000000000", "0"],
    ["8000000000000000", "0"],
    ["0000000000000001", "5e-324"],
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"],
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"],
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"],
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["41b3de4355555557", "333333333.33333343"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"],
  ];
  for (const [bits, expected] of cases) {
    assert.equal(canonicalJson(fromIeee754(bits)), expected, bits);
  }
});

Deno.test("numbers: familiar cases", () => {
  assert.equal(canonicalJson(-0), "0");
  assert.equal(
    canonicalJson([1e21, 1e20, 0.000001, 1e-7, 4.5, -1.5e-9]),
    "[1e+21,100000000000000000000,0.000001,1e-7,4.5,-1.5e-9]",
  );
});

Deno.test("strings: minimal escaping", () => {
  assert.equal(
    canonicalJson('\u0000\u001f\b\t\n\f\r"\\/\u007f\u2028'),
    '"\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\/\u007f\u2028"',
  );
});

Deno.test("nested arrays and objects", () => {
  const value = {
    z: [[], [[1, [2, { b: null, a: [true, false] }]]], {}],
    a: { y: { d: "x", c: [] }, x: -0 },
  };
  assert.equal(
    canonicalJson(value),
    '{"a":{"x":0,"y":{"c":[],"d":"x"}},"z":[[],[[1,[2,{"a":[true,false],"b":null}]]],{}]}',
  );
  // Null-prototype objects are plain data too.
  const bare = Object.create(null);
  bare.k = 1;
  assert.equal(canonicalJson(bare), '{"k":1}');
  // The same object may appear twice as long as it is not its own ancestor.
  const shared = { s: 1 };
  assert.equal(
    canonicalJson([shared, { t: shared }]),
    '[{"s":1},{"t":{"s":1}}]',
  );
});

Deno.test("output does not depend on insertion order", () => {
  const a = { one: 1, two: { x: 1, y: 2 }, three: [3] };
  const b = { three: [3], two: { y: 2, x: 1 }, one: 1 };
  assert.equal(canonicalJson(a), canonicalJson(b));
});

Deno.test("unsupported values are rejected with the path and a hint", () => {
  const cases: [unknown, RegExp][] = [
    [NaN, /Cannot canonicalize \$: the number NaN has no JSON form\. Use/],
    [Infinity, /Infinity has no JSON form/],
    [{ a: [1, -Infinity] }, /\$\["a"\]\[1\]: the number -Infinity/],
    [undefined, /\$: the value is undefined\. Omit the member or use null/],
    [{ a: undefined }, /\$\["a"\]: the value is undefined/],
    [[1, undefined], /\$\[1\]: the value is undefined/],
    // deno-lint-ignore no-sparse-arrays
    [[1, , 3], /\$\[1\]: the value is undefined/],
    [10n, /bigint values have no exact JSON form/],
    [{ f: () => 1 }, /\$\["f"\]: a function is not data/],
    [Symbol("s"), /a symbol is not data/],
    [{ [Symbol("s")]: 1 }, /symbol-keyed members/],
    [new Date(0), /a Date is not a plain object/],
    [new Map(), /a Map is not a plain object/],
    [new Uint8Array(2), /a Uint8Array is not a plain object/],
    [{ toJSON: () => "x" }, /a function is not data/],
    ["\ud800", /lone UTF-16 surrogate/],
    [{ "\udc00": 1 }, /lone UTF-16 surrogate/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(() => canonicalJson(value), pattern);
    assert.throws(() => canonicalBytes(value), TypeError);
  }
});

Deno.test("cycles are rejected", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = { back: cyclic };
  assert.throws(
    () => canonicalJson(cyclic),
    /\$\["self"\]\["back"\]: the value refers back to itself/,
  );
  const list: unknown[] = [];
  list.push(list);
  assert.throws(() => canonicalJson(list), /refers back to itself/);
});
