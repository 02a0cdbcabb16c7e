/**
 * Applying signed ref states to a real bare repository: states signed with
 * in-process keys (a founder, who is admin, and a member), verified as a
 * receiver verifies them, and applied over real commits and tags.
 */

import assert from "node:assert/strict";
import { git as runGit, GIT_ENV } from "../../tests/support/git.ts";
import { projectId as makeProjectId } from "./project_id.ts";
import { applyRefStates, lostRefName, RefStateRefused } from "./ref_apply.ts";
import {
  nextRefStateBody,
  readRefStates,
  type RefStateBody,
  refStatesPath,
  signRefState,
  type VerifiedRefState,
  verifyRefState,
} from "./ref_state.ts";
import { mintBootstrapToken, mintChildToken } from "./tokens.ts";
import { generateSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";

/** Fixed dates: every repository made here has the same object ids. */
const DATED_GIT_ENV = {
  ...GIT_ENV,
  GIT_AUTHOR_DATE: "1800000000 +0000",
  GIT_COMMITTER_DATE: "1800000000 +0000",
};

/** Runs git with {@link DATED_GIT_ENV}; returns its output, trimmed. */
const git = (args: string[], stdin?: string) =>
  runGit(args, { env: DATED_GIT_ENV, stdin });

const MAIN = "refs/heads/main";
const FEATURE = "refs/heads/feature";
const T1 = "refs/tags/t1";

const founder = seedSigner(generateSeed());
const member = seedSigner(generateSeed());
const HANDLE = "ref-apply";
const PROJECT = await makeProjectId(founder.publicKey, HANDLE);
const ROOT = await mintBootstrapToken(founder, HANDLE);
const ADMIN_CHAIN: unknown[] = [ROOT];
const MEMBER_CHAIN: unknown[] = [
  ROOT,
  await mintChildToken(founder, [ROOT], {
    subject: member.publicKey,
    role: "member",
  }),
];

/** A parent id no receiver here has seen. */
const UNKNOWN_PARENT = "ab".repeat(32);

/**
 * A bare repository with commits c0 ← c1 ← … ← c5, x (a child of c0
 * beside c1), y (a child of c1 beside c2) and an annotated tag object t1
 * at c1, and no refs but what the test sets.
 */
async function makeRepo(dir: string) {
  await git(["init", "--quiet", "--bare", dir]);
  const commit = async (message: string, parent: string | null) => {
    const blob = await git(
      ["-C", dir, "hash-object", "-w", "--stdin"],
      `${message}\n`,
    );
    const tree = await git(["-C", dir, "mktree"], `100644 blob ${blob}\tf\n`);
    return await git([
      "-C",
      dir,
      "commit-tree",
      tree,
      ...(parent ? ["-p", parent] : []),
      "-m",
      message,
    ]);
  };
  const c: string[] = [];
  for (let i = 0; i <= 5; i++) c.push(await commit(`c${i}`, c[i - 1] ?? null));
  const x = await commit("x (beside c1)", c[0]);
  const y = await commit("y (beside c2)", c[1]);
  const t1 = await git(
    ["-C", dir, "mktag"],
    `object ${
      c[1]
    }\ntype commit\ntag t1\ntagger T <t@example.invalid> 1800000000 +0000\n\nt1\n`,
  );
  return { c, x, y, t1 };
}

/** Runs `fn` with a fresh repository, removed afterwards. */
async function withRepo(
  fn: (
    repo: string,
    objects: Awaited<ReturnType<typeof makeRepo>>,
  ) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-ref-apply-" });
  try {
    const repo = `${dir}/r.git`;
    await fn(repo, await makeRepo(repo));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Every ref of `repo`, lost refs included. */
async function refsOf(repo: string): Promise<Record<string, string>> {
  const text = await git([
    "-C",
    repo,
    "for-each-ref",
    "--format=%(objectname) %(refname)",
  ]);
  return Object.fromEntries(
    text.split("\n").filter((l) => l !== "").map((l) => {
      const [id, ref] = l.split(" ");
      return [ref, id];
    }),
  );
}

/** A state signed by `signer` and verified as a receiver verifies it. */
async function state(
  signer: Signer,
  parent: VerifiedRefState | null,
  refs: Record<string, string>,
  fields: Partial<RefStateBody> = {},
): Promise<VerifiedRefState> {
  const body = {
    ...nextRefStateBody({
      projectId: PROJECT,
      parent,
      refs: new Map(Object.entries(refs)),
      signer: signer.publicKey,
      now: 1_800_000_000,
    }),
    ...fields,
  };
  const chain = signer === founder ? ADMIN_CHAIN : MEMBER_CHAIN;
  return await verifyRefState(await signRefState(signer, body, chain), {
    projectId: PROJECT,
  });
}

/**
 * A member's and an admin's state, both following `parent`, with the
 * member's id the smaller: by ids alone the member's would win.
 */
async function siblings(
  parent: VerifiedRefState,
  memberRefs: Record<string, string>,
  adminRefs: Record<string, string>,
) {
  const byAdmin = await state(founder, parent, adminRefs);
  for (let at = 1_800_000_000;; at++) {
    const byMember = await state(member, parent, memberRefs, { at });
    if (byMember.id < byAdmin.id) return { byMember, byAdmin };
  }
}

function isRefused(message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof RefStateRefused, String(error));
    assert.match(error.message, message);
    return true;
  };
}

/** Asserts that applying `states` is refused and changes nothing. */
async function refused(
  repo: string,
  states: VerifiedRefState[],
  message: RegExp,
  what: string,
): Promise<void> {
  const refs = await refsOf(repo);
  const record = Deno.readTextFileSync(refStatesPath(repo));
  await assert.rejects(applyRefStates(repo, states), isRefused(message), what);
  assert.deepEqual(await refsOf(repo), refs, what);
  assert.equal(Deno.readTextFileSync(refStatesPath(repo)), record, what);
}

Deno.test("apply: a member's state must follow a state the receiver knows; an admin's need not", async () => {
  await withRepo(async (repo, { c }) => {
    const s1 = await state(founder, null, { [MAIN]: c[1], [FEATURE]: c[1] });
    await applyRefStates(repo, [s1]);
    assert.deepEqual(await refsOf(repo), s1.body.refs);

    // A fast-forward a member could make after s1, but naming a parent
    // this receiver never saw: judged against a parent it cannot check.
    const gap = await state(member, null, { [MAIN]: c[2], [FEATURE]: c[1] }, {
      seq: 2,
      parent: UNKNOWN_PARENT,
    });
    await refused(repo, [gap], /does not know/, "a member over a gap");
    // Far ahead of everything, it would freeze the project: no later
    // state could ever rank above it.
    for (const seq of [Number.MAX_SAFE_INTEGER, 1_000_000]) {
      const freeze = await state(member, null, s1.body.refs, {
        seq,
        parent: UNKNOWN_PARENT,
      });
      await refused(repo, [freeze], /does not know/, `a member at ${seq}`);
      // Beside an honest state, the honest one is applied first.
      const next = await state(member, s1, { [MAIN]: c[2], [FEATURE]: c[1] });
      await assert.rejects(
        applyRefStates(repo, [freeze, next]),
        isRefused(/does not know/),
      );
      assert.equal(readRefStates(repo).current?.id, next.id);
      // Reset for the next round: s1 current again.
      await git(["-C", repo, "update-ref", MAIN, c[1]]);
      Deno.removeSync(refStatesPath(repo));
      await applyRefStates(repo, [s1]);
    }
    assert.equal(readRefStates(repo).current?.id, s1.id);

    // An admin's state may follow a state this receiver does not know.
    const admin = await state(
      founder,
      null,
      { [MAIN]: c[3], [FEATURE]: c[1] },
      { seq: 5, parent: UNKNOWN_PARENT },
    );
    const outcome = await applyRefStates(repo, [admin]);
    assert.equal(outcome.current?.id, admin.id);
    assert.deepEqual(outcome.lost, [], "c1 is inside c3: nothing is lost");
    assert.deepEqual(await refsOf(repo), admin.body.refs);
    // States after it chain normally, a member's included.
    const m6 = await state(member, admin, { [MAIN]: c[4], [FEATURE]: c[1] });
    const m7 = await state(member, m6, {
      [MAIN]: c[5],
      [FEATURE]: c[1],
      [T1]: c[1],
    });
    assert.deepEqual([m6.body.seq, m7.body.seq], [6, 7]);
    await applyRefStates(repo, [m7, m6]);
    assert.deepEqual(await refsOf(repo), m7.body.refs);
    const stored = readRefStates(repo);
    assert.equal(stored.current?.id, m7.id);
    assert.deepEqual(
      stored.recent.map((s) => s.id),
      [s1.id, admin.id, m6.id],
    );
  });
});

Deno.test("apply: a member's state over a gap is refused however it is delivered", async () => {
  await withRepo(async (repo, { c }) => {
    const s1 = await state(founder, null, { [MAIN]: c[1] });
    const s2 = await state(member, s1, { [MAIN]: c[2] });
    const s3 = await state(member, s2, { [MAIN]: c[3] });
    await applyRefStates(repo, [s1]);
    // s3 without s2: s2 is the state between.
    await refused(repo, [s3], /does not know/, "s3 alone");
    // With s2 in the same delivery (in any order), both apply.
    await applyRefStates(repo, [s3, s2]);
    assert.equal(readRefStates(repo).current?.id, s3.id);
    assert.deepEqual(await refsOf(repo), { [MAIN]: c[3] });
  });
});

Deno.test("apply: at equal seq the admin's state wins over the member's, in either order", async () => {
  const outcomes: unknown[] = [];
  for (const order of ["member first", "admin first", "together"]) {
    await withRepo(async (repo, { c, y }) => {
      const k1 = await state(founder, null, { [MAIN]: c[1] });
      // Two fast-forwards of k1, pushed on two envoys at once.
      const { byMember, byAdmin } = await siblings(
        k1,
        { [MAIN]: c[2] },
        { [MAIN]: y },
      );
      assert.equal(byMember.body.seq, byAdmin.body.seq);
      assert.ok(byMember.id < byAdmin.id, "the member's id is the smaller");
      await applyRefStates(repo, [k1]);
      if (order === "member first") {
        await applyRefStates(repo, [byMember]);
        await applyRefStates(repo, [byAdmin]);
      } else if (order === "admin first") {
        await applyRefStates(repo, [byAdmin]);
        await applyRefStates(repo, [byMember]);
      } else {
        await applyRefStates(repo, [byMember, byAdmin]);
      }
      const refs = await refsOf(repo);
      assert.deepEqual(
        refs,
        { [MAIN]: y, [lostRefName(byMember, MAIN)]: c[2] },
        order,
      );
      const stored = readRefStates(repo);
      assert.equal(stored.current?.id, byAdmin.id, order);
      assert.deepEqual(
        stored.recent.map((s) => s.id),
        [k1.id, byMember.id],
        order,
      );
      // The loser again changes nothing.
      await applyRefStates(repo, [byMember]);
      assert.deepEqual(await refsOf(repo), refs, `${order}, loser again`);
      // The next state follows the admin's, on every replica alike: here
      // the member takes up its lost tip as a branch.
      const next = await state(member, byAdmin, {
        [MAIN]: y,
        "refs/heads/mine": c[2],
      });
      await applyRefStates(repo, [next]);
      assert.equal(readRefStates(repo).current?.id, next.id, order);
      outcomes.push({ refs, current: stored.current?.id });
    });
  }
  // Same keys, same objects, same states: the replicas end identical.
  assert.deepEqual(outcomes[1], outcomes[0]);
  assert.deepEqual(outcomes[2], outcomes[0]);
});

Deno.test("apply: a repository with refs and no signed state judges the first state by its refs", async () => {
  await withRepo(async (repo, { c, x, t1 }) => {
    // As a repository from before signed states: refs, no vigo-refs.json.
    const held = { [MAIN]: c[2], [FEATURE]: c[1], [T1]: t1 };
    for (const [ref, id] of Object.entries(held)) {
      await git(["-C", repo, "update-ref", ref, id]);
    }
    const none = async (
      refs: Record<string, string>,
      message: RegExp,
      what: string,
    ) => {
      const first = await state(member, null, refs);
      assert.equal(first.body.seq, 1);
      assert.equal(first.body.parent, null);
      await assert.rejects(
        applyRefStates(repo, [first]),
        isRefused(message),
        what,
      );
      assert.deepEqual(await refsOf(repo), held, what);
      assert.equal(readRefStates(repo).current, null, what);
    };
    // As a first state each would be all creations; against the refs held
    // each undoes something only an admin may undo.
    await none({ ...held, [MAIN]: c[1] }, /force-update/, "main rewound");
    await none({ ...held, [MAIN]: x }, /force-update/, "main forced");
    const { [FEATURE]: _, ...noFeature } = held;
    await none(noFeature, /delete/, "feature deleted");
    await none({}, /delete/, "everything deleted");
    await none({ ...held, [T1]: c[1] }, /tag/, "tag moved");
    // Following a parent it made up, the member fares no better.
    await assert.rejects(
      applyRefStates(repo, [
        await state(member, null, { ...held, [MAIN]: c[1] }, {
          seq: 9,
          parent: UNKNOWN_PARENT,
        }),
      ]),
      isRefused(/force-update/),
    );
    assert.deepEqual(await refsOf(repo), held);

    // Creations and fast-forwards only: taken, exactly.
    const ok = await state(member, null, {
      ...held,
      [MAIN]: c[4],
      "refs/heads/new": c[1],
    });
    const outcome = await applyRefStates(repo, [ok]);
    assert.equal(outcome.current?.id, ok.id);
    assert.deepEqual(outcome.lost, []);
    assert.deepEqual(await refsOf(repo), ok.body.refs);
  });
  // An admin's first state may rewind and delete; what it drops is kept.
  await withRepo(async (repo, { c, x }) => {
    await git(["-C", repo, "update-ref", MAIN, c[2]]);
    await git(["-C", repo, "update-ref", FEATURE, c[1]]);
    const first = await state(founder, null, { [MAIN]: x });
    const outcome = await applyRefStates(repo, [first]);
    assert.equal(outcome.current?.id, first.id);
    assert.deepEqual(await refsOf(repo), {
      [MAIN]: x,
      [lostRefName(first, MAIN)]: c[2],
      [lostRefName(first, FEATURE)]: c[1],
    });
  });
});

Deno.test("apply: a member's huge seq on a fresh replica does not freeze it; the next admin state wins", async () => {
  await withRepo(async (repo, { c }) => {
    // A fresh replica takes its first state whatever parent it names…
    const freeze = await state(member, null, { [MAIN]: c[1] }, {
      seq: Number.MAX_SAFE_INTEGER,
      parent: UNKNOWN_PARENT,
    });
    await applyRefStates(repo, [freeze]);
    assert.equal(readRefStates(repo).current?.id, freeze.id);
    assert.equal(readRefStates(repo).anchored, false);
    // …but a member's state so taken outranks no admin's state.
    const admin = await state(founder, null, { [MAIN]: c[2] }, {
      seq: 5,
      parent: UNKNOWN_PARENT,
    });
    await applyRefStates(repo, [admin]);
    const stored = readRefStates(repo);
    assert.equal(stored.current?.id, admin.id);
    assert.equal(stored.anchored, true);
    assert.equal((await refsOf(repo))[MAIN], c[2]);
    // And the project goes on from there.
    const next = await state(member, admin, { [MAIN]: c[3] });
    await applyRefStates(repo, [next]);
    assert.equal(readRefStates(repo).current?.id, next.id);
    // Once anchored, an unknown-parent member state is refused again.
    const again = await state(member, null, { [MAIN]: c[4] }, {
      seq: Number.MAX_SAFE_INTEGER,
      parent: UNKNOWN_PARENT,
    });
    await refused(repo, [again], /does not know/, "anchored again");
  });
});
