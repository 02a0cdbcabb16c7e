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
import {
  mintBootstrapToken,
  mintChildToken,
  seedSigner,
  verifyChain,
} from "./tokens.ts";

Deno.test("unlock adopts only announced projects this key founded", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const me = seedSigner(generateSeed());
    const other = seedSigner(generateSeed());
    const mine = await projectId(me.publicKey, "work");
    const theirs = await projectId(other.publicKey, "work");
    const announced = `${dir}/announced.json`;
    const at = new Date().toISOString();
    const entry = (
      host: string,
      project_id: string,
      handle: string,
      scope = "swarm-wide",
    ) => ({ project_id, handle, scope, host, confirmed_at: at });
    Deno.writeTextFileSync(
      announced,
      JSON.stringify([
        entry("envoy-a", theirs, "work"),
        // A handle that does not reproduce the id is not adopted.
        entry("envoy-a", mine, "other"),
        entry("envoy-a", mine, "work", "members-only"),
        entry("envoy-b", mine, "work"),
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
      adoptMembership(gitbackDir, theirs, me.publicKey, {
        chain,
        scope: "swarm-wide",
      }),
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
    await adoptMembership(gitbackDir, theirs, me.publicKey, {
      chain,
      scope: "swarm-wide",
    });
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
