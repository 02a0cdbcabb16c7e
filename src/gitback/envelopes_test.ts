import assert from "node:assert/strict";
import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import {
  envelopeSetDigest,
  leaveRetainedUntil,
  MAX_REASON_LENGTH,
  mintLeave,
  mintRevocation,
  RETENTION_S,
  revocationRetainedUntil,
  storedEnvelopeInfo,
  verifyLeave,
  verifyRevocation,
} from "./envelopes.ts";
import { projectId } from "./project_id.ts";
import {
  CLOCK_SKEW_S,
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  TokenError,
  verifyChain,
} from "./tokens.ts";
import { seedSigner } from "../crypto/signed_object.ts";

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
  // A lone surrogate parses as JSON but has no canonical form.
  await assert.rejects(
    verifyLeave({ body: btoa('{"v":"\\ud800"}'), sig: "00".repeat(64) }, {
      projectId: id,
    }),
    TokenError,
  );
});

Deno.test("a leave is signed by its own subject and carries its chain", async () => {
  const { id, root, mid, leaf } = await setup();
  const chain = [root, mid, leaf];
  const tokenId = decodeToken(leaf).id;
  const envelope = await mintLeave(member, { projectId: id, chain });
  const verified = await verifyLeave(envelope, { projectId: id });
  assert.equal(verified.tokenId, tokenId);
  assert.equal(verified.subject, formatPublicKey(member.publicKey));
  assert.equal(verified.founder, formatPublicKey(founder.publicKey));
  const stolen = {
    body: envelope.body,
    sig: toHex(
      await admin.sign(
        "vigo-swarm/v1/gitback-envelope-leave",
        Uint8Array.from(atob(envelope.body), (c) => c.charCodeAt(0)),
      ),
    ),
  };
  await assert.rejects(
    verifyLeave(stolen, { projectId: id }),
    /not signed by its subject/,
  );
  await assert.rejects(
    verifyLeave(envelope, { projectId: "0".repeat(64) }),
    /another project/,
  );
  // The format-1 call (a token id alone) is refused, saying what to pass.
  await assert.rejects(
    mintLeave(member, { projectId: id, tokenId }),
    /must carry the leaver's token chain/,
  );
  await assert.rejects(
    mintLeave(member, { projectId: id, tokenId: "0".repeat(64), chain }),
    /does not end at the token being left/,
  );
  // Nobody can mint a leave for a chain that is not theirs.
  await assert.rejects(
    mintLeave(sibling, { projectId: id, chain }),
    /another puddle/,
  );
});

/** Signs `body` as a LEAVE under `signer`, whatever it says. */
async function forgeLeave(
  signer: ReturnType<typeof seedSigner>,
  body: Record<string, unknown>,
) {
  const bytes = canonicalBytes(body);
  return {
    body: encodeBase64(bytes),
    sig: toHex(
      await signer.sign("vigo-swarm/v1/gitback-envelope-leave", bytes),
    ),
  };
}

Deno.test("a leave without a chain ending at its signer is refused", async () => {
  const { id, root, mid, leaf, side } = await setup();
  const stranger = seedSigner(generateSeed());
  const strangerKey = formatPublicKey(stranger.publicKey);
  const base = {
    kind: "leave",
    project_id: id,
    subject: strangerKey,
    token_id: decodeToken(leaf).id,
    issued_at: 1_700_000_000,
  };
  // Format 1: no chain at all.
  await assert.rejects(
    verifyLeave(await forgeLeave(stranger, { v: 1, ...base }), {
      projectId: id,
    }),
    /format 1, which carries no membership chain/,
  );
  // Format 2 with someone else's chain.
  await assert.rejects(
    verifyLeave(
      await forgeLeave(stranger, { v: 2, ...base, chain: [root, mid, leaf] }),
      { projectId: id },
    ),
    /no valid membership chain: the chain's last token was issued to another/,
  );
  // A chain of the signer's own making (a project it founded) is anchored
  // elsewhere.
  const own = await mintBootstrapToken(stranger, "notes");
  await assert.rejects(
    verifyLeave(
      await forgeLeave(stranger, {
        v: 2,
        ...base,
        token_id: decodeToken(own).id,
        chain: [own],
      }),
      { projectId: id },
    ),
    /no valid membership chain/,
  );
  // A real member's chain, but token_id names another token.
  await assert.rejects(
    verifyLeave(
      await forgeLeave(member, {
        v: 2,
        ...base,
        subject: formatPublicKey(member.publicKey),
        token_id: decodeToken(side).id,
        chain: [root, mid, leaf],
      }),
      { projectId: id },
    ),
    /does not end at the token it leaves/,
  );
  // A tampered link in the chain.
  const bad = {
    ...mid,
    sig: (mid.sig[0] === "a" ? "b" : "a") + mid.sig.slice(1),
  };
  await assert.rejects(
    verifyLeave(
      await forgeLeave(member, {
        v: 2,
        ...base,
        subject: formatPublicKey(member.publicKey),
        chain: [root, bad, leaf],
      }),
      { projectId: id },
    ),
    /no valid membership chain/,
  );
});

Deno.test("the envelope digest is SHA-256 of all names sorted together (test vector)", () => {
  const names = [
    `revokes/${"ab".repeat(32)}.json`,
    `leaves/${"01".repeat(32)}.json`,
    `leaves/${"ff".repeat(32)}.json`,
  ];
  // SHA-256 of "leaves/0101…01.json\nleaves/ff…ff.json\nrevokes/abab…ab.json".
  const vector =
    "cef80fb2dd9cd86efacf36bc049947ee4a9397e31a46e9c185352b43a9e6965d";
  assert.equal(envelopeSetDigest(names), vector);
  assert.equal(envelopeSetDigest([...names].reverse()), vector);
  assert.equal(
    envelopeSetDigest([]),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("a reason is limited in code points, not UTF-16 units", async () => {
  const { id, root, mid, leaf } = await setup();
  const chain = [root, mid, leaf];
  // 512 astral characters are 1024 UTF-16 units: allowed.
  const astral = "\u{1F511}".repeat(MAX_REASON_LENGTH);
  assert.equal(astral.length, 2 * MAX_REASON_LENGTH);
  const envelope = await mintRevocation(admin, {
    projectId: id,
    chain,
    reason: astral,
  });
  assert.equal(
    (await verifyRevocation(envelope, { projectId: id })).reason,
    astral,
  );
  await assert.rejects(
    mintRevocation(admin, {
      projectId: id,
      chain,
      reason: "x".repeat(MAX_REASON_LENGTH + 1),
    }),
    /at most 512 characters/,
  );
  const bytes = canonicalBytes({
    v: 1,
    kind: "revoke",
    project_id: id,
    token_id: decodeToken(leaf).id,
    reason: "\u{1F511}".repeat(MAX_REASON_LENGTH + 1),
    issued_at: 1,
    signer: formatPublicKey(admin.publicKey),
    chain,
  });
  const tooLong = {
    body: encodeBase64(bytes),
    sig: toHex(
      await admin.sign("vigo-swarm/v1/gitback-envelope-revoke", bytes),
    ),
  };
  await assert.rejects(
    verifyRevocation(tooLong, { projectId: id }),
    /missing fields/,
  );
});

Deno.test("a revocation or a LEAVE is kept while the token it names or a descendant could verify, then 90 days", async () => {
  const T = 1_800_000_000;
  const id = await projectId(founder.publicKey, "notes");
  const root = await mintBootstrapToken(founder, "notes", { now: T - 1000 });
  // An admin token expiring at T + 100, and a descendant of it (which may
  // not outlive it).
  const mid = await mintChildToken(founder, [root], {
    subject: admin.publicKey,
    role: "admin",
    expires: T + 100,
    now: T - 1000,
  });
  const leaf = await mintChildToken(admin, [root, mid], {
    subject: member.publicKey,
    role: "member",
    expires: T + 100,
    now: T - 1000,
  });
  const revocation = await mintRevocation(founder, {
    projectId: id,
    chain: [root, mid],
  });
  const verified = await verifyRevocation(revocation, { projectId: id });
  assert.equal(verified.tokenExpires, T + 100);
  const until = revocationRetainedUntil(verified.tokenExpires)!;
  assert.equal(until, T + 100 + CLOCK_SKEW_S + RETENTION_S);
  assert.equal(storedEnvelopeInfo(revocation, "revokes").retainedUntil, until);
  // While kept, the revocation refuses the token and its descendant…
  for (const chain of [[root, mid], [root, mid, leaf]]) {
    await assert.rejects(
      verifyChain(chain, {
        projectId: id,
        now: T,
        revoked: new Set([verified.tokenId]),
      }),
      /revoked/,
    );
    // …and from the moment it may be reaped, neither verifies anyway, at
    // any later time: reaping cannot revive them.
    for (const at of [until, until + 1, until + 10 * RETENTION_S]) {
      await assert.rejects(
        verifyChain(chain, { projectId: id, now: at }),
        /expired/,
      );
    }
    // The last moment they could verify is well inside retention.
    await verifyChain(chain, {
      projectId: id,
      now: T + 100 + CLOCK_SKEW_S - 1,
    });
  }
  // A token with no expiry can always verify: its revocation is never reaped.
  const forever = await mintChildToken(founder, [root], {
    subject: sibling.publicKey,
    role: "admin",
    now: T - 1000,
  });
  const revokeForever = await mintRevocation(founder, {
    projectId: id,
    chain: [root, forever],
  });
  const v = await verifyRevocation(revokeForever, { projectId: id });
  assert.equal(v.tokenExpires, null);
  assert.equal(revocationRetainedUntil(v.tokenExpires), null);
  assert.equal(
    storedEnvelopeInfo(revokeForever, "revokes").retainedUntil,
    null,
  );
  // A stored LEAVE refuses the left token like a revocation, so it is kept
  // by the same rule: while the left token could verify, then 90 days…
  const leave = await mintLeave(member, {
    projectId: id,
    chain: [root, mid, leaf],
    now: T,
  });
  const left = await verifyLeave(leave, { projectId: id });
  assert.equal(left.tokenExpires, T + 100);
  assert.equal(leaveRetainedUntil(left.tokenExpires), until);
  assert.deepEqual(storedEnvelopeInfo(leave, "leaves"), {
    signer: formatPublicKey(member.publicKey),
    founder: formatPublicKey(founder.publicKey),
    tokenId: decodeToken(leaf).id,
    retainedUntil: until,
  });
  // …and for ever when the left token never expires, however long ago it
  // was issued.
  const leaveForever = await mintLeave(sibling, {
    projectId: id,
    chain: [root, forever],
    now: T - 10 * RETENTION_S,
  });
  const leftForever = await verifyLeave(leaveForever, { projectId: id });
  assert.equal(leftForever.tokenExpires, null);
  assert.equal(leaveRetainedUntil(leftForever.tokenExpires), null);
  assert.equal(storedEnvelopeInfo(leaveForever, "leaves").retainedUntil, null);
});
