/**
 * One executable, several faces: the name it is invoked by picks the face.
 */

import assert from "node:assert/strict";
import { makeUserEnv, VIGO, vigo } from "./support/cli.ts";
import { SWARM_GROUP, VIGO_GROUP } from "../main.ts";
import type { VerbGroup } from "../src/cli/dispatch.ts";
import { PUDDLE_GROUP } from "../src/cli/puddle.ts";
import { GITBACK_GROUP } from "../src/cli/gitback.ts";
import { PROJECT_GROUP } from "../src/cli/gitback_project.ts";
import { CONFIG_GROUP } from "../src/cli/config.ts";
import { AGENT_GROUP } from "../src/cli/agent.ts";
import { SERVER_GROUP } from "../src/cli/server.ts";
import { CA_GROUP } from "../src/cli/ca.ts";

/** Every verb group, with the arguments that reach it. */
const GROUPS: [string[], VerbGroup][] = [
  [[], VIGO_GROUP],
  [["swarm"], SWARM_GROUP],
  [["swarm", "puddle"], PUDDLE_GROUP],
  [["swarm", "gitback"], GITBACK_GROUP],
  [["swarm", "gitback", "project"], PROJECT_GROUP],
  [["config"], CONFIG_GROUP],
  [["agent"], AGENT_GROUP],
  [["server"], SERVER_GROUP],
  [["ca"], CA_GROUP],
];

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
    // The remote-helper face answered: it tried the friendly name.
    assert.match(stderr, /error: no puddle claims the name abc/);
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

Deno.test("every verb group prints its usage for help, --help and -h and exits 0", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-dispatch-" });
  try {
    const user = makeUserEnv(base);
    for (const [path, group] of GROUPS) {
      assert.equal(group.command, ["vigo", ...path].join(" "));
      for (const word of ["help", "--help", "-h"]) {
        const out = await vigo(user.env, [...path, word]);
        const what = `vigo ${[...path, word].join(" ")}`;
        assert.equal(out.code, 0, `${what}: ${out.stderr}`);
        assert.equal(out.stdout, `${group.usage}\n`, what);
        assert.equal(out.stderr, "", what);
      }
    }
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("every verb group names `<group> help` for an unknown verb and exits 2 without one", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-dispatch-" });
  try {
    const user = makeUserEnv(base);
    // `vigo agent` takes flags, not verbs: without any it runs the agent.
    for (const [path, group] of GROUPS.filter(([, g]) => !g.fallback)) {
      const unknown = await vigo(user.env, [...path, "frobnicate"]);
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.equal(
        unknown.stderr,
        `error: unknown ${group.noun} "frobnicate"\n` +
          `hint: run \`${group.command} help\` for the list.\n`,
      );
      const none = await vigo(user.env, path);
      assert.equal(none.code, 2, none.stderr);
      if (group.missingVerb === undefined) {
        assert.equal(none.stdout, `${group.usage}\n`);
      } else {
        assert.equal(none.stdout, "");
        assert.match(none.stderr, /^error: `vigo \w+` needs a/);
      }
    }
    const agent = await vigo(user.env, ["agent", "now"]);
    assert.equal(agent.code, 2);
    assert.match(agent.stderr, /unexpected argument "now"/);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
