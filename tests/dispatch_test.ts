/**
 * One executable, several faces: the name it is invoked by picks the face.
 */

import assert from "node:assert/strict";
import { makeUserEnv, VIGO, vigo } from "./support/cli.ts";

Deno.test("invoked as vigo, the launcher runs the CLI", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-dispatch-" });
  try {
    const user = makeUserEnv(base);
    const version = await vigo(user.env, ["version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^vigo \d+\.\d+\.\d+$/m);
    const unknown = await vigo(user.env, ["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: unknown command "frobnicate"$/m);
    assert.match(unknown.stderr, /^hint: /m);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("a symlink named git-remote-gitback reaches the remote-helper face", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-dispatch-" });
  try {
    const user = makeUserEnv(base);
    const bin = `${base}/bin`;
    Deno.mkdirSync(bin);
    Deno.symlinkSync(VIGO, `${bin}/git-remote-gitback`);
    const helper = await vigo(
      user.env,
      ["origin", "gitback://abc/def"],
      "capabilities\n\n",
      `${bin}/git-remote-gitback`,
    );
    assert.equal(helper.code, 0, helper.stderr);
    assert.equal(helper.stdout, "connect\n\n");

    // git itself finds the helper on PATH for gitback:// URLs.
    const git = new Deno.Command("git", {
      args: ["ls-remote", "gitback://abc/def"],
      env: { ...user.env, PATH: `${bin}:${user.env.PATH}` },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    });
    const out = await git.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.success, false);
    assert.match(stderr, /error: gitback:\/\/abc\/def uses a friendly name/);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("the invocation name comes from --argv0= or, without it, the process", async () => {
  const { invocation } = await import("../main.ts");
  assert.deepEqual(
    await invocation(["--argv0=/x/git-remote-gitback", "origin", "url"]),
    { argv0: "/x/git-remote-gitback", args: ["origin", "url"] },
  );
  const plain = await invocation(["swarm", "--argv0=late"]);
  assert.deepEqual(plain.args, ["swarm", "--argv0=late"]);
  assert.notEqual(plain.argv0, "late");
});
