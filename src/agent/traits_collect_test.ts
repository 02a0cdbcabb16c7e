import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { type AgentConfig, loadAgentConfig } from "../envoy/config.ts";
import {
  MAX_TRAIT_PROJECTS,
  MAX_TRAITS_BYTES,
  parseTraits,
} from "../swarm/traits.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
} from "../gitback/tokens.ts";
import { bareRepoPath, envelopesDir, git } from "../gitback/repo.ts";
import { signNameClaim } from "../puddle/names.ts";
import {
  encodeRetiredLog,
  signRotation,
  verifyRotation,
} from "../puddle/rotation.ts";
import { recordBinding } from "./puddle_bindings.ts";
import { collectTraits } from "./traits_collect.ts";
import { systemPathsUnder } from "../platform/paths.ts";

const NOW = Math.floor(Date.now() / 1000);
const newSigner = () => seedSigner(generateSeed());
const keyOf = (signer: Signer) => formatPublicKey(signer.publicKey);

/** Users of the fixture: the names passwd lacks, so uids come from their homes. */
const ALICE = "vigo-t-alice";
const BOB = "vigo-t-bob";
const CAROL = "vigo-t-carol";
const UIDS: Record<string, number> = {
  [ALICE]: 0,
  [BOB]: 40102,
  [CAROL]: 40103,
};

function write(path: string, text: string | Uint8Array) {
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof text === "string") Deno.writeTextFileSync(path, text);
  else Deno.writeFileSync(path, text);
}

function chownTree(path: string, uid: number) {
  Deno.chownSync(path, uid, uid);
  if (!Deno.statSync(path).isDirectory) return;
  for (const entry of Deno.readDirSync(path)) {
    chownTree(`${path}/${entry.name}`, uid);
  }
}

function agentRoot(base: string, homes: Record<string, string>): AgentConfig {
  const paths = systemPathsUnder(base);
  const lines = Object.entries(homes).map(([u, h]) => `  ${u}: ${h}\n`);
  write(
    `${paths.etc}/agent.yaml`,
    `hostname: envoy-a\nmanaged_users: homes\nhomes:\n${lines.join("")}`,
  );
  return loadAgentConfig(paths);
}

function pending(expiresAt: number): string {
  return JSON.stringify({
    version: 1,
    code_sha256: "0".repeat(64),
    salt: "0".repeat(32),
    created_at: new Date(expiresAt - 300_000).toISOString(),
    expires_at: new Date(expiresAt).toISOString(),
  });
}

Deno.test({
  name:
    "traits: proven keys only, verified claims, logs and members, within the traits format",
  // Users with their own uids need chown.
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-traits-" });
    try {
      const home = (user: string) => `${base}/home/${user}`;
      const puddle = (user: string) => `${home(user)}/.vigo-puddle`;
      const config = agentRoot(base, {
        [ALICE]: home(ALICE),
        [BOB]: home(BOB),
        [CAROL]: home(CAROL),
      });

      // Alice rotated her first key to her current one; she founds notes.
      const aliceOld = newSigner();
      const alice = newSigner();
      const rotation = await signRotation(aliceOld, alice, {
        seq: 1,
        previous: null,
      });
      write(
        `${puddle(ALICE)}/retired_puddles.json`,
        encodeRetiredLog([verifyRotation(rotation)]),
      );
      const wrapped = crypto.getRandomValues(new Uint8Array(87));
      for (const user of [ALICE, BOB, CAROL]) {
        write(`${puddle(user)}/identity.wrapped`, wrapped);
        // Every sentinel names this (root's) process.
        write(`${puddle(user)}/session.unlocked`, `${Deno.pid}\n`);
      }
      write(
        `${puddle(ALICE)}/name-claim.json`,
        JSON.stringify(await signNameClaim(alice, "alice")),
      );
      write(`${puddle(ALICE)}/pair.pending`, pending(Date.now() + 60_000));
      write(`${puddle(ALICE)}/rekey.pending`, pending(Date.now() - 1_000));

      // Bob: Alice's claim, and (below) rotation logs that are not his.
      const bob = newSigner();
      write(
        `${puddle(BOB)}/name-claim.json`,
        JSON.stringify(await signNameClaim(alice, "alice")),
      );
      write(`${puddle(BOB)}/pair.pending`, "not json");

      // notes, founded by Alice; Bob a member; Carol holds state but
      // proved no key here; Carol's copy names another handle.
      const bootstrap = await mintBootstrapToken(alice, "notes", {
        now: NOW - 100,
      });
      const projectId = decodeToken(bootstrap).body.project_id;
      const bobToken = await mintChildToken(alice, [bootstrap], {
        subject: bob.publicKey,
        role: "member",
        now: NOW - 50,
      });
      const state = (user: string, handle: string, chain: unknown[]) => {
        const dir = `${home(user)}/.vigo-gitback/${projectId}`;
        write(`${dir}/project.json`, JSON.stringify({ handle }));
        write(`${dir}/tokens.json`, JSON.stringify({ version: 1, chain }));
      };
      state(ALICE, "notes", [bootstrap]);
      state(BOB, "notes", [bootstrap, bobToken]);
      // Carol copies Alice's chain: without a proof of Alice's key, it
      // makes her no member.
      state(CAROL, "Not a handle!", [bootstrap]);

      // The bare repository: one head, and a lost tip the envoys keep.
      const repo = bareRepoPath(config.paths, projectId);
      Deno.mkdirSync(repo, { recursive: true });
      await git(["init", "--bare", "-q", repo]);
      const tree = (await git(["-C", repo, "mktree"])).trim();
      const commit = (await git([
        "-C",
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example",
        "commit-tree",
        tree,
        "-m",
        "first",
      ])).trim();
      await git(["-C", repo, "update-ref", "refs/heads/main", commit]);
      await git([
        "-C",
        repo,
        "update-ref",
        "refs/gitback/lost/0123456789abcdef/heads/main",
        commit,
      ]);
      const revokes = envelopesDir(config.paths, projectId, "revokes");
      write(`${revokes}/${"1".repeat(64)}.json`, "{}");
      write(`${revokes}/${"2".repeat(64)}.json`, "{}");

      for (const user of [BOB, CAROL]) chownTree(home(user), UIDS[user]);
      recordBinding(config.paths, {
        uid: UIDS[ALICE],
        user: ALICE,
        pubkey: keyOf(alice),
      });
      recordBinding(config.paths, {
        uid: UIDS[BOB],
        user: BOB,
        pubkey: keyOf(bob),
      });

      const traits = await collectTraits(config, NOW);
      const bytes = new TextEncoder().encode(JSON.stringify(traits));
      const parsed = parseTraits(bytes, { certificateHost: "envoy-a" });
      assert.deepEqual(parsed, traits);
      assert.equal(parsed.envoy, "envoy-a");
      assert.equal(parsed.at, NOW);
      const byUser = new Map(parsed.users.map((u) => [u.user, u]));
      assert.deepEqual([...byUser.keys()], [ALICE, BOB, CAROL]);

      const a = byUser.get(ALICE)!;
      assert.equal(a.puddle?.pubkey, keyOf(alice));
      assert.equal(a.puddle?.wrapped_sha256, toHex(sha256(wrapped)));
      assert.equal(a.puddle?.unlocked, true, "root's own process, uid 0");
      assert.deepEqual(
        a.puddle?.name_claim,
        JSON.parse(Deno.readTextFileSync(`${puddle(ALICE)}/name-claim.json`)),
      );
      assert.equal(a.puddle?.pair_pending, true);
      assert.equal(a.puddle?.rekey_pending, false, "expired");
      assert.deepEqual(a.puddle?.retired, [keyOf(aliceOld)]);

      const b = byUser.get(BOB)!;
      assert.equal(b.puddle?.pubkey, keyOf(bob));
      assert.equal(b.puddle?.unlocked, false, "a process that is not his");
      assert.equal(b.puddle?.name_claim, null, "signed by another key");
      assert.equal(b.puddle?.pair_pending, false);
      assert.deepEqual(b.puddle?.retired, [], "no log");

      // Logs that would retire Alice's old key from Bob's home: unsigned,
      // signed by a stranger instead of that key, or Alice's own copied
      // (which ends at her key, not his). None retires anything.
      const stranger = newSigner();
      const posing = (sign: Signer["sign"]): Signer => ({
        publicKey: aliceOld.publicKey,
        sign,
      });
      const forgeries = [
        await signRotation(
          posing(() => Promise.resolve(new Uint8Array(64))),
          bob,
          { seq: 1, previous: null },
        ),
        await signRotation(posing(stranger.sign), bob, {
          seq: 1,
          previous: null,
        }),
      ].map((statement) =>
        JSON.stringify({
          version: 1,
          rotations: [{
            retired: keyOf(aliceOld),
            successor: keyOf(bob),
            seq: 1,
            at: new Date().toISOString(),
            statement,
          }],
        })
      );
      for (
        const text of [
          ...forgeries,
          Deno.readTextFileSync(`${puddle(ALICE)}/retired_puddles.json`),
        ]
      ) {
        Deno.writeTextFileSync(`${puddle(BOB)}/retired_puddles.json`, text);
        Deno.chownSync(`${puddle(BOB)}/retired_puddles.json`, UIDS[BOB], 0);
        const forged = await collectTraits(config, NOW);
        const bobForged = forged.users.find((u) => u.user === BOB)!;
        assert.equal(bobForged.puddle?.pubkey, keyOf(bob));
        assert.deepEqual(bobForged.puddle?.retired, []);
      }
      // His own rotation, from a key of his, does retire that key.
      const bobOld = newSigner();
      Deno.writeTextFileSync(
        `${puddle(BOB)}/retired_puddles.json`,
        encodeRetiredLog([
          verifyRotation(
            await signRotation(bobOld, bob, { seq: 1, previous: null }),
          ),
        ]),
      );
      const own = await collectTraits(config, NOW);
      assert.deepEqual(
        own.users.find((u) => u.user === BOB)!.puddle?.retired,
        [keyOf(bobOld)],
      );

      const c = byUser.get(CAROL)!;
      assert.equal(c.puddle, null, "no key proven here");

      const notes = a.gitback?.projects[0]!;
      assert.equal(a.gitback?.projects.length, 1);
      assert.equal(notes.project_id, projectId);
      assert.equal(notes.handle, "notes");
      assert.equal(notes.scope, "members-only");
      assert.deepEqual(notes.heads, { "refs/heads/main": commit });
      assert.ok(notes.repo_bytes > 0);
      assert.equal(notes.revokes, 2);
      assert.equal(notes.leaves, 0);
      assert.equal(notes.delegations, 0);
      assert.equal(notes.tombstoned, false);
      assert.equal(notes.signed_seq, null);
      assert.deepEqual(notes.members, [keyOf(alice), keyOf(bob)]);
      assert.deepEqual(b.gitback?.projects, [notes]);
      // Carol's chain is not hers (no proof), so only her own handle is
      // there to show, and it is not a handle.
      assert.deepEqual(c.gitback, { projects: [] });

      // Without Bob's proof, he is neither a puddle nor a member.
      Deno.removeSync(
        `${config.paths.varLib}/swarm/puddle/bindings/${UIDS[BOB]}.json`,
      );
      const again = await collectTraits(config, NOW);
      const bobAgain = again.users.find((u) => u.user === BOB)!;
      assert.equal(bobAgain.puddle, null);
      assert.deepEqual(bobAgain.gitback?.projects[0].members, [keyOf(alice)]);
    } finally {
      Deno.removeSync(base, { recursive: true });
    }
  },
});

Deno.test("traits: a symlinked identity.wrapped is not read: no puddle trait", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-traits-" });
  try {
    const home = `${base}/home/${ALICE}`;
    const config = agentRoot(base, { [ALICE]: home });
    const alice = newSigner();
    const secret = `${base}/secret`;
    Deno.writeTextFileSync(secret, "x".repeat(87));
    Deno.mkdirSync(`${home}/.vigo-puddle`, { recursive: true });
    // The wrapped identity is a symlink to a file root may read.
    Deno.symlinkSync(secret, `${home}/.vigo-puddle/identity.wrapped`);
    recordBinding(config.paths, {
      uid: Deno.uid()!,
      user: ALICE,
      pubkey: keyOf(alice),
    });
    const traits = await collectTraits(config, NOW);
    parseTraits(new TextEncoder().encode(JSON.stringify(traits)), {
      certificateHost: "envoy-a",
    });
    assert.deepEqual(traits.users, [
      { user: ALICE, puddle: null, gitback: null },
    ]);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("traits: too many projects are cut to the caps, the document to its size", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-traits-" });
  try {
    const users = ["vigo-t-a", "vigo-t-b", "vigo-t-c"];
    const config = agentRoot(
      base,
      Object.fromEntries(users.map((u) => [u, `${base}/home/${u}`])),
    );
    for (const user of users) {
      for (let i = 0; i < MAX_TRAIT_PROJECTS + 8; i++) {
        const id = i.toString(16).padStart(64, "0");
        write(
          `${base}/home/${user}/.vigo-gitback/${id}/project.json`,
          JSON.stringify({ handle: `project-${i}` }),
        );
      }
    }
    const traits = await collectTraits(config, NOW);
    const bytes = new TextEncoder().encode(JSON.stringify(traits));
    assert.ok(bytes.length <= MAX_TRAITS_BYTES);
    const parsed = parseTraits(bytes, { certificateHost: "envoy-a" });
    const counts = parsed.users.map((u) => u.gitback?.projects.length ?? 0);
    assert.equal(counts[0], MAX_TRAIT_PROJECTS, "the first user is whole");
    assert.ok(counts[2] < MAX_TRAIT_PROJECTS, "the last one was cut");
    assert.equal(parsed.users.length, 3, "no user was dropped");
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
