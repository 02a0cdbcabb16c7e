import assert from "node:assert/strict";
import {
  BundleError,
  createBundle,
  ingestBundle,
  ingestBundleFile,
  MissingPrerequisites,
  withoutLocalPaths,
} from "./bundle.ts";

function git(...args: string[]): string {
  const out = new Deno.Command("git", {
    args,
    stdout: "piped",
    stderr: "piped",
    env: {
      GIT_AUTHOR_NAME: "T",
      GIT_AUTHOR_EMAIL: "t@example.invalid",
      GIT_COMMITTER_NAME: "T",
      GIT_COMMITTER_EMAIL: "t@example.invalid",
    },
  }).outputSync();
  if (!out.success) {
    throw new Error(
      `git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** Bytes ↔ a string of one character per byte, to edit a bundle's header. */
const asText = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => String.fromCharCode(b)).join("");
const asBytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** Asserts that `message` names no path of this machine. */
function assertNoLocalPath(message: string, dir: string, what: string) {
  const where = `${what}: ${JSON.stringify(message)}`;
  assert.ok(!message.includes("/tmp"), where);
  assert.ok(!message.includes(dir), where);
  assert.ok(!message.includes("vigo-bundle-"), where);
  assert.ok(!message.includes(".git"), where);
  // No absolute path at all (ref names such as refs/heads/x are fine).
  assert.doesNotMatch(message, /(^|[\s'"(=:])\//, where);
}

async function refusal(
  repo: string,
  bytes: Uint8Array,
): Promise<BundleError> {
  try {
    await ingestBundle(repo, bytes);
  } catch (error) {
    assert.ok(error instanceof BundleError, String(error));
    return error;
  }
  assert.fail("the bundle was accepted");
}

Deno.test("bundle refusals name no local path; the detail keeps git's account", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-bundle-test-" });
  try {
    const work = `${dir}/work`;
    git("init", "--quiet", "-b", "main", work);
    git("-C", work, "commit", "--quiet", "--allow-empty", "-m", "one");
    git("-C", work, "commit", "--quiet", "--allow-empty", "-m", "two");
    const source = `${dir}/source.git`;
    git("init", "--quiet", "--bare", source);
    git("-C", work, "push", "--quiet", source, "main");
    const spool = `${dir}/spool`;
    const full = (await createBundle(source, spool))!.bytes;
    // Written in the private directory it was given, and removed from it.
    assert.deepEqual([...Deno.readDirSync(spool)], []);
    assert.equal(Deno.statSync(spool).mode! & 0o777, 0o700);
    const text = asText(full);
    const head = git("-C", work, "rev-parse", "HEAD");
    const thinFile = `${dir}/thin.bundle`;
    git("-C", work, "bundle", "create", "--quiet", thinFile, "main", "^HEAD~1");
    const thin = Deno.readFileSync(thinFile);
    const target = `${dir}/target.git`;
    git("init", "--quiet", "--bare", target);

    // Checked before git sees it.
    for (
      const [what, bytes] of [
        ["garbage", new TextEncoder().encode("not a bundle at all")],
        ["truncated", full.subarray(0, full.length - 7)],
      ] as const
    ) {
      const error = await refusal(target, bytes);
      assert.match(error.message, /^not a valid git bundle/, what);
      assertNoLocalPath(error.message, dir, what);
    }

    // git names its temporary file or the repository in each of these.
    const cases: [string, string, Uint8Array, RegExp][] = [
      [
        "unknown version",
        target,
        asBytes(text.replace("# v2 git bundle", "# v9 git bundle")),
        /^not a valid git bundle: .*does not look like a v2 or v3 bundle/,
      ],
      [
        "a tip whose objects are missing",
        target,
        asBytes(text.replace(head, "1".repeat(40))),
        /^the bundle could not be applied: .*necessary objects/,
      ],
      [
        "no such repository",
        `${dir}/missing.git`,
        full,
        /^this envoy could not use its repository/,
      ],
    ];
    for (const [what, repo, bytes, reason] of cases) {
      const error = await refusal(repo, bytes);
      assert.match(error.message, reason, what);
      assertNoLocalPath(error.message, dir, what);
      // The full account, for the agent's own log, does name the path.
      assert.match(error.detail, /\/(tmp|vigo-bundle-)|\.git/, what);
    }

    // A good bundle still goes in; then one whose ref collides with it.
    assert.equal(await ingestBundle(target, full), 1);
    const collision = await refusal(
      target,
      asBytes(text.replace("refs/heads/main", "refs/heads/main/x")),
    );
    assert.match(collision.message, /^the bundle could not be applied: /);
    assert.match(collision.message, /refs\/heads\/main\/x/);
    assertNoLocalPath(collision.message, dir, "collision");
    assert.match(collision.detail, /vigo-bundle-/);

    // Missing prerequisites stay distinguishable (a 409, then a full bundle).
    const empty = `${dir}/empty.git`;
    git("init", "--quiet", "--bare", empty);
    const missing = await refusal(empty, thin);
    assert.ok(missing instanceof MissingPrerequisites);
    assertNoLocalPath(missing.message, dir, "prerequisites");
    assert.equal(await ingestBundle(target, thin), 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("withoutLocalPaths replaces known paths by labels and hides other absolute paths", () => {
  const known: [string, string][] = [
    ["/tmp/vigo-bundle-abc", "<bundle>"],
    ["/var/lib/vigo/swarm/gitback/projects/p.git", "<repository>"],
  ];
  assert.equal(
    withoutLocalPaths(
      "error: '/tmp/vigo-bundle-abc' does not look like a v2 or v3 bundle file",
      known,
    ),
    "'<bundle>' does not look like a v2 or v3 bundle file",
  );
  assert.equal(
    withoutLocalPaths(
      "fatal: cannot change to '/var/lib/vigo/swarm/gitback/projects/p.git/x'",
      known,
    ),
    "cannot change to '<repository>/x'",
  );
  assert.equal(
    withoutLocalPaths(
      "git -C failed: fatal: unable to read /srv/other/objects/pack\nerror: see file:///home/u/x, and 'refs/heads/a/b'",
    ),
    "unable to read <path> see <path>, and 'refs/heads/a/b'",
  );
  assert.equal(withoutLocalPaths("x".repeat(1000)).length, 301);
});

/**
 * A work tree whose only commit carries a `.gitmodules` that git's fsck
 * refuses (a submodule name climbing out with `../`, a url that is an
 * option), bundled; returns the bundle's path.
 */
export function maliciousSubmoduleBundle(dir: string): string {
  const work = `${dir}/evil-work`;
  git("init", "--quiet", "-b", "main", work);
  Deno.writeTextFileSync(
    `${work}/.gitmodules`,
    '[submodule "../../x"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/pwned\n',
  );
  git("-C", work, "add", ".gitmodules");
  git("-C", work, "commit", "--quiet", "-m", "evil");
  const file = `${dir}/evil.bundle`;
  git("-C", work, "bundle", "create", "--quiet", file, "--all");
  return file;
}

Deno.test("a bundle with a malicious .gitmodules fails git's fsck and lands nothing", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-bundle-test-" });
  try {
    const bundle = Deno.readFileSync(maliciousSubmoduleBundle(dir));
    const target = `${dir}/target.git`;
    git("init", "--quiet", "--bare", target);
    const error = await refusal(target, bundle);
    assert.match(error.message, /failed git's object checks \(fsck\)/);
    // Which object and which check: for the log, never for the peer.
    assert.doesNotMatch(error.message, /gitmodules|upload-pack|\.\.\//);
    assert.match(error.detail, /gitmodulesName/);
    assert.match(error.detail, /gitmodulesUrl/);
    assertNoLocalPath(error.message, dir, "fsck");
    assert.equal(git("-C", target, "for-each-ref"), "");
    assert.equal(
      git("-C", target, "count-objects", "-v").match(/^count: (\d+)/m)?.[1],
      "0",
    );
    assert.deepEqual(
      [...Deno.readDirSync(`${target}/objects/pack`)].map((e) => e.name),
      [],
    );
    // The same bundle goes through a plain `git fetch` (git 2.39 does not
    // fsck bundles even with transfer.fsckObjects): the check is ours.
    assert.equal(
      new Deno.Command("git", {
        args: [
          "-C",
          target,
          "-c",
          "transfer.fsckObjects=true",
          "fetch",
          "--quiet",
          `${dir}/evil.bundle`,
          "+refs/*:refs/*",
        ],
        stdout: "null",
        stderr: "null",
      }).outputSync().success,
      git("--version").includes("2.39"),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("ingestBundleFile streams a bundle from a file, header and pack checked", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-bundle-test-" });
  try {
    const work = `${dir}/work`;
    git("init", "--quiet", "-b", "main", work);
    Deno.writeTextFileSync(`${work}/f`, "one\n");
    git("-C", work, "add", "f");
    git("-C", work, "commit", "--quiet", "-m", "one");
    const file = `${dir}/good.bundle`;
    git("-C", work, "bundle", "create", "--quiet", file, "--all");
    const target = `${dir}/target.git`;
    git("init", "--quiet", "--bare", target);
    const bytes = Deno.readFileSync(file);
    // A truncated file is refused before git sees it.
    Deno.writeFileSync(
      `${dir}/cut.bundle`,
      bytes.subarray(0, bytes.length - 3),
    );
    await assert.rejects(
      ingestBundleFile(target, `${dir}/cut.bundle`),
      /truncated or corrupted/,
    );
    assert.equal(await ingestBundleFile(target, file), 1);
    assert.equal(
      git("-C", target, "rev-parse", "refs/heads/main"),
      git("-C", work, "rev-parse", "HEAD"),
    );
    assert.equal(await ingestBundleFile(target, file), 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
