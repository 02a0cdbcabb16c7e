import assert from "node:assert/strict";
import {
  OwnedDir,
  readOwnedFile,
  UserFileRefused,
  withOwnedDir,
} from "./user_files.ts";

const ME = Deno.uid() ?? 0;
const OTHER = 65534;
const IS_ROOT = ME === 0;

function mkfifo(path: string) {
  const out = new Deno.Command("mkfifo", { args: [path] }).outputSync();
  assert.ok(out.success, "mkfifo failed");
}

Deno.test("reads owned regular files and lists owned directories", () => {
  const home = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${home}/.state/p`, { recursive: true });
    Deno.writeTextFileSync(`${home}/.state/p/a.json`, '{"x":1}');
    const dir = OwnedDir.open(home, ME, ".state/p");
    try {
      assert.deepEqual(dir.readJson("a.json"), { x: 1 });
      assert.deepEqual(dir.list().map((e) => e.name), ["a.json"]);
      assert.ok(dir.has("a.json"));
      assert.ok(!dir.has("b.json"));
      assert.throws(() => dir.readFile("b.json", 10), Deno.errors.NotFound);
      assert.throws(() => dir.readFile("a.json", 3), UserFileRefused);
      assert.throws(() => dir.readFile("..", 10), UserFileRefused);
    } finally {
      dir.close();
    }
    assert.deepEqual(
      new TextDecoder().decode(
        readOwnedFile(`${home}/.state/p/a.json`, ME, 100),
      ),
      '{"x":1}',
    );
    assert.equal(
      withOwnedDir(home, ME, "missing/dir", () => "found", "fallback"),
      "fallback",
    );
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("a FIFO is refused at once instead of blocking", () => {
  const home = Deno.makeTempDirSync();
  try {
    mkfifo(`${home}/queue`);
    Deno.symlinkSync(`${home}/queue`, `${home}/link`);
    const dir = OwnedDir.open(home, ME);
    try {
      assert.throws(() => dir.readFile("queue", 10), UserFileRefused);
      assert.throws(() => dir.readFile("link", 10), UserFileRefused);
      assert.throws(() => dir.removeFile("queue"), UserFileRefused);
    } finally {
      dir.close();
    }
    assert.throws(
      () => readOwnedFile(`${home}/queue`, ME, 10),
      UserFileRefused,
    );
    assert.throws(() => readOwnedFile(`${home}/link`, ME, 10), UserFileRefused);
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("symlinked directories are not followed and nothing is removed through them", () => {
  const home = Deno.makeTempDirSync();
  const elsewhere = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${elsewhere}/revoke.pending`, "[]");
    Deno.symlinkSync(elsewhere, `${home}/.state`);
    assert.throws(() => OwnedDir.open(home, ME, ".state"), UserFileRefused);
    const dir = OwnedDir.open(home, ME);
    try {
      assert.throws(() => dir.dir(".state"), UserFileRefused);
      assert.throws(() => dir.removeFile(".state"), UserFileRefused);
    } finally {
      dir.close();
    }
    assert.equal(Deno.readTextFileSync(`${elsewhere}/revoke.pending`), "[]");
  } finally {
    Deno.removeSync(home, { recursive: true });
    Deno.removeSync(elsewhere, { recursive: true });
  }
});

Deno.test({
  name: "files and directories owned by someone else are refused",
  ignore: !IS_ROOT,
  fn: () => {
    const home = Deno.makeTempDirSync();
    try {
      Deno.mkdirSync(`${home}/theirs`);
      Deno.chownSync(`${home}/theirs`, OTHER, OTHER);
      Deno.writeTextFileSync(`${home}/file`, "x");
      Deno.chownSync(`${home}/file`, OTHER, OTHER);
      assert.throws(() => OwnedDir.open(home, ME, "theirs"), UserFileRefused);
      assert.throws(() => OwnedDir.open(home, OTHER), UserFileRefused);
      const dir = OwnedDir.open(home, ME);
      try {
        assert.throws(() => dir.readFile("file", 10), UserFileRefused);
        assert.throws(() => dir.removeFile("file"), UserFileRefused);
        assert.equal(dir.removeEmptyDir("theirs"), false);
      } finally {
        dir.close();
      }
      assert.ok(Deno.statSync(`${home}/file`).isFile);
      assert.ok(Deno.statSync(`${home}/theirs`).isDirectory);
    } finally {
      Deno.removeSync(home, { recursive: true });
    }
  },
});

Deno.test("removeFile and removeEmptyDir act only on owned entries", () => {
  const home = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${home}/empty`);
    Deno.mkdirSync(`${home}/full`);
    Deno.writeTextFileSync(`${home}/full/x`, "x");
    Deno.writeTextFileSync(`${home}/gone`, "x");
    const dir = OwnedDir.open(home, ME);
    try {
      assert.equal(dir.removeFile("gone"), true);
      assert.equal(dir.removeFile("gone"), false);
      assert.equal(dir.removeEmptyDir("empty"), true);
      assert.equal(dir.removeEmptyDir("full"), false);
    } finally {
      dir.close();
    }
    assert.ok(Deno.statSync(`${home}/full/x`).isFile);
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});
