import assert from "node:assert/strict";
import {
  checkSessionDir,
  ensureSessionDir,
  inspectSessionDir,
} from "./session_dir.ts";
import { SessionError } from "./errors.ts";

const IS_ROOT = Deno.uid() === 0;
const ME = Deno.uid() ?? 0;

function withBase(fn: (base: string) => void): void {
  const base = Deno.makeTempDirSync({ prefix: "vigo-sdir-" });
  try {
    fn(base);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

Deno.test("inspectSessionDir accepts only the owner's real 0700 directory", () => {
  withBase((base) => {
    assert.deepEqual(inspectSessionDir(`${base}/none`, ME), {
      kind: "missing",
    });
    Deno.mkdirSync(`${base}/ok`, { mode: 0o700 });
    Deno.chmodSync(`${base}/ok`, 0o700);
    assert.equal(inspectSessionDir(`${base}/ok`, ME), null);
    Deno.chmodSync(`${base}/ok`, 0o711);
    assert.deepEqual(inspectSessionDir(`${base}/ok`, ME), {
      kind: "mode",
      mode: 0o711,
    });
    Deno.symlinkSync(`${base}/ok`, `${base}/link`);
    assert.deepEqual(inspectSessionDir(`${base}/link`, ME), {
      kind: "symlink",
      uid: ME,
      target: `${base}/ok`,
    });
    Deno.writeTextFileSync(`${base}/file`, "");
    assert.deepEqual(inspectSessionDir(`${base}/file`, ME), {
      kind: "not-directory",
      uid: ME,
    });
    assert.deepEqual(inspectSessionDir(`${base}/ok`, ME + 1), {
      kind: "foreign-owner",
      uid: ME,
    });
  });
});

Deno.test("checkSessionDir: missing is locked; the rest are refusals with hints", () => {
  withBase((base) => {
    assert.throws(
      () => checkSessionDir(`${base}/none`, ME),
      (error: unknown) => error instanceof SessionError && error.locked,
    );
    Deno.mkdirSync(`${base}/d`, { mode: 0o700 });
    Deno.symlinkSync(`${base}/d`, `${base}/link`);
    assert.throws(
      () => checkSessionDir(`${base}/link`, ME),
      (error: unknown) =>
        error instanceof SessionError && !error.locked &&
        /is a symbolic link/.test(error.message) &&
        /XDG_RUNTIME_DIR=\$\(mktemp -d\)/.test(error.hint ?? ""),
    );
  });
});

Deno.test("ensureSessionDir creates 0700 and tightens its owner's own directory", () => {
  withBase((base) => {
    ensureSessionDir(`${base}/run`);
    assert.equal(Deno.statSync(`${base}/run`).mode! & 0o777, 0o700);
    Deno.chmodSync(`${base}/run`, 0o755);
    ensureSessionDir(`${base}/run`);
    assert.equal(Deno.statSync(`${base}/run`).mode! & 0o777, 0o700);
    assert.throws(
      () => ensureSessionDir(`${base}/missing/run`),
      /parent directory does not exist/,
    );
    Deno.symlinkSync(`${base}/run`, `${base}/link`);
    assert.throws(() => ensureSessionDir(`${base}/link`), /symbolic link/);
  });
});

Deno.test({
  name: "ensureSessionDir refuses another user's directory and leaves it be",
  ignore: !IS_ROOT,
  fn: () => {
    withBase((base) => {
      Deno.mkdirSync(`${base}/theirs`, { mode: 0o777 });
      Deno.chmodSync(`${base}/theirs`, 0o777);
      Deno.chownSync(`${base}/theirs`, 65534, 65534);
      assert.throws(
        () => ensureSessionDir(`${base}/theirs`),
        (error: unknown) =>
          error instanceof SessionError &&
          error.message.includes(`${base}/theirs belongs to`) &&
          error.message.includes("(uid 65534)"),
      );
      const info = Deno.statSync(`${base}/theirs`);
      assert.equal(info.uid, 65534);
      assert.equal(info.mode! & 0o777, 0o777);
    });
  },
});
