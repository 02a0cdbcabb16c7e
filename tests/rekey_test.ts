/**
 * Key rotation on one envoy through the real CLI: `rekey-pair`, the
 * air-gapped `rekey --from-dir`, the refusals that write nothing, the
 * delegation cap, and crashes at any point leaving the old identity or the
 * new one, never a mix.
 */

import assert from "node:assert/strict";
import {
  killSessionHelper,
  makeUserEnv,
  type UserEnv,
  VIGO,
  vigo,
} from "./support/cli.ts";
import { unwrapSeed } from "../src/crypto/wrap.ts";
import { seedSigner, type Signer } from "../src/crypto/signed_object.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { mintBootstrapToken, verifyChain } from "../src/gitback/tokens.ts";
import { projectId as computeProjectId } from "../src/gitback/project_id.ts";
import {
  readDelegations,
  readTokens,
  writeProjectState,
} from "../src/gitback/project.ts";
import { signRotation } from "../src/puddle/rotation.ts";
import { installRotation, rekeyPair } from "../src/puddle/rekey.ts";
import { planFounderRotation } from "../src/gitback/founder_rotation.ts";

const PASS = "rekey passphrase";
const PUDDLE_FILES = [
  "identity.wrapped",
  "identity.salt",
  "identity.pub",
  "retired_puddles.json",
];

async function withUsers(
  fn: (a: UserEnv, b: UserEnv, base: string) => Promise<void>,
): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "vigo-rekey-" });
  const a = makeUserEnv(base, "a");
  const b = makeUserEnv(base, "b");
  try {
    await fn(a, b, base);
  } finally {
    await killSessionHelper(a.home);
    await killSessionHelper(b.home);
    Deno.removeSync(base, { recursive: true });
  }
}

async function ok(user: UserEnv, args: string[], stdin = "") {
  const out = await vigo(user.env, ["swarm", ...args], stdin);
  assert.equal(out.code, 0, `${args.join(" ")}: ${out.stderr}`);
  return out;
}

const puddleDir = (user: UserEnv) => `${user.home}/.vigo-puddle`;
const gitbackDir = (user: UserEnv) => `${user.home}/.vigo-gitback`;

/** The bytes of every file in a directory tree, for "nothing changed". */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string, prefix: string) => {
    for (const entry of Deno.readDirSync(path)) {
      const name = `${prefix}${entry.name}`;
      if (entry.isDirectory) walk(`${path}/${entry.name}`, `${name}/`);
      else if (entry.isFile && entry.name !== ".lock") {
        out[name] = Array.from(Deno.readFileSync(`${path}/${entry.name}`))
          .join(",");
      }
    }
  };
  try {
    walk(dir, "");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out;
}

/** The seed the identity files in `dir` wrap under PASS. */
async function seedIn(dir: string): Promise<Uint8Array> {
  return await unwrapSeed(
    Deno.readFileSync(`${dir}/identity.wrapped`),
    new TextEncoder().encode(PASS),
    Deno.readFileSync(`${dir}/identity.salt`),
  );
}

/** Founds `handle` in `user`'s gitback state with `founder`'s key. */
async function foundLocally(
  user: UserEnv,
  founder: Signer,
  handle: string,
): Promise<string> {
  const id = await computeProjectId(founder.publicKey, handle);
  const key = formatPublicKey(founder.publicKey);
  writeProjectState(gitbackDir(user), {
    version: 1,
    project_id: id,
    handle,
    founder: key,
    scope: "members-only",
    scope_statement: null,
    members: [key],
    cross_subnet_members: [],
    created_at: new Date().toISOString(),
    tombstoned_at: null,
  }, { version: 1, chain: [await mintBootstrapToken(founder, handle)] });
  return id;
}

/** Copies the identity files of `from` into `to` (a second envoy). */
function copyIdentity(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const name of PUDDLE_FILES) {
    try {
      Deno.copyFileSync(`${from}/${name}`, `${to}/${name}`);
      Deno.chmodSync(`${to}/${name}`, name === "identity.pub" ? 0o644 : 0o600);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

Deno.test("rekey-pair rotates the key, hands the projects to it, and the copy rekeys an air-gapped envoy", async () => {
  await withUsers(async (a, b, base) => {
    await ok(a, ["puddle", "init"], `${PASS}\n${PASS}\n`);
    copyIdentity(puddleDir(a), puddleDir(b));
    const oldSeed = await seedIn(puddleDir(a));
    const old = seedSigner(oldSeed);
    const id = await foundLocally(a, old, "work");
    await foundLocally(b, old, "work");

    const locked = await vigo(
      a.env,
      ["swarm", "puddle", "rekey-pair"],
      `${PASS}\n`,
    );
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, /locked on this envoy; nothing was changed/);

    await ok(a, ["puddle", "unlock"], `${PASS}\n`);
    const wrong = await vigo(
      a.env,
      ["swarm", "puddle", "rekey-pair"],
      "not the passphrase\n",
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /passphrase is wrong/);

    const out = await ok(a, ["puddle", "rekey-pair"], `${PASS}\n`);
    assert.match(out.stdout, /Puddle key rotated \(rotation 1\)/);
    assert.match(out.stdout, /now founded by the new key: work/);
    assert.match(out.stdout, /rekey code: \d{4}-\d{4}/);
    const newKey = (await ok(a, ["puddle", "pubkey"])).stdout.trim();
    assert.notEqual(newKey, formatPublicKey(old.publicKey));
    // The session signs with the new key now.
    const status = JSON.parse(
      (await ok(a, ["puddle", "status", "--json"])).stdout,
    );
    assert.equal(status.session.state, "unlocked");
    assert.deepEqual(status.rotation.retired, [formatPublicKey(old.publicKey)]);
    for (const name of ["retired_puddles.json", "rekey.pending"]) {
      assert.equal(
        Deno.statSync(`${puddleDir(a)}/${name}`).mode! & 0o777,
        0o600,
      );
    }
    const chain = readTokens(gitbackDir(a), id).chain;
    const delegations = readDelegations(gitbackDir(a), id);
    assert.equal(delegations.length, 1);
    const verified = await verifyChain(chain, { projectId: id, delegations });
    assert.equal(formatPublicKey(verified.currentFounder), newKey);
    assert.equal(verified.leaf.body.subject, newKey);
    const projectStatus = await ok(a, ["gitback", "project", "status", "work"]);
    assert.match(projectStatus.stdout, /delegations: 1 hop\(s\)/);
    assert.match(projectStatus.stdout, new RegExp(`founder now: ${newKey}`));

    // The air-gapped envoy: the files copied by hand.
    const usb = `${base}/usb`;
    copyIdentity(puddleDir(a), usb);
    Deno.mkdirSync(`${usb}/gitback`);
    Deno.mkdirSync(`${usb}/gitback/${id}`);
    for (const name of ["project.json", "tokens.json", "delegations.json"]) {
      Deno.copyFileSync(
        `${gitbackDir(a)}/${id}/${name}`,
        `${usb}/gitback/${id}/${name}`,
      );
    }
    const rekeyed = await ok(
      b,
      ["puddle", "rekey", "--from-dir", usb],
      `${PASS}\n`,
    );
    assert.match(rekeyed.stdout, /Rekeyed to .* \(1 rotation taken\)/);
    assert.match(rekeyed.stdout, /now founded by the new key: work/);
    assert.equal((await ok(b, ["puddle", "pubkey"])).stdout.trim(), newKey);
    assert.deepEqual(
      readDelegations(gitbackDir(b), id),
      readDelegations(gitbackDir(a), id),
    );
    assert.equal(
      readTokens(gitbackDir(b), id).chain.length,
      2,
      "the new founder's chain",
    );
    await ok(b, ["puddle", "unlock"], `${PASS}\n`);
    oldSeed.fill(0);
  });
});

Deno.test("rekey refuses bad rotations and wrong passphrases, and writes nothing", async () => {
  await withUsers(async (a, b, base) => {
    await ok(a, ["puddle", "init"], `${PASS}\n${PASS}\n`);
    copyIdentity(puddleDir(a), puddleDir(b));
    const oldSeed = await seedIn(puddleDir(a));
    await ok(a, ["puddle", "unlock"], `${PASS}\n`);
    await ok(a, ["puddle", "rekey-pair"], `${PASS}\n`);
    const newSeed = await seedIn(puddleDir(a));
    const log = JSON.parse(
      Deno.readTextFileSync(`${puddleDir(a)}/retired_puddles.json`),
    );
    const before = snapshot(puddleDir(b));

    /** Runs `rekey --from-dir` with the rotation log replaced by `statements`. */
    let n = 0;
    const rekeyWith = async (statements: unknown[], pass = PASS) => {
      const dir = `${base}/copy-${++n}`;
      copyIdentity(puddleDir(a), dir);
      Deno.writeTextFileSync(
        `${dir}/retired_puddles.json`,
        JSON.stringify({
          version: 1,
          rotations: statements.map((statement) => ({ statement })),
        }),
      );
      const out = await vigo(
        b.env,
        ["swarm", "puddle", "rekey", "--from-dir", dir],
        `${pass}\n`,
      );
      assert.equal(out.code, 1, out.stdout);
      assert.match(out.stderr, /nothing was written/);
      assert.deepEqual(snapshot(puddleDir(b)), before);
      return out.stderr;
    };
    const genuine = log.rotations[0].statement;

    // Signed by the old key only: the acceptance inside is not the new
    // key's signature.
    const stranger = seedSigner(generateSeed());
    const newKeyNotSigning: Signer = {
      publicKey: seedSigner(newSeed).publicKey,
      sign: stranger.sign,
    };
    assert.match(
      await rekeyWith([
        await signRotation(seedSigner(oldSeed), newKeyNotSigning, {
          seq: 1,
          previous: null,
        }),
      ]),
      /not accepted by the new key/,
    );
    // A genuine acceptance but a broken old-key signature.
    assert.match(
      await rekeyWith([{
        body: genuine.body,
        sig: genuine.sig.replace(/^./, (c: string) => c === "0" ? "1" : "0"),
      }]),
      /not signed by the old key/,
    );
    // Both signatures valid, but the old key is a stranger's.
    assert.match(
      await rekeyWith([
        await signRotation(stranger, seedSigner(newSeed), {
          seq: 1,
          previous: null,
        }),
      ]),
      /no rotation statement is signed by .*the key this envoy holds/,
    );
    // Out of sequence: a genuine rotation claimed as the second.
    assert.match(
      await rekeyWith([
        await signRotation(seedSigner(oldSeed), seedSigner(newSeed), {
          seq: 2,
          previous: null,
        }),
      ]),
      /out of sequence/,
    );
    // The right log, the wrong passphrase.
    assert.match(
      await rekeyWith([genuine], "not the passphrase"),
      /passphrase does not unwrap/,
    );
    oldSeed.fill(0);
    newSeed.fill(0);
  });
});

Deno.test("a sixth delegation is refused, and --force-orphan-projects tombstones instead", async () => {
  await withUsers(async (a) => {
    await ok(a, ["puddle", "init"], `${PASS}\n${PASS}\n`);
    const seed = await seedIn(puddleDir(a));
    await foundLocally(a, seedSigner(seed), "capped");
    seed.fill(0);
    await ok(a, ["puddle", "unlock"], `${PASS}\n`);
    for (let i = 1; i <= 5; i++) {
      const out = await ok(a, ["puddle", "rekey-pair"], `${PASS}\n`);
      if (i >= 3) {
        assert.match(
          out.stdout,
          new RegExp(`capped has ${i} founder delegations`),
        );
      }
    }
    const status = await ok(a, ["gitback", "project", "status", "capped"]);
    assert.match(status.stdout, /delegations: 5 hop\(s\)/);
    assert.match(status.stdout, /AT CAP/);
    const before = snapshot(a.home);
    const sixth = await vigo(
      a.env,
      ["swarm", "puddle", "rekey-pair"],
      `${PASS}\n`,
    );
    assert.equal(sixth.code, 1);
    assert.match(sixth.stderr, /capped already has 5 founder delegations/);
    assert.match(sixth.stderr, /--force-orphan-projects/);
    const after = snapshot(a.home);
    for (const name of Object.keys(before)) {
      if (name.includes("/run/") || name.endsWith("session.unlocked")) continue;
      assert.equal(after[name], before[name], `${name} changed`);
    }
    const forced = await ok(
      a,
      ["puddle", "rekey-pair", "--force-orphan-projects"],
      `${PASS}\n`,
    );
    assert.match(forced.stdout, /tombstoned \(at the delegation cap\): capped/);
    const tombstoned = await ok(a, ["gitback", "project", "status", "capped"]);
    assert.match(tombstoned.stdout, /TOMBSTONED/);
  });
});

/** Kills `args` after `delay` ms; returns when it has ended. */
async function killAfter(
  user: UserEnv,
  args: string[],
  stdin: string,
  delay: number,
): Promise<void> {
  const child = new Deno.Command(VIGO, {
    args,
    env: user.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  await new Promise((r) => setTimeout(r, delay));
  try {
    child.kill("SIGKILL");
  } catch {
    // Already finished.
  }
  await child.status;
}

/**
 * After a kill, the identity here is wholly the old key or wholly the new
 * one: the files agree, the passphrase unwraps the key `identity.pub`
 * names, the log ends at it, and once a command has run the project's
 * chain belongs to it.
 */
async function assertWhole(
  user: UserEnv,
  id: string,
  keys: { old: string; next?: string },
): Promise<"old" | "new"> {
  const status = JSON.parse(
    (await ok(user, ["puddle", "status", "--json"])).stdout,
  );
  const key = status.pubkey as string;
  const seed = await seedIn(puddleDir(user));
  assert.equal(formatPublicKey(seedSigner(seed).publicKey), key);
  seed.fill(0);
  const chain = readTokens(gitbackDir(user), id).chain;
  const delegations = readDelegations(gitbackDir(user), id);
  const verified = await verifyChain(chain, {
    projectId: id,
    delegations,
    presenter: seedSigner(await seedIn(puddleDir(user))).publicKey,
  });
  assert.equal(verified.leaf.body.subject, key);
  if (key === keys.old) {
    assert.deepEqual(status.rotation.retired, []);
    return "old";
  }
  assert.deepEqual(status.rotation.retired, [keys.old]);
  return "new";
}

Deno.test("a crash at any point of rekey-pair or rekey leaves the old identity or the new one", async () => {
  await withUsers(async (a, b, base) => {
    // Spread-out moments, from before the passphrase is read to after the
    // commit; each time the state is whole.
    for (const delay of [100, 400, 700, 1000, 1400, 2000]) {
      for (const user of [a, b]) {
        await killSessionHelper(user.home);
        Deno.removeSync(user.home, { recursive: true });
        Deno.mkdirSync(user.home, { mode: 0o755 });
      }
      await ok(a, ["puddle", "init"], `${PASS}\n${PASS}\n`);
      copyIdentity(puddleDir(a), puddleDir(b));
      const seed = await seedIn(puddleDir(a));
      const old = formatPublicKey(seedSigner(seed).publicKey);
      const id = await foundLocally(a, seedSigner(seed), "work");
      await foundLocally(b, seedSigner(seed), "work");
      seed.fill(0);
      await ok(a, ["puddle", "unlock"], `${PASS}\n`);
      await killAfter(
        a,
        [
          "swarm",
          "puddle",
          "rekey-pair",
        ],
        `${PASS}\n`,
        delay,
      );
      await assertWhole(a, id, { old });

      // Then rekey on b from a's (whole) state, killed the same way.
      if ((await ok(a, ["puddle", "pubkey"])).stdout.trim() === old) continue;
      const usb = `${base}/usb-${delay}`;
      copyIdentity(puddleDir(a), usb);
      Deno.mkdirSync(`${usb}/gitback/${id}`, { recursive: true });
      for (const name of ["project.json", "tokens.json", "delegations.json"]) {
        Deno.copyFileSync(
          `${gitbackDir(a)}/${id}/${name}`,
          `${usb}/gitback/${id}/${name}`,
        );
      }
      await killAfter(
        b,
        [
          "swarm",
          "puddle",
          "rekey",
          "--from-dir",
          usb,
        ],
        `${PASS}\n`,
        delay,
      );
      await assertWhole(b, id, { old });
    }
  });
});

Deno.test("a rotation committed but stopped before the projects changed is finished by the next command", async () => {
  await withUsers(async (a, b) => {
    await ok(a, ["puddle", "init"], `${PASS}\n${PASS}\n`);
    copyIdentity(puddleDir(a), puddleDir(b));
    const seed = await seedIn(puddleDir(a));
    const old = formatPublicKey(seedSigner(seed).publicKey);
    const id = await foundLocally(a, seedSigner(seed), "work");
    await foundLocally(b, seedSigner(seed), "work");
    seed.fill(0);
    // The library's commit, without the CLI's next step: exactly what a
    // kill right after the commit point leaves.
    let updates: unknown;
    const result = await rekeyPair(
      puddleDir(a),
      new TextEncoder().encode(PASS),
      async (oldKey, newKey) => {
        const plan = await planFounderRotation(gitbackDir(a), oldKey, newKey);
        updates = plan.updates;
        return { local: plan.updates, payload: plan.updates };
      },
    );
    result.newSeed.fill(0);
    assert.equal(readDelegations(gitbackDir(a), id).length, 0);
    const status = await ok(a, ["puddle", "status"]);
    assert.match(
      status.stdout,
      /finished: +the key rotation's project changes \(work\)/,
    );
    assert.equal(await assertWhole(a, id, { old }), "new");

    // The same on the second envoy: installed, projects not yet changed.
    const statements = JSON.parse(
      Deno.readTextFileSync(`${puddleDir(a)}/retired_puddles.json`),
    ).rotations.map((r: { statement: unknown }) => r.statement);
    await installRotation(puddleDir(b), {
      wrapped: Deno.readFileSync(`${puddleDir(a)}/identity.wrapped`),
      salt: Deno.readFileSync(`${puddleDir(a)}/identity.salt`),
      publicKey: result.publicKey,
      statements,
    }, updates);
    assert.equal(readDelegations(gitbackDir(b), id).length, 0);
    // A gitback command finishes it too.
    await ok(b, ["gitback", "project", "list"]);
    assert.equal(await assertWhole(b, id, { old }), "new");
  });
});
