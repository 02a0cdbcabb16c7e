import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { seedSigner } from "../crypto/signed_object.ts";
import { foundProject, newProjectState } from "./new_project.ts";
import { readLeft, recordLeft } from "./left.ts";
import { ProjectError, readProject, readTokens } from "./project.ts";
import { projectId } from "./project_id.ts";
import { checkScopeStatement } from "./scope_statement.ts";
import { verifyChain } from "./tokens.ts";

Deno.test("a new project's state: the bootstrap token, a signed scope, the founder alone", async () => {
  const founder = seedSigner(generateSeed());
  const now = new Date("2030-01-02T03:04:05.678Z");
  const { project, tokens } = await newProjectState(founder, {
    handle: "work",
    scope: "members-only",
    now,
  });
  const id = await projectId(founder.publicKey, "work");
  const key = formatPublicKey(founder.publicKey);
  assert.equal(project.project_id, id);
  assert.equal(project.founder, key);
  assert.deepEqual(project.members, [key]);
  assert.equal(project.created_at, now.toISOString());
  assert.equal(project.tombstoned_at, null);
  assert.equal(
    checkScopeStatement(project.scope_statement, id)?.body.scope,
    "members-only",
  );
  const verified = await verifyChain(tokens.chain, {
    projectId: id,
    presenter: founder.publicKey,
    now: Math.floor(now.getTime() / 1000),
  });
  assert.equal(verified.role, "admin");
  assert.equal(verified.leaf.body.parent, null);
});

Deno.test("founding writes the state once, and undoes an earlier leave", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const founder = seedSigner(generateSeed());
    const id = await projectId(founder.publicKey, "work");
    await recordLeft(dir, [id]);
    const project = await foundProject(dir, founder, {
      handle: "work",
      scope: "swarm-wide",
    });
    const read = readProject(dir, id);
    for (const field of ["handle", "scope", "scope_statement", "members"]) {
      assert.deepEqual(
        read[field as keyof typeof read],
        project[field as keyof typeof project],
        field,
      );
    }
    assert.equal(readTokens(dir, id).chain.length, 1);
    assert.equal(readLeft(dir).has(id), false);
    const before = Deno.readTextFileSync(`${dir}/${id}/tokens.json`);
    await assert.rejects(
      foundProject(dir, founder, { handle: "work", scope: "members-only" }),
      (error) =>
        error instanceof ProjectError &&
        error.message ===
          `you already founded work (project ${
            id.slice(0, 16)
          }…); nothing was changed.`,
    );
    assert.equal(Deno.readTextFileSync(`${dir}/${id}/tokens.json`), before);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
