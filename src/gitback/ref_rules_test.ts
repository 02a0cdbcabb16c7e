/**
 * The role rule exists twice, as `refusedUpdates` (every receiver of a
 * signed ref state) and as `PRE_RECEIVE_HOOK` (inside `git receive-pack`).
 * One table of cases runs against both, on a real repository with real
 * commits and tags, so the two cannot drift apart.
 */

import assert from "node:assert/strict";
import { runCommand } from "../platform/process.ts";
import { git as runGit, GIT_ENV } from "../../tests/support/git.ts";
import type { Role } from "./tokens.ts";
import {
  installRoleHook,
  PRE_RECEIVE_HOOK,
  type RefUpdate,
  refUpdates,
  refusedUpdates,
} from "./ref_rules.ts";

const ZERO = "0".repeat(40);
/** An object id no repository here has. */
const UNKNOWN = "0123456789abcdef0123456789abcdef01234567";

/** Runs git with `GIT_ENV`; returns its output, trimmed. */
const git = (...args: string[]) => runGit(args);

/**
 * A work repository with commits c0 ← c1 ← c2 and x (a child of c0 beside
 * c1), and annotated tags t1 (at c1) and t2 (at c2).
 */
async function makeRepo(dir: string): Promise<Record<string, string>> {
  await git("init", "--quiet", "-b", "main", dir);
  const commit = async (message: string) => {
    await git("-C", dir, "commit", "--quiet", "--allow-empty", "-m", message);
    return await git("-C", dir, "rev-parse", "HEAD");
  };
  const c0 = await commit("c0");
  const c1 = await commit("c1");
  const c2 = await commit("c2");
  await git("-C", dir, "checkout", "--quiet", "-b", "side", c0);
  const x = await commit("x");
  await git("-C", dir, "tag", "-a", "-m", "t1", "t1", c1);
  await git("-C", dir, "tag", "-a", "-m", "t2", "t2", c2);
  const t1 = await git("-C", dir, "rev-parse", "refs/tags/t1");
  const t2 = await git("-C", dir, "rev-parse", "refs/tags/t2");
  assert.notEqual(t1, c1, "t1 is an annotated tag object");
  return { c0, c1, c2, x, t1, t2, unknown: UNKNOWN };
}

interface Case {
  what: string;
  ref: string;
  /** A name from {@link makeRepo}'s objects, or null for "absent". */
  old: string | null;
  new: string | null;
  member: boolean;
  admin: boolean;
}

const LONG_OK = "refs/heads/" + "a".repeat(255 - "refs/heads/".length);
const LONG_BAD = LONG_OK + "a";

/** `member` / `admin`: true when the role may make the update. */
// deno-fmt-ignore
const CASES: Case[] = [
  // Creation.
  { what: "branch creation", ref: "refs/heads/new", old: null, new: "c1", member: true, admin: true },
  { what: "branch creation on a side commit", ref: "refs/heads/topic", old: null, new: "x", member: true, admin: true },
  { what: "other namespace creation", ref: "refs/notes/commits", old: null, new: "c0", member: true, admin: true },
  // Fast-forward.
  { what: "fast-forward by one", ref: "refs/heads/ff", old: "c1", new: "c2", member: true, admin: true },
  { what: "fast-forward by two", ref: "refs/heads/ff2", old: "c0", new: "c2", member: true, admin: true },
  // Not a fast-forward.
  { what: "sideways move", ref: "refs/heads/sideways", old: "c1", new: "x", member: false, admin: true },
  { what: "rewind", ref: "refs/heads/rewind", old: "c2", new: "c1", member: false, admin: true },
  { what: "move from an object the repository lacks", ref: "refs/heads/unknown", old: "unknown", new: "c2", member: false, admin: true },
  // Deletion.
  { what: "branch deletion", ref: "refs/heads/gone", old: "c1", new: null, member: false, admin: true },
  // Tags.
  { what: "lightweight tag creation", ref: "refs/tags/v1", old: null, new: "c1", member: true, admin: true },
  { what: "annotated tag creation", ref: "refs/tags/v2", old: null, new: "t1", member: true, admin: true },
  { what: "tag move forward (lightweight)", ref: "refs/tags/v3", old: "c1", new: "c2", member: false, admin: true },
  { what: "tag move forward (annotated)", ref: "refs/tags/v4", old: "t1", new: "t2", member: false, admin: true },
  { what: "tag move back", ref: "refs/tags/v5", old: "c2", new: "c1", member: false, admin: true },
  { what: "tag deletion", ref: "refs/tags/v6", old: "t1", new: null, member: false, admin: true },
  // The envoys' own namespace.
  { what: "refs/gitback/ creation", ref: "refs/gitback/lost/0123456789abcdef/heads/main", old: null, new: "c1", member: false, admin: false },
  { what: "refs/gitback/ move", ref: "refs/gitback/x", old: "c1", new: "c2", member: false, admin: false },
  { what: "refs/gitback/ deletion", ref: "refs/gitback/y", old: "c1", new: null, member: false, admin: false },
  // Names outside the grammar.
  { what: "'..' in a name", ref: "refs/heads/a..b", old: null, new: "c1", member: false, admin: false },
  { what: "component led by '.'", ref: "refs/heads/.x", old: null, new: "c1", member: false, admin: false },
  { what: "tag led by '.'", ref: "refs/tags/.v", old: null, new: "c1", member: false, admin: false },
  { what: "first component led by '.'", ref: "refs/.x", old: null, new: "c1", member: false, admin: false },
  { what: "'.lock' name", ref: "refs/heads/x.lock", old: null, new: "c1", member: false, admin: false },
  { what: "'.lock' component", ref: "refs/heads/x.lock/y", old: null, new: "c1", member: false, admin: false },
  { what: "empty component", ref: "refs/heads//x", old: null, new: "c1", member: false, admin: false },
  { what: "empty first component", ref: "refs//x", old: null, new: "c1", member: false, admin: false },
  { what: "trailing slash", ref: "refs/heads/x/", old: null, new: "c1", member: false, admin: false },
  { what: "bare refs/", ref: "refs/", old: null, new: "c1", member: false, admin: false },
  { what: "a forbidden character", ref: "refs/heads/a:b", old: null, new: "c1", member: false, admin: false },
  { what: "a glob character", ref: "refs/heads/a*b", old: null, new: "c1", member: false, admin: false },
  { what: "outside refs/", ref: "HEAD", old: null, new: "c1", member: false, admin: false },
  { what: "deletion of a bad name", ref: "refs/heads/b..c", old: "c1", new: null, member: false, admin: false },
  { what: "255 bytes", ref: LONG_OK, old: null, new: "c1", member: true, admin: true },
  { what: "256 bytes", ref: LONG_BAD, old: null, new: "c1", member: false, admin: false },
];

const ROLES: Role[] = ["member", "admin"];

function update(c: Case, objects: Record<string, string>): RefUpdate {
  return {
    ref: c.ref,
    old: c.old === null ? null : objects[c.old],
    new: c.new === null ? null : objects[c.new],
  };
}

function hookLine(u: RefUpdate): string {
  return `${u.old ?? ZERO} ${u.new ?? ZERO} ${u.ref}\n`;
}

/** Runs the hook as git would: `GIT_DIR`, the role, one line per update. */
async function runHook(
  hooks: string,
  gitDir: string,
  role: Role,
  updates: RefUpdate[],
) {
  return await runCommand("sh", {
    args: ["pre-receive"],
    cwd: hooks,
    env: { PATH: GIT_ENV.PATH, GIT_DIR: gitDir, VIGO_ROLE: role },
    clearEnv: true,
    stdin: updates.map(hookLine).join(""),
  });
}

Deno.test("ref rules: the TS rule and the pre-receive hook agree on every case", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-ref-rules-" });
  try {
    const work = `${dir}/work`;
    const objects = await makeRepo(work);
    const hooks = `${dir}/hooks`;
    Deno.mkdirSync(hooks);
    Deno.writeTextFileSync(`${hooks}/pre-receive`, PRE_RECEIVE_HOOK);
    const gitDir = `${work}/.git`;
    assert.equal(new Set(CASES.map((c) => c.ref)).size, CASES.length);

    for (const role of ROLES) {
      await t.step(`${role}: one update at a time`, async () => {
        for (const c of CASES) {
          const u = update(c, objects);
          const expected = c[role];
          const ts = await refusedUpdates(work, [u], role);
          assert.equal(
            ts.length === 0,
            expected,
            `refusedUpdates, ${role}, ${c.what}: ${ts.join("; ")}`,
          );
          if (!expected) assert.ok(ts[0].startsWith(`${c.ref}: `), c.what);
          const hook = await runHook(hooks, gitDir, role, [u]);
          assert.equal(
            hook.code === 0,
            expected,
            `pre-receive, ${role}, ${c.what}: ${hook.stderr}`,
          );
          if (!expected) {
            assert.ok(hook.stderr.includes(`refused ${c.ref}: `), c.what);
          } else assert.equal(hook.stderr, "", c.what);
        }
      });

      await t.step(`${role}: all updates at once`, async () => {
        const updates = CASES.map((c) => update(c, objects));
        const ts = await refusedUpdates(work, updates, role);
        const hook = await runHook(hooks, gitDir, role, updates);
        const refused = CASES.filter((c) => !c[role]);
        assert.equal(hook.code === 0, refused.length === 0);
        for (const c of CASES) {
          assert.equal(
            ts.some((m) => m.startsWith(`${c.ref}: `)),
            !c[role],
            `refusedUpdates, ${role}, ${c.what}`,
          );
          assert.equal(
            hook.stderr.includes(`refused ${c.ref}: `),
            !c[role],
            `pre-receive, ${role}, ${c.what}`,
          );
        }
        assert.equal(ts.length, refused.length);
        assert.equal(
          hook.stderr.trim().split("\n").length,
          refused.length,
          hook.stderr,
        );
      });
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("ref rules: refUpdates lists creations, moves and deletions", () => {
  const before = new Map([
    ["refs/heads/a", "1".repeat(40)],
    ["refs/heads/b", "2".repeat(40)],
    ["refs/heads/same", "3".repeat(40)],
  ]);
  const after = new Map([
    ["refs/heads/b", "4".repeat(40)],
    ["refs/heads/c", "5".repeat(40)],
    ["refs/heads/same", "3".repeat(40)],
  ]);
  assert.deepEqual(refUpdates(before, after), [
    { ref: "refs/heads/a", old: "1".repeat(40), new: null },
    { ref: "refs/heads/b", old: "2".repeat(40), new: "4".repeat(40) },
    { ref: "refs/heads/c", old: null, new: "5".repeat(40) },
  ]);
});

Deno.test("ref rules: the installed hook refuses inside a real git push", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-ref-hook-" });
  try {
    const work = `${dir}/work`;
    const { c1, c2, x } = await makeRepo(work);
    const bare = `${dir}/bare.git`;
    await git("init", "--quiet", "--bare", bare);
    const hooks = installRoleHook(`${dir}/hooks`);
    assert.equal(Deno.statSync(`${hooks}/pre-receive`).mode! & 0o777, 0o755);
    assert.equal(
      Deno.readTextFileSync(`${hooks}/pre-receive`),
      PRE_RECEIVE_HOOK,
    );
    await git("-C", bare, "config", "core.hooksPath", hooks);
    const push = (role: Role, ...refspecs: string[]) =>
      runCommand("git", {
        args: ["-C", work, "push", "--porcelain", bare, ...refspecs],
        env: { ...GIT_ENV, VIGO_ROLE: role },
        clearEnv: true,
      });
    const tip = (ref: string) =>
      runCommand("git", {
        args: ["-C", bare, "rev-parse", "--verify", "-q", ref],
        env: GIT_ENV,
        clearEnv: true,
      }).then((out) => out.code === 0 ? out.stdout.trim() : null);

    assert.equal((await push("member", `${c1}:refs/heads/main`)).code, 0);
    assert.equal((await push("member", `${c2}:refs/heads/main`)).code, 0);
    const forced = await push("member", `+${x}:refs/heads/main`);
    assert.notEqual(forced.code, 0);
    assert.match(forced.stderr, /only an admin may force-update/);
    assert.equal(await tip("refs/heads/main"), c2);
    const deleted = await push("member", ":refs/heads/main");
    assert.notEqual(deleted.code, 0);
    assert.match(deleted.stderr, /only an admin may delete a ref/);
    assert.equal(await tip("refs/heads/main"), c2);

    assert.equal((await push("admin", `+${x}:refs/heads/main`)).code, 0);
    assert.equal(await tip("refs/heads/main"), x);
    assert.equal((await push("admin", ":refs/heads/main")).code, 0);
    assert.equal(await tip("refs/heads/main"), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
