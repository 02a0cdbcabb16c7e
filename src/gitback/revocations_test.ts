import assert from "node:assert/strict";
import { generateSeed } from "../crypto/ed25519.ts";
import type { SystemPaths } from "../platform/paths.ts";
import {
  mintLeave,
  mintRevocation,
  type SignedEnvelope,
  verifyLeave,
} from "./envelopes.ts";
import { projectId as makeProjectId } from "./project_id.ts";
import { envelopesDir } from "./repo.ts";
import { leftTokenIds, revokedTokenIds } from "./revocations.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  type SignedToken,
  TokenError,
  verifyChain,
} from "./tokens.ts";
import { seedSigner } from "../crypto/signed_object.ts";
import { systemPathsUnder } from "../platform/paths.ts";

function tempPaths(): SystemPaths {
  const root = Deno.makeTempDirSync({ prefix: "vigo-revocations-" });
  return systemPathsUnder(root);
}

/** Stores an envelope as the agent's store does: `{body, sig}` under `name`. */
function store(
  paths: SystemPaths,
  projectId: string,
  kind: "revokes" | "leaves",
  name: string,
  envelope: SignedEnvelope,
): string {
  const dir = envelopesDir(paths, projectId, kind);
  Deno.mkdirSync(dir, { recursive: true });
  const path = `${dir}/${name}.json`;
  Deno.writeTextFileSync(
    path,
    JSON.stringify({ body: envelope.body, sig: envelope.sig }) + "\n",
  );
  return path;
}

/** The error `verifyChain` throws, or null when the chain verifies. */
async function refusal(
  chain: SignedToken[],
  options: { projectId: string; revoked: Set<string> },
): Promise<TokenError | null> {
  try {
    await verifyChain(chain, options);
    return null;
  } catch (error) {
    assert.ok(error instanceof TokenError, String(error));
    return error;
  }
}

Deno.test("a chain through a left token fails verification exactly as through a revoked one", async () => {
  const paths = tempPaths();
  try {
    const founder = seedSigner(generateSeed());
    const admin = seedSigner(generateSeed());
    const member = seedSigner(generateSeed());
    const id = await makeProjectId(founder.publicKey, "notes");
    const root = await mintBootstrapToken(founder, "notes");
    const adminToken = await mintChildToken(founder, [root], {
      subject: admin.publicKey,
      role: "admin",
    });
    // Someone the admin invited: their chain runs through the admin's token.
    const memberToken = await mintChildToken(admin, [root, adminToken], {
      subject: member.publicKey,
      role: "member",
    });
    const adminChain = [root, adminToken];
    const memberChain = [root, adminToken, memberToken];
    const adminId = decodeToken(adminToken).id;

    // Nothing stored: both verify.
    assert.deepEqual(revokedTokenIds(paths, id), new Set());
    for (const chain of [adminChain, memberChain]) {
      assert.equal(
        await refusal(chain, {
          projectId: id,
          revoked: revokedTokenIds(paths, id),
        }),
        null,
      );
    }

    // The admin leaves. The stored LEAVE is named by its own id, not by the
    // token: the token comes from its body.
    const leave = await mintLeave(admin, {
      projectId: id,
      chain: adminChain,
    });
    const leaveId = (await verifyLeave(leave, { projectId: id })).id;
    assert.notEqual(leaveId, adminId);
    const leavePath = store(paths, id, "leaves", leaveId, leave);
    assert.deepEqual(leftTokenIds(paths, id), new Set([adminId]));
    assert.deepEqual(revokedTokenIds(paths, id), new Set([adminId]));
    const leftErrors = [];
    for (const chain of [adminChain, memberChain]) {
      leftErrors.push(
        await refusal(chain, {
          projectId: id,
          revoked: revokedTokenIds(paths, id),
        }),
      );
    }

    // The same admin token revoked instead (another envoy's view): the very
    // same refusals.
    const revokedOnly = tempPaths();
    try {
      store(
        revokedOnly,
        id,
        "revokes",
        adminId,
        await mintRevocation(founder, { projectId: id, chain: adminChain }),
      );
      for (const [i, chain] of [adminChain, memberChain].entries()) {
        const revoked = await refusal(chain, {
          projectId: id,
          revoked: revokedTokenIds(revokedOnly, id),
        });
        assert.equal(revoked?.code, "revoked");
        assert.equal(leftErrors[i]?.code, revoked?.code);
        assert.equal(leftErrors[i]?.message, revoked?.message);
      }
    } finally {
      Deno.removeSync(revokedOnly.root, { recursive: true });
    }

    // Joining again brings a new token, which no LEAVE names.
    const rejoined = await mintChildToken(founder, [root], {
      subject: admin.publicKey,
      role: "admin",
    });
    assert.equal(
      await refusal([root, rejoined], {
        projectId: id,
        revoked: revokedTokenIds(paths, id),
      }),
      null,
    );

    // Files that are not LEAVEs name no token; once the LEAVE is reaped,
    // its token is no longer refused (by then it cannot verify anyway).
    store(
      paths,
      id,
      "leaves",
      "ab".repeat(32),
      { body: btoa("{}"), sig: "00".repeat(64) },
    );
    Deno.writeTextFileSync(
      `${envelopesDir(paths, id, "leaves")}/${"cd".repeat(32)}.json`,
      "not json",
    );
    Deno.writeTextFileSync(
      `${envelopesDir(paths, id, "leaves")}/stray.txt`,
      JSON.stringify(leave),
    );
    assert.deepEqual(revokedTokenIds(paths, id), new Set([adminId]));
    Deno.removeSync(leavePath);
    assert.deepEqual(revokedTokenIds(paths, id), new Set());
  } finally {
    Deno.removeSync(paths.root, { recursive: true });
  }
});
