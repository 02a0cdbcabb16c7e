import assert from "node:assert/strict";
import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import {
  mintLeave,
  mintRevocation,
  verifyLeave,
  verifyRevocation,
} from "./envelopes.ts";
import { projectId } from "./project_id.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  seedSigner,
  TokenError,
} from "./tokens.ts";

const founder = seedSigner(generateSeed());
const admin = seedSigner(generateSeed());
const member = seedSigner(generateSeed());
const sibling = seedSigner(generateSeed());

async function setup() {
  const id = await projectId(founder.publicKey, "notes");
  const root = await mintBootstrapToken(founder, "notes");
  const mid = await mintChildToken(founder, [root], {
    subject: admin.publicKey,
    role: "admin",
  });
  const leaf = await mintChildToken(admin, [root, mid], {
    subject: member.publicKey,
    role: "member",
  });
  const side = await mintChildToken(founder, [root], {
    subject: sibling.publicKey,
    role: "admin",
  });
  return { id, root, mid, leaf, side };
}

Deno.test("the founder and issuers in the chain may revoke; others may not", async () => {
  const { id, root, mid, leaf } = await setup();
  const chain = [root, mid, leaf];
  for (const signer of [founder, admin]) {
    const envelope = await mintRevocation(signer, {
      projectId: id,
      chain,
      reason: "lost laptop",
    });
    const verified = await verifyRevocation(envelope, { projectId: id });
    assert.equal(verified.tokenId, decodeToken(leaf).id);
    assert.equal(verified.reason, "lost laptop");
  }
  for (const signer of [member, sibling]) {
    await assert.rejects(
      mintRevocation(signer, { projectId: id, chain }),
      /only the founder or an issuer/,
    );
  }
  // A revocation signed by a sibling admin outside the chain is refused by
  // receivers too, even though its signature is valid.
  const bytes = canonicalBytes({
    v: 1,
    kind: "revoke",
    project_id: id,
    token_id: decodeToken(leaf).id,
    reason: "",
    issued_at: 1,
    signer: formatPublicKey(sibling.publicKey),
    chain,
  });
  const forged = {
    body: encodeBase64(bytes),
    sig: toHex(
      await sibling.sign("vigo-swarm/v1/gitback-envelope-revoke", bytes),
    ),
  };
  await assert.rejects(
    verifyRevocation(forged, { projectId: id }),
    /without authority/,
  );
});

Deno.test("tampered or misdirected revocations are rejected", async () => {
  const { id, root, mid, leaf } = await setup();
  const envelope = await mintRevocation(admin, {
    projectId: id,
    chain: [root, mid, leaf],
  });
  const flipped = {
    ...envelope,
    sig: (envelope.sig[0] === "a" ? "b" : "a") + envelope.sig.slice(1),
  };
  await assert.rejects(
    verifyRevocation(flipped, { projectId: id }),
    TokenError,
  );
  const other = await projectId(founder.publicKey, "other");
  await assert.rejects(
    verifyRevocation(envelope, { projectId: other }),
    /is for project/,
  );
  await assert.rejects(
    verifyRevocation({ body: "x" }, { projectId: id }),
    TokenError,
  );
  await assert.rejects(verifyRevocation(null, { projectId: id }), TokenError);
});

Deno.test("a leave is signed by its own subject", async () => {
  const { id, leaf } = await setup();
  const tokenId = decodeToken(leaf).id;
  const envelope = await mintLeave(member, { projectId: id, tokenId });
  const verified = await verifyLeave(envelope, { projectId: id });
  assert.equal(verified.tokenId, tokenId);
  const stolen = {
    body: envelope.body,
    sig: (await mintLeave(admin, { projectId: id, tokenId })).sig,
  };
  await assert.rejects(
    verifyLeave(stolen, { projectId: id }),
    /not signed by its subject/,
  );
  await assert.rejects(
    verifyLeave(envelope, { projectId: "0".repeat(64) }),
    /another project/,
  );
});
