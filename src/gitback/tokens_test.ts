import assert from "node:assert/strict";
import { canonicalBytes } from "../crypto/canonical.ts";
import { generateSeed } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { signWithContext } from "../crypto/signed.ts";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import { projectId } from "./project_id.ts";
import {
  CLOCK_SKEW_S,
  decodeToken,
  MAX_CHAIN_LENGTH,
  mintBootstrapToken,
  mintChildToken,
  type SignedToken,
  type TokenBody,
  TokenError,
  verifyChain,
} from "./tokens.ts";
import { seedSigner } from "../crypto/signed_object.ts";

const NOW = 1_800_000_000;
const founderSeed = generateSeed();
const founder = seedSigner(founderSeed);
const adminSeed = generateSeed();
const admin = seedSigner(adminSeed);
const memberSeed = generateSeed();
const member = seedSigner(memberSeed);

async function buildChain() {
  const id = await projectId(founder.publicKey, "vigo-web");
  const root = await mintBootstrapToken(founder, "vigo-web", { now: NOW });
  const mid = await mintChildToken(founder, [root], {
    subject: admin.publicKey,
    role: "admin",
    expires: NOW + 86_400,
    now: NOW,
  });
  const leaf = await mintChildToken(admin, [root, mid], {
    subject: member.publicKey,
    role: "member",
    expires: NOW + 3_600,
    now: NOW,
  });
  return { id, chain: [root, mid, leaf] };
}

/** Re-signs an edited body with `seed`, as a forger holding that key would. */
function forge(body: TokenBody, seed: Uint8Array): SignedToken {
  const bytes = canonicalBytes(body);
  return {
    body: encodeBase64(bytes),
    sig: toHex(signWithContext(seed, "vigo-swarm/v1/gitback-token", bytes)),
  };
}

async function rejects(chain: unknown, id: string, code: string, extra = {}) {
  await assert.rejects(
    verifyChain(chain, { projectId: id, now: NOW, ...extra }),
    (error: unknown) => error instanceof TokenError && error.code === code,
    `expected ${code}`,
  );
}

Deno.test("a founder → admin → member chain verifies", async () => {
  const { id, chain } = await buildChain();
  const verified = await verifyChain(chain, {
    projectId: id,
    now: NOW,
    presenter: member.publicKey,
  });
  assert.equal(verified.role, "member");
  assert.equal(verified.handle, "vigo-web");
  assert.deepEqual(verified.founder, founder.publicKey);
  assert.equal(verified.ids.length, 3);
  assert.equal(verified.leaf.id, decodeToken(chain[2]).id);
  // Ids are of the body, never of the signature.
  assert.match(verified.leaf.id, /^[0-9a-f]{64}$/);
});

Deno.test("tampering with any body field of any link is rejected", async () => {
  const { id, chain } = await buildChain();
  const edits: [keyof TokenBody, unknown][] = [
    ["project_id", "0".repeat(64)],
    ["handle", "other"],
    ["issuer", "ed25519:" + "11".repeat(32)],
    ["subject", "ed25519:" + "22".repeat(32)],
    ["role", "admin"],
    ["not_before", NOW + 5],
    ["expires", NOW + 999_999],
    ["parent", "3".repeat(64)],
    ["nonce", "4".repeat(32)],
  ];
  for (let i = 0; i < chain.length; i++) {
    const original = decodeToken(chain[i]);
    for (const [field, value] of edits) {
      if (original.body[field] === value) continue;
      const body = { ...original.body, [field]: value } as TokenBody;
      const tampered = [...chain];
      // Keep the original signature: the edit alone must break the chain.
      tampered[i] = {
        body: encodeBase64(canonicalBytes(body)),
        sig: original.wire.sig,
      };
      await assert.rejects(
        verifyChain(tampered, { projectId: id, now: NOW }),
        TokenError,
        `link ${i} field ${field}`,
      );
    }
  }
});

Deno.test("tampering with any signature is rejected", async () => {
  const { id, chain } = await buildChain();
  for (let i = 0; i < chain.length; i++) {
    const tampered = [...chain];
    const sig = chain[i].sig;
    tampered[i] = {
      body: chain[i].body,
      sig: (sig[0] === "0" ? "1" : "0") + sig.slice(1),
    };
    await rejects(tampered, id, "bad-signature");
  }
});

Deno.test("non-canonical encodings and malformed tokens are rejected", async () => {
  const { id, chain } = await buildChain();
  const pretty = JSON.stringify(decodeToken(chain[0]).body, null, 1);
  const recoded = [{
    body: encodeBase64(new TextEncoder().encode(pretty)),
    sig: chain[0].sig,
  }, ...chain.slice(1)];
  await rejects(recoded, id, "malformed");
  await rejects([{ body: "!!", sig: chain[0].sig }], id, "malformed");
  await rejects([{ ...chain[0], extra: 1 }], id, "malformed");
  await rejects("not an array", id, "malformed");
  await rejects([], id, "malformed");
  const extraField = { ...decodeToken(chain[0]).body, admin: true };
  await rejects(
    [forge(extraField as unknown as TokenBody, founderSeed)],
    id,
    "malformed",
  );
});

Deno.test("chains over the length or byte cap are refused before any crypto", async () => {
  const { id, chain } = await buildChain();
  const long = Array.from({ length: MAX_CHAIN_LENGTH + 1 }, () => chain[0]);
  await rejects(long, id, "too-long");
  const fat = [{ body: chain[0].body + "A".repeat(20_000), sig: chain[0].sig }];
  await rejects(fat, id, "too-large");
});

Deno.test("a chain for another project or not anchored to the founder is refused", async () => {
  const { chain } = await buildChain();
  const other = await projectId(founder.publicKey, "other");
  await rejects(chain, other, "not-anchored");
  // A stranger's bootstrap for the same handle makes another project id.
  const stranger = await mintBootstrapToken(admin, "vigo-web", { now: NOW });
  const { id } = await buildChain();
  await rejects([stranger, ...chain.slice(1)], id, "not-anchored");
});

Deno.test("revoked links, tombstones and the presenter are enforced", async () => {
  const { id, chain } = await buildChain();
  for (const token of chain) {
    await rejects(chain, id, "revoked", {
      revoked: new Set([decodeToken(token).id]),
    });
  }
  await rejects(chain, id, "tombstoned", { tombstoned: true });
  await rejects(chain, id, "not-presenter", { presenter: admin.publicKey });
});

Deno.test("validity windows allow 60 s of clock skew and no more", async () => {
  const { id, chain } = await buildChain();
  const leafExpires = NOW + 3_600;
  await verifyChain(chain, {
    projectId: id,
    now: leafExpires + CLOCK_SKEW_S - 1,
  });
  await rejects(chain, id, "expired", { now: leafExpires + CLOCK_SKEW_S + 1 });
  await verifyChain(chain, { projectId: id, now: NOW - CLOCK_SKEW_S + 1 });
  await rejects(chain, id, "not-yet-valid", { now: NOW - CLOCK_SKEW_S - 1 });
});

Deno.test("a child may not outrank or outlive its parent, at mint or at verify", async () => {
  const { id, chain } = await buildChain();
  await assert.rejects(
    mintChildToken(admin, chain.slice(0, 2), {
      subject: member.publicKey,
      role: "member",
      expires: null,
      now: NOW,
    }),
    /outlive/,
  );
  await assert.rejects(
    mintChildToken(member, chain, {
      subject: admin.publicKey,
      role: "member",
      expires: NOW + 10,
      now: NOW,
    }),
    /member token cannot mint/,
  );
  await assert.rejects(
    mintChildToken(founder, chain.slice(0, 2), {
      subject: member.publicKey,
      role: "member",
      now: NOW,
    }),
    /only the subject of the parent/,
  );
  // Forged links that bypass the mint checks are caught by verification.
  const mid = decodeToken(chain[1]);
  const leaf = decodeToken(chain[2]).body;
  const outlives = forge({ ...leaf, expires: NOW + 10 * 86_400 }, adminSeed);
  await rejects([chain[0], chain[1], outlives], id, "outlives-parent");
  const underMember = forge({
    ...leaf,
    parent: decodeToken(chain[2]).id,
    issuer: leaf.subject,
  }, memberSeed);
  await rejects([...chain, underMember], id, "outranks-parent");
  const memberMid = forge({ ...mid.body, role: "member" }, founderSeed);
  const adminLeaf = forge({
    ...leaf,
    parent: decodeToken(memberMid).id,
    role: "admin",
  }, adminSeed);
  await rejects([chain[0], memberMid, adminLeaf], id, "outranks-parent");
});

Deno.test("decodeToken reads back what mint wrote", async () => {
  const token = await mintBootstrapToken(founder, "x", { now: NOW });
  const decoded = decodeToken(token);
  assert.equal(decoded.body.role, "admin");
  assert.equal(decoded.body.parent, null);
  assert.deepEqual(decoded.bodyBytes, decodeBase64(token.body));
});
