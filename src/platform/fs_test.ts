import assert from "node:assert/strict";
import {
  assertPrivateFile,
  COMMIT_JOURNAL,
  commitFileSet,
  ensurePrivateDir,
  readFileBounded,
  recoverFileSet,
  withFileLock,
  writeFileAtomic,
} from "./fs.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const read = (path: string) => Deno.readTextFileSync(path);

Deno.test("writeFileAtomic creates the file with its final mode and no temp left", () => {
  const dir = Deno.makeTempDirSync();
  try {
    writeFileAtomic(`${dir}/secret`, bytes("one"), 0o600);
    assert.equal(read(`${dir}/secret`), "one");
    assert.equal(Deno.statSync(`${dir}/secret`).mode! & 0o777, 0o600);
    writeFileAtomic(`${dir}/secret`, bytes("two"), 0o600);
    assert.equal(read(`${dir}/secret`), "two");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["secret"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("ensurePrivateDir tightens a wide mode", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/p`, { mode: 0o755 });
    Deno.chmodSync(`${dir}/p`, 0o755);
    ensurePrivateDir(`${dir}/p`);
    assert.equal(Deno.statSync(`${dir}/p`).mode! & 0o777, 0o700);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("assertPrivateFile refuses group or world access", () => {
  const dir = Deno.makeTempDirSync();
  try {
    writeFileAtomic(`${dir}/k`, bytes("k"), 0o640);
    assert.throws(() => assertPrivateFile(`${dir}/k`), /chmod 600/);
    Deno.chmodSync(`${dir}/k`, 0o600);
    assertPrivateFile(`${dir}/k`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readFileBounded refuses oversized files", () => {
  const dir = Deno.makeTempDirSync();
  try {
    writeFileAtomic(`${dir}/big`, new Uint8Array(100), 0o600);
    assert.throws(() => readFileBounded(`${dir}/big`, 99), /more than the 99/);
    assert.equal(readFileBounded(`${dir}/big`, 100).length, 100);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("commitFileSet replaces every file and leaves no journal", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const outcome = commitFileSet(dir, [
      { name: "a", data: bytes("A1"), mode: 0o600 },
      { name: "b", data: bytes("B1"), mode: 0o644 },
    ]);
    assert.deepEqual(outcome, { finished: true });
    assert.equal(read(`${dir}/a`), "A1");
    assert.equal(read(`${dir}/b`), "B1");
    assert.equal(Deno.statSync(`${dir}/b`).mode! & 0o777, 0o644);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "a",
      "b",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const names = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("writeFileAtomic that fails leaves the target and no temp file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    writeFileAtomic(`${dir}/a`, bytes("A1"), 0o600);
    // A directory in the way makes the final rename fail (EISDIR).
    Deno.mkdirSync(`${dir}/d/x`, { recursive: true });
    assert.throws(() => writeFileAtomic(`${dir}/d`, bytes("D"), 0o600));
    assert.deepEqual(names(dir), ["a", "d"]);
    assert.equal(read(`${dir}/a`), "A1");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("commitFileSet that cannot write its journal throws and changes nothing", () => {
  const dir = Deno.makeTempDirSync();
  try {
    commitFileSet(dir, [{ name: "a", data: bytes("A1"), mode: 0o600 }]);
    Deno.mkdirSync(`${dir}/${COMMIT_JOURNAL}/x`, { recursive: true });
    assert.throws(() =>
      commitFileSet(dir, [{ name: "a", data: bytes("A2"), mode: 0o600 }])
    );
    assert.equal(read(`${dir}/a`), "A1");
    assert.deepEqual(names(dir), [COMMIT_JOURNAL, "a"], "no temp file");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("commitFileSet past its journal reports the change committed but unfinished; recovery finishes it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    commitFileSet(dir, [
      { name: "a", data: bytes("A1"), mode: 0o600 },
      { name: "b", data: bytes("B1"), mode: 0o600 },
    ]);
    // Replacing "b" fails after "a" was replaced: "b" is now a directory.
    Deno.removeSync(`${dir}/b`);
    Deno.mkdirSync(`${dir}/b/x`, { recursive: true });
    const outcome = commitFileSet(dir, [
      { name: "a", data: bytes("A2"), mode: 0o600 },
      { name: "b", data: bytes("B2"), mode: 0o600 },
    ]);
    assert.equal(outcome.finished, false);
    assert.ok(!outcome.finished && outcome.cause instanceof Error);
    assert.deepEqual(names(dir), [COMMIT_JOURNAL, "a", "b"], "no temp file");
    // Recovery that fails in the same way throws and keeps the journal.
    assert.throws(() => recoverFileSet(dir));
    assert.deepEqual(names(dir), [COMMIT_JOURNAL, "a", "b"]);
    Deno.removeSync(`${dir}/b`, { recursive: true });
    assert.equal(recoverFileSet(dir), true);
    assert.equal(read(`${dir}/a`), "A2");
    assert.equal(read(`${dir}/b`), "B2");
    assert.deepEqual(names(dir), ["a", "b"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "on a full disk, writeFileAtomic throws ENOSPC, keeps the old file and leaves no temp file",
  ignore: Deno.uid() !== 0,
  fn() {
    const dir = Deno.makeTempDirSync();
    const mount = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir],
    }).outputSync();
    assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
    try {
      writeFileAtomic(`${dir}/a`, bytes("A1"), 0o600);
      const filler = Deno.openSync(`${dir}/filler`, {
        write: true,
        createNew: true,
      });
      try {
        for (;;) filler.writeSync(new Uint8Array(4096));
      } catch (error) {
        assert.equal((error as { code?: string }).code, "ENOSPC");
      } finally {
        filler.close();
      }
      assert.throws(
        () => writeFileAtomic(`${dir}/a`, bytes("A2"), 0o600),
        (error: { code?: string }) => error.code === "ENOSPC",
      );
      assert.equal(read(`${dir}/a`), "A1");
      assert.deepEqual(names(dir), ["a", "filler"]);
    } finally {
      const umount = new Deno.Command("umount", { args: [dir] }).outputSync();
      Deno.removeSync(dir, { recursive: true });
      assert.ok(umount.success, new TextDecoder().decode(umount.stderr));
    }
  },
});

Deno.test("recoverFileSet rolls an interrupted commit forward", () => {
  const dir = Deno.makeTempDirSync();
  try {
    commitFileSet(dir, [
      { name: "a", data: bytes("A1"), mode: 0o600 },
      { name: "b", data: bytes("B1"), mode: 0o600 },
    ]);
    // A crash after the journal and the first file of a second commit were
    // written: the journal (built here byte by byte) holds A2 and B2.
    const journal = `${dir}/.commit-journal`;
    const encoder = new TextEncoder();
    const parts: number[] = [...encoder.encode("VGJ1"), 0, 0, 0, 2];
    for (const [name, data] of [["a", "A2"], ["b", "B2"]]) {
      parts.push(0, name.length, ...encoder.encode(name));
      parts.push(
        0,
        0,
        0o1,
        0o200,
        0,
        0,
        0,
        data.length,
        ...encoder.encode(data),
      );
    }
    writeFileAtomic(journal, new Uint8Array(parts), 0o600);
    writeFileAtomic(`${dir}/a`, bytes("A2"), 0o600);
    Deno.writeFileSync(`${dir}/.b.123.tmp`, bytes("partial"));
    assert.equal(read(`${dir}/b`), "B1");
    assert.equal(recoverFileSet(dir), true);
    assert.equal(read(`${dir}/a`), "A2");
    assert.equal(read(`${dir}/b`), "B2");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["a", "b"],
    );
    assert.equal(recoverFileSet(dir), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("recoverFileSet discards a journal that does not parse", () => {
  const dir = Deno.makeTempDirSync();
  try {
    writeFileAtomic(`${dir}/a`, bytes("A1"), 0o600);
    writeFileAtomic(
      `${dir}/.commit-journal`,
      bytes("VGJ1\0\0\0\x05garbage"),
      0o600,
    );
    assert.equal(recoverFileSet(dir), false);
    assert.equal(read(`${dir}/a`), "A1");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("withFileLock serializes writers", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const order: string[] = [];
    const slow = withFileLock(`${dir}/.lock`, async () => {
      order.push("a-start");
      await new Promise((r) => setTimeout(r, 100));
      order.push("a-end");
    });
    await new Promise((r) => setTimeout(r, 10));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const f = Deno.openSync(${
          JSON.stringify(`${dir}/.lock`)
        }, {read: true, write: true});
         await f.lock(true); console.log("b");`,
      ],
      stdout: "piped",
    }).output();
    await slow;
    order.push(new TextDecoder().decode((await child).stdout).trim());
    assert.deepEqual(order, ["a-start", "a-end", "b"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
