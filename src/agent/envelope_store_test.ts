import assert from "node:assert/strict";
import { generateSeed } from "../crypto/ed25519.ts";
import {
  mintLeave,
  mintRevocation,
  RETENTION_S,
} from "../gitback/envelopes.ts";
import { projectId as makeProjectId } from "../gitback/project_id.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import {
  CLOCK_SKEW_S,
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  type SignedToken,
} from "../gitback/tokens.ts";
import { type AgentConfig, loadAgentConfig } from "../envoy/config.ts";
import {
  acceptEnvelope,
  EnvelopeCapError,
  MAX_LEAVES_PER_PROJECT,
  MAX_LEAVES_PER_SIGNER,
  MAX_REVOKES_PER_PROJECT,
  MAX_REVOKES_PER_SIGNER,
  reapEnvelopes,
  storedCount,
} from "./envelope_store.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { systemPathsUnder } from "../platform/paths.ts";

async function withStore(fn: (config: AgentConfig) => Promise<void>) {
  const root = Deno.makeTempDirSync({ prefix: "vigo-store-" });
  try {
    const paths = systemPathsUnder(root);
    Deno.mkdirSync(paths.etc, { recursive: true });
    Deno.writeTextFileSync(`${paths.etc}/agent.yaml`, "hostname: envoy-a\n");
    await fn(loadAgentConfig(paths));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

const T = 1_800_000_000;

async function project(founder: Signer) {
  const id = await makeProjectId(founder.publicKey, "notes");
  const root = await mintBootstrapToken(founder, "notes", { now: T - 1000 });
  return { id, root };
}

async function child(
  issuer: Signer,
  parent: SignedToken[],
  subject: Signer,
  role: "admin" | "member",
  expires: number | null = null,
): Promise<SignedToken> {
  return await mintChildToken(issuer, parent, {
    subject: subject.publicKey,
    role,
    expires,
    now: T - 1000,
  });
}

Deno.test("stored LEAVEs are capped per signer and per project", async () => {
  await withStore(async (config) => {
    const founder = seedSigner(generateSeed());
    const { id, root } = await project(founder);
    // One member leaving again and again: only the first few are kept.
    const one = seedSigner(generateSeed());
    const oneChain = [root, await child(founder, [root], one, "member")];
    for (let i = 0; i < MAX_LEAVES_PER_SIGNER; i++) {
      const leave = await mintLeave(one, {
        projectId: id,
        chain: oneChain,
        now: T + i,
      });
      assert.equal(await acceptEnvelope(config, id, "leaves", leave, T), true);
      // Idempotent: the same envelope again is not new and not refused.
      assert.equal(await acceptEnvelope(config, id, "leaves", leave, T), false);
    }
    await assert.rejects(
      acceptEnvelope(
        config,
        id,
        "leaves",
        await mintLeave(one, { projectId: id, chain: oneChain, now: T + 99 }),
        T,
      ),
      (error) =>
        error instanceof EnvelopeCapError &&
        /from one signer/.test(error.message),
    );
    // Many members the founder minted: the project cap holds.
    let refused = 0;
    for (let i = 0; i < MAX_LEAVES_PER_PROJECT + 8; i++) {
      const key = seedSigner(generateSeed());
      const chain = [root, await child(founder, [root], key, "member")];
      try {
        await acceptEnvelope(
          config,
          id,
          "leaves",
          await mintLeave(key, { projectId: id, chain, now: T }),
          T,
        );
      } catch (error) {
        assert.ok(error instanceof EnvelopeCapError);
        assert.match(error.message, /the most this envoy keeps/);
        refused++;
      }
    }
    assert.equal(storedCount(config.paths, id).leaves, MAX_LEAVES_PER_PROJECT);
    assert.equal(refused, MAX_LEAVES_PER_SIGNER + 8);
  });
});

Deno.test("stored REVOKEs are capped per signer and per project, never for the founder", async () => {
  await withStore(async (config) => {
    const founder = seedSigner(generateSeed());
    const { id, root } = await project(founder);
    // A rogue admin mints sub-admins, each revoking as many tokens as it may.
    const rogue = seedSigner(generateSeed());
    const rogueToken = await child(founder, [root], rogue, "admin");
    const rogueChain = [root, rogueToken];
    let stored = 0;
    let overSigner = 0;
    let overProject = 0;
    const signers =
      Math.ceil(MAX_REVOKES_PER_PROJECT / MAX_REVOKES_PER_SIGNER) +
      1;
    for (let s = 0; s < signers; s++) {
      const sub = seedSigner(generateSeed());
      const subChain = [
        ...rogueChain,
        await child(rogue, rogueChain, sub, "admin"),
      ];
      for (let i = 0; i < MAX_REVOKES_PER_SIGNER + 1; i++) {
        const victim = await child(
          sub,
          subChain,
          seedSigner(generateSeed()),
          "member",
        );
        try {
          await acceptEnvelope(
            config,
            id,
            "revokes",
            await mintRevocation(sub, {
              projectId: id,
              chain: [...subChain, victim],
            }),
            T,
          );
          stored++;
        } catch (error) {
          assert.ok(error instanceof EnvelopeCapError);
          if (/from one signer/.test(error.message)) overSigner++;
          else overProject++;
        }
      }
    }
    assert.equal(stored, MAX_REVOKES_PER_PROJECT);
    assert.equal(overSigner, signers - 1);
    assert.ok(overProject > 0);
    assert.equal(
      storedCount(config.paths, id).revokes,
      MAX_REVOKES_PER_PROJECT,
    );
    // The project is full, yet the founder can still revoke the rogue admin.
    const revokeRogue = await mintRevocation(founder, {
      projectId: id,
      chain: rogueChain,
    });
    assert.equal(
      await acceptEnvelope(config, id, "revokes", revokeRogue, T),
      true,
    );
    assert.ok(
      revokedTokenIds(config.paths, id).has(decodeToken(rogueToken).id),
    );
  });
});

Deno.test("reaping keeps a revocation or a LEAVE while its token could verify, then 90 days, and never takes one back", async () => {
  await withStore(async (config) => {
    const founder = seedSigner(generateSeed());
    const { id, root } = await project(founder);
    const expiring = await child(
      founder,
      [root],
      seedSigner(generateSeed()),
      "member",
      T + 100,
    );
    const forever = await child(
      founder,
      [root],
      seedSigner(generateSeed()),
      "member",
    );
    // Two members leave: one whose token expires with `expiring`, one
    // whose token never expires.
    const leaver = seedSigner(generateSeed());
    const leaverToken = await child(founder, [root], leaver, "member", T + 100);
    const stayer = seedSigner(generateSeed());
    const stayerToken = await child(founder, [root], stayer, "member");
    const revokeExpiring = await mintRevocation(founder, {
      projectId: id,
      chain: [root, expiring],
    });
    const revokeForever = await mintRevocation(founder, {
      projectId: id,
      chain: [root, forever],
    });
    const leave = await mintLeave(leaver, {
      projectId: id,
      chain: [root, leaverToken],
      now: T,
    });
    const leaveForever = await mintLeave(stayer, {
      projectId: id,
      chain: [root, stayerToken],
      now: T,
    });
    for (
      const [kind, envelope] of [
        ["revokes", revokeExpiring],
        ["revokes", revokeForever],
        ["leaves", leave],
        ["leaves", leaveForever],
      ] as const
    ) {
      assert.equal(await acceptEnvelope(config, id, kind, envelope, T), true);
    }
    const expiringId = decodeToken(expiring).id;
    const foreverId = decodeToken(forever).id;
    const leaverId = decodeToken(leaverToken).id;
    const stayerId = decodeToken(stayerToken).id;
    const until = T + 100 + CLOCK_SKEW_S + RETENTION_S;

    // Long after the tokens expired, but within retention: everything kept,
    // the LEAVEs too (90 days after they were issued is long past).
    assert.equal(reapEnvelopes(config.paths, id, until - 1), 0);
    assert.deepEqual(
      revokedTokenIds(config.paths, id),
      new Set([expiringId, foreverId, leaverId, stayerId]),
    );
    // Retention over: what names the expiring tokens goes; what names the
    // tokens with no expiry stays, however late.
    assert.equal(reapEnvelopes(config.paths, id, until), 2);
    assert.deepEqual(
      revokedTokenIds(config.paths, id),
      new Set([foreverId, stayerId]),
    );
    assert.equal(reapEnvelopes(config.paths, id, T + 100 * 365 * 86_400), 0);
    assert.deepEqual(
      revokedTokenIds(config.paths, id),
      new Set([foreverId, stayerId]),
    );

    // A peer that has not reaped yet offers them again: not taken back.
    assert.equal(
      await acceptEnvelope(config, id, "revokes", revokeExpiring, until),
      false,
    );
    assert.equal(
      await acceptEnvelope(config, id, "leaves", leave, until),
      false,
    );
    assert.deepEqual(storedCount(config.paths, id), { revokes: 1, leaves: 1 });
  });
});

Deno.test("reaping removes format-1 LEAVEs stored before chains were required", async () => {
  await withStore(async (config) => {
    const founder = seedSigner(generateSeed());
    const { id } = await project(founder);
    const dir = `${config.paths.varLib}/swarm/gitback/envelopes/${id}/leaves`;
    Deno.mkdirSync(dir, { recursive: true });
    const body = btoa(
      JSON.stringify({
        issued_at: T,
        kind: "leave",
        project_id: id,
        subject: "ed25519:" + "00".repeat(32),
        token_id: "11".repeat(32),
        v: 1,
      }),
    );
    Deno.writeTextFileSync(
      `${dir}/${"22".repeat(32)}.json`,
      JSON.stringify({ body, sig: "00".repeat(64) }),
    );
    assert.equal(storedCount(config.paths, id).leaves, 1);
    assert.equal(reapEnvelopes(config.paths, id, T), 1);
    assert.equal(storedCount(config.paths, id).leaves, 0);
  });
});
