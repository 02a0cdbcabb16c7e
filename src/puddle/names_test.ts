import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import {
  readNameClaim,
  readNameMap,
  resolveName,
  signNameClaim,
  validateName,
  verifyNameClaim,
  writeNameClaim,
} from "./names.ts";

const key = () => seedSigner(generateSeed());

Deno.test("names follow the grammar", () => {
  for (const good of ["dan", "ann-b", "x1", "a".repeat(32)]) validateName(good);
  for (
    const bad of [
      "",
      "d",
      "Dan",
      "1dan",
      "dan-",
      "-dan",
      "dan.b",
      "dan b",
      "a".repeat(33),
      "ab12".repeat(16),
    ]
  ) {
    assert.throws(() => validateName(bad), /not a valid name/, bad);
  }
});

Deno.test("a claim verifies for the key it names, and nothing else does", async () => {
  const dan = key();
  const claim = verifyNameClaim(await signNameClaim(dan, "dan"));
  assert.equal(claim.name, "dan");
  assert.equal(claim.key, formatPublicKey(dan.publicKey));

  // Signed by another key than the one it names.
  const mallory = key();
  const lying: Signer = { publicKey: dan.publicKey, sign: mallory.sign };
  const lyingWire = await signNameClaim(lying, "dan");
  assert.throws(
    () => verifyNameClaim(lyingWire),
    /not signed by the key it names/,
  );
  // A body changed after signing.
  const wire = await signNameClaim(dan, "dan");
  const body = JSON.parse(atob(wire.body));
  body.name = "ann";
  const tampered = {
    body: encodeBase64(new TextEncoder().encode(JSON.stringify(body))),
    sig: wire.sig,
  };
  assert.throws(
    () => verifyNameClaim(tampered),
    /not signed|canonical|signed object/,
  );
});

Deno.test("a claim file round-trips, 0644, and a bad one reads as none", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const dan = key();
    writeNameClaim(dir, await signNameClaim(dan, "dan"));
    assert.equal(Deno.statSync(`${dir}/name-claim.json`).mode! & 0o777, 0o644);
    assert.equal(readNameClaim(dir)?.name, "dan");
    Deno.writeTextFileSync(`${dir}/name-claim.json`, "{}");
    assert.equal(readNameClaim(dir), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("names resolve through the map, ambiguity is an error, the own claim is the fallback", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const [dan, ann, eve] = [key(), key(), key()].map((k) =>
      formatPublicKey(k.publicKey)
    );
    Deno.writeTextFileSync(
      `${dir}/names.json`,
      JSON.stringify({
        version: 1,
        names: { dan: [dan], twin: [ann, eve], "Bad Name": [dan], bad: ["x"] },
      }),
    );
    const map = readNameMap(`${dir}/names.json`);
    assert.deepEqual([...map.keys()].sort(), ["dan", "twin"]);
    assert.equal(resolveName("dan", map, null), dan);
    assert.throws(
      () => resolveName("twin", map, null),
      /claimed by 2 puddles/,
    );
    assert.throws(() => resolveName("zed", map, null), /no puddle claims/);
    const own = verifyNameClaim(await signNameClaim(key(), "zed"));
    assert.equal(resolveName("zed", map, own), own.key);
    assert.equal(readNameMap(`${dir}/missing.json`).size, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
