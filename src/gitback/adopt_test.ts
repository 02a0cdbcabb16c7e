import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import {
  adoptFoundedProjects,
  adoptMembership,
  readAnnounced,
} from "./adopt.ts";
import { clearLeft, recordLeft } from "./left.ts";
import { ProjectError, readProject, readTokens } from "./project.ts";
import { projectId } from "./project_id.ts";
import { mintBootstrapToken, mintChildToken, verifyChain } from "./tokens.ts";
import { signScopeStatement } from "./scope_statement.ts";
import { seedSigner } from "../crypto/signed_object.ts";

Deno.test("unlock adopts only announced projects this key founded", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    const other = seedSigner(generateSeed());
    const mine = await projectId(me.publicKey, "work");
    const theirs = await projectId(other.publicKey, "work");
    const statement = await signScopeStatement(me, {
      projectId: mine,
      handle: "work",
      scope: "members-only",
    });
    const announced = `${dir}/announced.json`;
    const at = new Date().toISOString();
    const entry = (
      host: string,
      project_id: string,
      handle: string,
      scope = "swarm-wide",
      scope_statement: unknown = null,
    ) => ({
      project_id,
      handle,
      scope,
      scope_statement,
      host,
      confirmed_at: at,
    });
    Deno.writeTextFileSync(
      announced,
      JSON.stringify([
        entry("envoy-a", theirs, "work"),
        // A handle that does not reproduce the id is not adopted.
        entry("envoy-a", mine, "other"),
        // Unsigned: says swarm-wide, proves nothing.
        entry("envoy-a", mine, "work"),
        entry("envoy-b", mine, "work", "members-only", statement),
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
    // The statement, from whichever host had one.
    assert.equal(project.scope, "members-only");
    assert.deepEqual(project.scope_statement, statement);
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

Deno.test("adoption keeps only a scope statement the founder signed; anything else is members-only", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    const other = seedSigner(generateSeed());
    const founder = seedSigner(generateSeed());
    const at = new Date().toISOString();
    // Unlock: an unsigned "swarm-wide", and one signed by another key.
    const plain = await projectId(me.publicKey, "plain");
    const forged = await projectId(me.publicKey, "forged");
    const otherId = await projectId(other.publicKey, "forged");
    const byOther = await signScopeStatement(other, {
      projectId: otherId,
      handle: "forged",
      scope: "swarm-wide",
    });
    const announced = `${dir}/announced.json`;
    Deno.writeTextFileSync(
      announced,
      JSON.stringify([
        {
          project_id: plain,
          handle: "plain",
          scope: "swarm-wide",
          host: "envoy-a",
          confirmed_at: at,
        },
        {
          project_id: forged,
          handle: "forged",
          scope: "swarm-wide",
          scope_statement: byOther,
          host: "envoy-a",
          confirmed_at: at,
        },
      ]),
    );
    const gitbackDir = `${dir}/gitback`;
    Deno.mkdirSync(gitbackDir, { mode: 0o700 });
    assert.deepEqual(
      (await adoptFoundedProjects(gitbackDir, announced, me)).sort(),
      ["forged", "plain"],
    );
    for (const id of [plain, forged]) {
      const project = readProject(gitbackDir, id);
      assert.equal(project.scope, "members-only");
      assert.equal(project.scope_statement, null);
    }

    // The agent's adoption: a member's chain of the founder's project.
    const shared = await projectId(founder.publicKey, "shared");
    const root = await mintBootstrapToken(founder, "shared");
    const chain = [
      root,
      await mintChildToken(founder, [root], {
        subject: me.publicKey,
        role: "member",
      }),
    ];
    const signed = await signScopeStatement(founder, {
      projectId: shared,
      handle: "shared",
      scope: "swarm-wide",
    });
    const cases: [string, Record<string, unknown>, boolean][] = [
      ["a plain scope", { chain, scope: "swarm-wide" }, false],
      [
        "a signature taken from another statement",
        {
          chain,
          scope_statement: {
            ...signed,
            sig: (await signScopeStatement(founder, {
              projectId: shared,
              handle: "shared",
              scope: "members-only",
            })).sig,
          },
        },
        false,
      ],
      ["the founder's statement", { chain, scope_statement: signed }, true],
    ];
    for (const [what, input, kept] of cases) {
      const home = `${dir}/${what.replaceAll(" ", "-")}`;
      await adoptMembership(home, shared, me.publicKey, input);
      const project = readProject(home, shared);
      assert.equal(project.scope, kept ? "swarm-wide" : "members-only", what);
      assert.deepEqual(project.scope_statement, kept ? signed : null, what);
    }
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

Deno.test("the announced cache is read in exactly its format: snake_case, every field", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    const mine = await projectId(me.publicKey, "work");
    const good = {
      project_id: mine,
      handle: "work",
      scope: "swarm-wide",
      host: "envoy-a",
      confirmed_at: "2025-01-02T03:04:05.000Z",
    };
    const { confirmed_at: _, ...unconfirmed } = good;
    const refused = [
      // The older camelCase form, which carried no confirmation.
      { host: "envoy-a", projectId: mine, handle: "work" },
      unconfirmed,
      { ...good, scope: undefined },
      { ...good, scope: "everyone" },
      { ...good, host: "../x" },
      { ...good, handle: ".hidden" },
      { ...good, confirmed_at: "yesterday" },
      { ...good, extra: true },
      [mine, "work"],
      null,
    ];
    const path = `${dir}/announced.json`;
    Deno.writeTextFileSync(path, JSON.stringify(refused));
    assert.deepEqual(readAnnounced(path), []);
    const gitbackDir = `${dir}/gitback`;
    Deno.mkdirSync(gitbackDir, { mode: 0o700 });
    assert.deepEqual(await adoptFoundedProjects(gitbackDir, path, me), []);
    Deno.writeTextFileSync(path, JSON.stringify([...refused, good]));
    assert.deepEqual(readAnnounced(path), [good]);
    assert.deepEqual(await adoptFoundedProjects(gitbackDir, path, me), [
      "work",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("neither unlock nor the agent's adoption brings back a project the user dropped here, until they join again", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    const founder = seedSigner(generateSeed());
    const mine = await projectId(me.publicKey, "work");
    const theirs = await projectId(founder.publicKey, "shared");
    const root = await mintBootstrapToken(founder, "shared");
    const chain = [
      root,
      await mintChildToken(founder, [root], {
        subject: me.publicKey,
        role: "member",
      }),
    ];
    const announced = `${dir}/announced.json`;
    Deno.writeTextFileSync(
      announced,
      JSON.stringify([{
        project_id: mine,
        handle: "work",
        scope: "swarm-wide",
        host: "envoy-b",
        confirmed_at: new Date().toISOString(),
      }]),
    );
    const gitbackDir = `${dir}/gitback`;
    await recordLeft(gitbackDir, [mine, theirs]);

    assert.deepEqual(await adoptFoundedProjects(gitbackDir, announced, me), []);
    await assert.rejects(
      adoptMembership(gitbackDir, theirs, me.publicKey, { chain }),
      (error: Error) =>
        error instanceof ProjectError && /you left project/.test(error.message),
    );
    assert.deepEqual(
      [...Deno.readDirSync(gitbackDir)].map((e) => e.name).sort(),
      [".left.lock", "left.json"],
    );

    // Joining (or founding) again clears the record: adoption works again.
    await clearLeft(gitbackDir, mine);
    await clearLeft(gitbackDir, theirs);
    assert.deepEqual(await adoptFoundedProjects(gitbackDir, announced, me), [
      "work",
    ]);
    await adoptMembership(gitbackDir, theirs, me.publicKey, { chain });
    assert.equal(readProject(gitbackDir, theirs).handle, "shared");

    // An unreadable record stops adoption rather than guessing.
    Deno.writeTextFileSync(`${gitbackDir}/left.json`, "{not json");
    await assert.rejects(
      adoptFoundedProjects(gitbackDir, announced, me),
      /not valid JSON/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
