import assert from "node:assert/strict";
import {
  assertPrivateFile,
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
    commitFileSet(dir, [
      { name: "a", data: bytes("A1"), mode: 0o600 },
      { name: "b", data: bytes("B1"), mode: 0o644 },
    ]);
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
