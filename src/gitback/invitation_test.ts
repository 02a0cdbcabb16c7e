import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { seedSigner } from "../crypto/signed_object.ts";
import {
  acceptInvitation,
  checkInvitationFor,
  issueInvitation,
  parseInvitation,
  verifyInvitation,
} from "./invitation.ts";
import { foundProject } from "./new_project.ts";
import {
  ProjectError,
  readDelegations,
  readIssued,
  readProject,
  readTokens,
} from "./project.ts";
import { readLeft, recordLeft } from "./left.ts";

/** A founder's gitback dir holding project `work`, and a second user's. */
async function founded(scope: "swarm-wide" | "members-only" = "swarm-wide") {
  const dir = Deno.makeTempDirSync();
  const founder = seedSigner(generateSeed());
  const project = await foundProject(`${dir}/founder`, founder, {
    handle: "work",
    scope,
  });
  const held = () => ({
    project: readProject(`${dir}/founder`, project.project_id),
    chain: readTokens(`${dir}/founder`, project.project_id).chain,
    delegations: readDelegations(`${dir}/founder`, project.project_id),
  });
  return { dir, founder, project, held };
}

const now = () => Math.floor(Date.now() / 1000);

Deno.test("an admin's invitation verifies for its member, who joins with it", async () => {
  const { dir, founder, project, held } = await founded("members-only");
  try {
    const member = seedSigner(generateSeed());
    const issued = await issueInvitation(`${dir}/founder`, founder, held(), {
      subject: member.publicKey,
      role: "member",
      expires: null,
      now: now(),
    });
    const key = formatPublicKey(member.publicKey);
    assert.equal(issued.member, key);
    // The admin's state knows the member and the chain it issued.
    assert.deepEqual(
      readProject(`${dir}/founder`, project.project_id).members,
      [project.founder, key],
    );
    assert.deepEqual(readIssued(`${dir}/founder`, project.project_id), [
      issued.invitation.chain,
    ]);

    const invitation = parseInvitation(
      JSON.stringify(issued.invitation, null, 2),
    );
    checkInvitationFor(invitation, project.project_id);
    checkInvitationFor(invitation, "wo");
    const verified = await verifyInvitation(invitation, member.publicKey);
    assert.equal(verified.leaf.id, issued.tokenId);
    assert.equal(verified.role, "member");

    const gitbackDir = `${dir}/member`;
    await recordLeft(gitbackDir, [project.project_id]);
    const accepted = await acceptInvitation(
      gitbackDir,
      invitation,
      verified,
      member.publicKey,
    );
    assert.equal(accepted.scopeSigned, true);
    const joined = readProject(gitbackDir, project.project_id);
    assert.equal(joined.scope, "members-only");
    assert.deepEqual(joined.members, [project.founder, key]);
    assert.deepEqual(
      readTokens(gitbackDir, project.project_id).chain,
      invitation.chain,
    );
    assert.equal(readLeft(gitbackDir).has(project.project_id), false);
    // Joining twice changes nothing.
    await assert.rejects(
      acceptInvitation(gitbackDir, invitation, verified, member.publicKey),
      (error) =>
        error instanceof ProjectError &&
        /^you already hold project work \(/.test(error.message),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("an invitation proves nothing for another key, and members do not invite", async () => {
  const { dir, founder, held } = await founded();
  try {
    const member = seedSigner(generateSeed());
    const { invitation } = await issueInvitation(
      `${dir}/founder`,
      founder,
      held(),
      { subject: member.publicKey, role: "member", expires: null, now: now() },
    );
    const stranger = seedSigner(generateSeed());
    await assert.rejects(
      verifyInvitation(invitation, stranger.publicKey),
      (error) =>
        error instanceof ProjectError &&
        /^the invitation does not verify: .*; nothing was changed\.$/.test(
          error.message,
        ),
    );
    await assert.rejects(
      issueInvitation(
        `${dir}/founder`,
        member,
        { ...held(), chain: invitation.chain },
        {
          subject: stranger.publicKey,
          role: "member",
          expires: null,
          now: now(),
        },
      ),
      (error) =>
        error instanceof ProjectError &&
        error.message ===
          "your token on work is a member token; only admins invite.",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("malformed or misdirected invitations are refused", () => {
  const refused = (text: string, message: RegExp) =>
    assert.throws(
      () => parseInvitation(text),
      (error) => error instanceof ProjectError && message.test(error.message),
    );
  refused("{", /^the invitation is not valid JSON/);
  refused("null", /^the invitation has no project or chain/);
  refused('{"project":{"project_id":"x"}}', /has no project or chain/);
  const invitation = parseInvitation(
    '{"project":{"project_id":"abc","handle":"work"},"chain":[]}',
  );
  assert.deepEqual(invitation.delegations, []);
  assert.throws(
    () => checkInvitationFor(invitation, "other"),
    (error) =>
      error instanceof ProjectError &&
      error.message ===
        "this invitation is for project abc, not other; nothing was changed.",
  );
});
