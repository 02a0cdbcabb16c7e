import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { adoptFoundedProjects } from "./adopt.ts";
import { readProject, readTokens } from "./project.ts";
import { projectId } from "./project_id.ts";
import { seedSigner, verifyChain } from "./tokens.ts";

Deno.test("unlock adopts only announced projects this key founded", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    const other = seedSigner(generateSeed());
    const mine = await projectId(me.publicKey, "work");
    const theirs = await projectId(other.publicKey, "work");
    const announced = `${dir}/announced.json`;
    Deno.writeTextFileSync(
      announced,
      JSON.stringify([
        { host: "envoy-a", projectId: theirs, handle: "work" },
        // A handle that does not reproduce the id is not adopted.
        { host: "envoy-a", projectId: mine, handle: "other" },
        {
          host: "envoy-a",
          projectId: mine,
          handle: "work",
          scope: "members-only",
        },
        { host: "envoy-b", projectId: mine, handle: "work" },
      ]),
    );
    const gitbackDir = `${dir}/gitback`;
    Deno.mkdirSync(gitbackDir, { mode: 0o700 });

    assert.deepEqual(
      await adoptFoundedProjects(gitbackDir, announced, me),
      ["work"],
    );
    const project = readProject(gitbackDir, mine);
    assert.equal(project.founder, formatPublicKey(me.publicKey));
    assert.equal(project.scope, "members-only");
    const { chain } = readTokens(gitbackDir, mine);
    const verified = await verifyChain(chain, {
      projectId: mine,
      presenter: me.publicKey,
    });
    assert.equal(verified.handle, "work");
    assert.throws(() => readProject(gitbackDir, theirs));

    // Adopting again changes nothing: the state exists.
    assert.deepEqual(await adoptFoundedProjects(gitbackDir, announced, me), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a missing or malformed announced cache adopts nothing", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    assert.deepEqual(
      await adoptFoundedProjects(dir, `${dir}/absent.json`, me),
      [],
    );
    Deno.writeTextFileSync(`${dir}/bad.json`, "{not json");
    assert.deepEqual(
      await adoptFoundedProjects(dir, `${dir}/bad.json`, me),
      [],
    );
    // Nothing was written beside the cache itself.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
      "bad.json",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
