/**
 * Identity changes on a full disk: the outcome `init` and
 * `rotate-passphrase` report must match what takes effect once space
 * returns. The commit point is the commit journal being in place
 * (docs/formats.md): before it a failure changes nothing, after it the
 * change stands and the next puddle command finishes replacing the files.
 *
 * HOME is a 1 MiB tmpfs (mounting needs root). tmpfs charges whole 4 KiB
 * pages, and every file the CLI writes here (journal, salt, wrapped key,
 * public key) is far under a page, so leaving exactly one page free lets the
 * journal be written and makes the first file replacement after it fail.
 */

import assert from "node:assert/strict";
import {
  killSessionHelper,
  makeUserEnv,
  type UserEnv,
  vigo,
} from "./support/cli.ts";
import { runCommand } from "../src/platform/process.ts";

const isRoot = Deno.uid() === 0;
const PAGE = 4096;
const OLD = "old horse battery staple";
const NEW = "new horse battery staple";

const puddle = (user: UserEnv) => `${user.home}/.vigo-puddle`;
const journal = (user: UserEnv) => `${puddle(user)}/.commit-journal`;

/** Free whole pages on the filesystem holding `dir`, as `stat -f` reports. */
async function freePages(dir: string): Promise<number> {
  const out = await runCommand("stat", { args: ["-f", "-c", "%a %S", dir] });
  assert.equal(out.code, 0, out.stderr);
  const [available, blockSize] = out.stdout.trim().split(" ").map(Number);
  assert.equal(blockSize, PAGE);
  return available;
}

/** Space taken on purpose, given back page by page or all at once. */
interface Filler {
  /** Frees exactly one page. */
  freePage(): void;
  /** Frees everything the filler took. */
  freeAll(): void;
}

/**
 * Fills the filesystem holding `home` until the kernel answers ENOSPC. One-
 * page spare files are written first, so that a page can be freed exactly.
 */
async function fillDisk(home: string, spares: number): Promise<Filler> {
  const spareFiles: string[] = [];
  for (let i = 0; i < spares; i++) {
    const path = `${home}/spare-${i}`;
    Deno.writeFileSync(path, new Uint8Array(PAGE));
    spareFiles.push(path);
  }
  const fillerPath = `${home}/filler`;
  const filler = Deno.openSync(fillerPath, { write: true, createNew: true });
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) filler.writeSync(chunk);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOSPC") throw error;
  } finally {
    filler.close();
  }
  assert.equal(await freePages(home), 0, "the disk is full");
  return {
    freePage() {
      Deno.removeSync(spareFiles.pop()!);
    },
    freeAll() {
      for (const path of spareFiles.splice(0)) Deno.removeSync(path);
      Deno.removeSync(fillerPath);
    },
  };
}

/** A user whose HOME is a fresh 1 MiB tmpfs, unmounted afterwards. */
async function withSmallHome(
  fn: (user: UserEnv) => Promise<void>,
): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "vigo-fulldisk-" });
  const user = makeUserEnv(base);
  const mount = await runCommand("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", user.home],
  });
  assert.equal(mount.code, 0, mount.stderr);
  try {
    await fn(user);
  } finally {
    await vigo(user.env, ["swarm", "puddle", "lock"]);
    await killSessionHelper(user.home);
    const umount = await runCommand("umount", { args: [user.home] });
    Deno.removeSync(base, { recursive: true });
    assert.equal(umount.code, 0, umount.stderr);
  }
}

async function init(user: UserEnv) {
  return await vigo(
    user.env,
    ["swarm", "puddle", "init"],
    `${OLD}\n${OLD}\n`,
  );
}

async function rotate(user: UserEnv) {
  return await vigo(
    user.env,
    ["swarm", "puddle", "rotate-passphrase"],
    `${OLD}\n${NEW}\n${NEW}\n`,
  );
}

async function unlock(user: UserEnv, passphrase: string) {
  return await vigo(
    user.env,
    ["swarm", "puddle", "unlock"],
    `${passphrase}\n`,
  );
}

/** Names in the puddle directory, without the lock file. */
function puddleNames(user: UserEnv): string[] {
  try {
    return [...Deno.readDirSync(puddle(user))].map((e) => e.name)
      .filter((name) => name !== ".lock").sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

function assertNoTempFiles(user: UserEnv): void {
  assert.deepEqual(
    puddleNames(user).filter((name) => name.endsWith(".tmp")),
    [],
    "no temp file is left behind",
  );
}

/** Asserts `passphrase` unlocks, then locks again. */
async function assertUnlocks(user: UserEnv, passphrase: string) {
  const result = await unlock(user, passphrase);
  assert.equal(result.code, 0, result.stderr);
  const lock = await vigo(user.env, ["swarm", "puddle", "lock"]);
  assert.equal(lock.code, 0, lock.stderr);
}

async function assertRefused(user: UserEnv, passphrase: string) {
  const result = await unlock(user, passphrase);
  assert.equal(result.code, 1, result.stdout);
  assert.match(result.stderr, /^error: the passphrase is wrong/m);
}

Deno.test({
  name:
    "rotate-passphrase that commits on a nearly full disk reports success, and only the new passphrase works once space returns",
  ignore: !isRoot,
  async fn() {
    await withSmallHome(async (user) => {
      assert.equal((await init(user)).code, 0);
      const oldSalt = Deno.readFileSync(`${puddle(user)}/identity.salt`);
      const disk = await fillDisk(user.home, 1);
      disk.freePage();
      assert.equal(await freePages(user.home), 1);

      const result = await rotate(user);
      // The journal took the free page, so the change is committed.
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Passphrase changed/);
      assert.match(result.stderr, /^warning: .*committed/m);
      assert.match(result.stderr, /No space left on device/);
      assert.doesNotMatch(result.stderr, /^error:/m);
      assert.ok(puddleNames(user).includes(".commit-journal"));
      assertNoTempFiles(user);

      // While the disk stays full, nothing can be unlocked, and the error
      // says why instead of blaming the passphrase.
      const stuck = await unlock(user, NEW);
      assert.equal(stuck.code, 1);
      assert.match(stuck.stderr, /^error: .*committed but not finished/m);
      assert.match(stuck.stderr, /^hint: .*free space/m);
      assertNoTempFiles(user);

      disk.freeAll();
      await assertRefused(user, OLD);
      assert.throws(() => Deno.statSync(journal(user)));
      assert.notDeepEqual(
        Deno.readFileSync(`${puddle(user)}/identity.salt`),
        oldSalt,
      );
      await assertUnlocks(user, NEW);
      assert.deepEqual(puddleNames(user), [
        "identity.pub",
        "identity.salt",
        "identity.wrapped",
      ]);
    });
  },
});

Deno.test({
  name:
    "rotate-passphrase on a full disk reports failure, changes nothing and keeps the old passphrase",
  ignore: !isRoot,
  async fn() {
    await withSmallHome(async (user) => {
      assert.equal((await init(user)).code, 0);
      const names = puddleNames(user);
      const salt = Deno.readFileSync(`${puddle(user)}/identity.salt`);
      const wrapped = Deno.readFileSync(`${puddle(user)}/identity.wrapped`);
      const disk = await fillDisk(user.home, 0);

      const result = await rotate(user);
      assert.equal(result.code, 1, result.stdout);
      assert.doesNotMatch(result.stdout, /Passphrase changed/);
      assert.match(result.stderr, /^error: .*No space left on device/m);
      assert.match(result.stderr, /nothing was changed/);
      assert.match(result.stderr, /^hint: .*current passphrase still works/m);
      assert.deepEqual(puddleNames(user), names, "no journal, no temp file");
      assert.deepEqual(
        Deno.readFileSync(`${puddle(user)}/identity.salt`),
        salt,
      );
      assert.deepEqual(
        Deno.readFileSync(`${puddle(user)}/identity.wrapped`),
        wrapped,
      );

      disk.freeAll();
      await assertRefused(user, NEW);
      await assertUnlocks(user, OLD);
    });
  },
});

Deno.test({
  name:
    "init that commits on a nearly full disk reports success, and the identity works once space returns",
  ignore: !isRoot,
  async fn() {
    await withSmallHome(async (user) => {
      const disk = await fillDisk(user.home, 1);
      disk.freePage();
      const result = await init(user);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Puddle initialized/);
      assert.match(result.stderr, /^warning: .*committed/m);
      const pub = result.stdout.match(/pubkey: (ed25519:[0-9a-f]{64})/)?.[1];
      assert.ok(pub, result.stdout);
      assert.ok(puddleNames(user).includes(".commit-journal"));
      assertNoTempFiles(user);

      disk.freeAll();
      const shown = await vigo(user.env, ["swarm", "puddle", "pubkey"]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal(shown.stdout.trim(), pub);
      await assertUnlocks(user, OLD);
      assert.deepEqual(puddleNames(user), [
        "identity.pub",
        "identity.salt",
        "identity.wrapped",
      ]);
    });
  },
});

Deno.test({
  name: "init on a full disk reports failure and leaves no identity",
  ignore: !isRoot,
  async fn() {
    await withSmallHome(async (user) => {
      const disk = await fillDisk(user.home, 0);
      const result = await init(user);
      assert.equal(result.code, 1, result.stdout);
      assert.doesNotMatch(result.stdout, /Puddle initialized/);
      assert.match(result.stderr, /^error: .*No space left on device/m);
      assert.match(result.stderr, /nothing was written/);
      assert.deepEqual(puddleNames(user), [], "no journal, no temp file");

      disk.freeAll();
      const status = await vigo(user.env, [
        "swarm",
        "puddle",
        "status",
        "--json",
      ]);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(JSON.parse(status.stdout).initialized, false);
      assert.equal((await init(user)).code, 0);
      await assertUnlocks(user, OLD);
    });
  },
});
