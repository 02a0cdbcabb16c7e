import assert from "node:assert/strict";
import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS, signWithContext } from "../crypto/signed.ts";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import { projectId } from "./project_id.ts";
import {
  checkScopeStatement,
  decodeScopeHeader,
  encodeScopeHeader,
  MAX_SCOPE_STATEMENT_BYTES,
  scopeFromStatement,
  ScopeStatementError,
  signScopeStatement,
  verifyScopeStatement,
  verifyScopeStatementBody,
} from "./scope_statement.ts";
import { seedSigner } from "../crypto/signed_object.ts";

const founderSeed = generateSeed();
const founder = seedSigner(founderSeed);
const otherSeed = generateSeed();
const other = seedSigner(otherSeed);
const ID = await projectId(founder.publicKey, "work");

/** `body` signed under the scope context by `seed`, as bytes given. */
function wireOf(
  seed: Uint8Array,
  bytes: Uint8Array,
): { body: string; sig: string } {
  return {
    body: encodeBase64(bytes),
    sig: toHex(signWithContext(seed, SIGN_CONTEXTS.gitbackScope, bytes)),
  };
}

function bodyOf(wire: { body: string }): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(decodeBase64(wire.body)));
}

function refused(wire: unknown, projectIdAsked: string, pattern: RegExp) {
  assert.throws(
    () => verifyScopeStatement(wire, projectIdAsked),
    (error: Error) =>
      error instanceof ScopeStatementError && pattern.test(error.message),
  );
  assert.equal(checkScopeStatement(wire, projectIdAsked), null);
  assert.equal(scopeFromStatement(wire, projectIdAsked), "members-only");
}

Deno.test("a founder's statement verifies and says its scope", async () => {
  for (const scope of ["swarm-wide", "members-only"] as const) {
    const wire = await signScopeStatement(founder, {
      projectId: ID,
      handle: "work",
      scope,
      now: 1_700_000_000,
    });
    assert.deepEqual(Object.keys(wire).sort(), ["body", "sig"]);
    assert.equal(verifyScopeStatement(wire, ID), scope);
    assert.deepEqual(verifyScopeStatementBody(wire, ID), {
      v: 1,
      kind: "gitback-scope",
      project_id: ID,
      handle: "work",
      founder: formatPublicKey(founder.publicKey),
      scope,
      at: 1_700_000_000,
    });
    assert.equal(scopeFromStatement(wire, ID), scope);
    assert.deepEqual(checkScopeStatement(wire, ID)?.wire, wire);
    // Through a header and back.
    assert.deepEqual(decodeScopeHeader(encodeScopeHeader(wire)), wire);
    assert.equal(
      verifyScopeStatement(decodeScopeHeader(encodeScopeHeader(wire)), ID),
      scope,
    );
  }
});

Deno.test("only the founder can sign a project's scope", async () => {
  await assert.rejects(
    signScopeStatement(other, {
      projectId: ID,
      handle: "work",
      scope: "swarm-wide",
    }),
    ScopeStatementError,
  );
});

Deno.test("an altered body does not verify", async () => {
  const wire = await signScopeStatement(founder, {
    projectId: ID,
    handle: "work",
    scope: "members-only",
  });
  const body = bodyOf(wire);
  const altered = {
    body: encodeBase64(canonicalBytes({ ...body, scope: "swarm-wide" })),
    sig: wire.sig,
  };
  refused(altered, ID, /not signed by the project's founder/);
  // Another signature over the same body.
  const sig = wire.sig.slice(0, 127) + (wire.sig[127] === "0" ? "1" : "0");
  refused({ body: wire.body, sig }, ID, /not signed/);
});

Deno.test("a statement signed by a non-founder does not verify", async () => {
  // In the founder's name, signed by another key.
  const wire = await signScopeStatement(founder, {
    projectId: ID,
    handle: "work",
    scope: "members-only",
  });
  const body = bodyOf(wire);
  const forged = wireOf(
    otherSeed,
    canonicalBytes({ ...body, scope: "swarm-wide" }),
  );
  refused(forged, ID, /not signed by the project's founder/);
  // In its own name: its key and the handle do not make the project id.
  const own = wireOf(
    otherSeed,
    canonicalBytes({
      ...body,
      founder: formatPublicKey(other.publicKey),
      scope: "swarm-wide",
    }),
  );
  refused(own, ID, /do not make this project id/);
});

Deno.test("a statement for another project, or with another handle, does not verify", async () => {
  const elsewhere = await projectId(founder.publicKey, "elsewhere");
  const wire = await signScopeStatement(founder, {
    projectId: elsewhere,
    handle: "elsewhere",
    scope: "swarm-wide",
  });
  assert.equal(verifyScopeStatement(wire, elsewhere), "swarm-wide");
  refused(wire, ID, /another project/);
  // The right project id with a handle that does not make it.
  const body = bodyOf(wire);
  const renamed = wireOf(
    founderSeed,
    canonicalBytes({ ...body, project_id: ID }),
  );
  refused(renamed, ID, /do not make this project id/);
});

Deno.test("a body that is not canonical or not well formed does not verify", async () => {
  const wire = await signScopeStatement(founder, {
    projectId: ID,
    handle: "work",
    scope: "swarm-wide",
  });
  const body = bodyOf(wire);
  const encoder = new TextEncoder();
  // The same members, signed by the founder, but with whitespace, or in
  // another order: one statement has one byte form.
  refused(
    wireOf(founderSeed, encoder.encode(JSON.stringify(body, null, 1))),
    ID,
    /canonical/,
  );
  const reordered = Object.fromEntries(Object.entries(body).reverse());
  refused(
    wireOf(founderSeed, encoder.encode(JSON.stringify(reordered))),
    ID,
    /canonical/,
  );
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...body, extra: 1 }, /fields/],
    [{ ...body, v: 2 }, /malformed/],
    [{ ...body, kind: "gitback-refs" }, /malformed/],
    [{ ...body, scope: "everyone" }, /malformed/],
    [{ ...body, at: -1 }, /malformed/],
    [
      {
        ...body,
        founder: `ed25519:${String(body.founder).slice(8).toUpperCase()}`,
      },
      /canonical/,
    ],
  ];
  for (const [value, pattern] of cases) {
    refused(wireOf(founderSeed, canonicalBytes(value)), ID, pattern);
  }
  // Refused with an extra member even once the clean form verified.
  assert.equal(scopeFromStatement(wire, ID), "swarm-wide");
  refused({ ...wire, extra: true }, ID, /must be/);
  refused({ body: wire.body }, ID, /must be/);
  refused({ body: "%%%", sig: wire.sig }, ID, /base64/);
  refused({ body: wire.body, sig: "zz" }, ID, /128 hex/);
  refused("swarm-wide", ID, /must be/);
  refused(null, ID, /must be/);
  refused([wire.body, wire.sig], ID, /must be/);
});

Deno.test("an oversized statement is refused before anything is decoded", async () => {
  const wire = await signScopeStatement(founder, {
    projectId: ID,
    handle: "work",
    scope: "swarm-wide",
  });
  const body = bodyOf(wire);
  // A canonical body, signed by the founder, padded past the bound.
  const big = wireOf(
    founderSeed,
    canonicalBytes({ ...body, pad: "x".repeat(MAX_SCOPE_STATEMENT_BYTES) }),
  );
  assert.ok(big.body.length > MAX_SCOPE_STATEMENT_BYTES);
  refused(big, ID, /larger than/);
  // Headers: a plain scope, junk or an oversized value carry no statement.
  assert.equal(decodeScopeHeader("swarm-wide"), null);
  assert.equal(decodeScopeHeader(undefined), null);
  assert.equal(decodeScopeHeader(""), null);
  assert.equal(decodeScopeHeader("A".repeat(4096)), null);
  assert.equal(
    scopeFromStatement(decodeScopeHeader("swarm-wide"), ID),
    "members-only",
  );
});
