import assert from "node:assert/strict";
import {
  findProjects,
  gitbackRows,
  type LatestTraits,
  projectView,
} from "./gitback_mesh.ts";
import type { ProjectTrait, UserTraits } from "../swarm/traits.ts";

const P1 = "1".repeat(64);
const P2 = "2".repeat(64);
const K1 = "ed25519:" + "a".repeat(64);
const K2 = "ed25519:" + "b".repeat(64);
const K3 = "ed25519:" + "c".repeat(64);
const C1 = "1".repeat(40);
const C2 = "2".repeat(40);
const C3 = "3".repeat(40);
const PERIOD = 60;
const NOW = 10_000;

function project(over: Partial<ProjectTrait> = {}): ProjectTrait {
  return {
    project_id: P1,
    handle: "notes",
    scope: "members-only",
    heads: { "refs/heads/main": C1 },
    repo_bytes: 1000,
    revokes: 0,
    leaves: 0,
    delegations: 0,
    tombstoned: false,
    signed_seq: 4,
    members: [K1],
    ...over,
  };
}

function user(name: string, projects: ProjectTrait[]): UserTraits {
  return { user: name, puddle: null, gitback: { projects } };
}

function envoy(
  name: string,
  users: UserTraits[],
  received = NOW,
): LatestTraits {
  return {
    envoy: name,
    received,
    traits: { v: 1, envoy: name, at: received, users },
  };
}

/** One envoy, one user, these projects. */
function simple(
  name: string,
  projects: ProjectTrait[],
  received = NOW,
): LatestTraits {
  return envoy(name, [user("dan", projects)], received);
}

function only(latest: LatestTraits[], names = {}) {
  const rows = gitbackRows(latest, names, NOW, PERIOD);
  assert.equal(rows.length, 1);
  return rows[0];
}

function states(latest: LatestTraits[]): Record<string, string> {
  return Object.fromEntries(
    only(latest).envoys.map((e) => [e.envoy, e.state]),
  );
}

Deno.test("one project on two envoys at the same heads is Healthy", () => {
  const r = only(
    [simple("b", [project()]), simple("a", [project({ repo_bytes: 9 })])],
    { dan: [K1] },
  );
  assert.deepEqual(r, {
    project_id: P1,
    handle: "notes",
    scope: "members-only",
    founder: K1,
    friendly_url: "gitback://dan/notes",
    url: `gitback://${P1}/notes`,
    envoys: ["a", "b"].map((e) => ({
      envoy: e,
      state: "in sync",
      stale: false,
      signed_seq: 4,
      heads_count: 1,
      repo_bytes: e === "a" ? 9 : 1000,
      revokes: 0,
      leaves: 0,
      delegations: 0,
      tombstoned: false,
    })),
    members: [K1],
    badge: "Healthy",
    reasons: [],
  });
});

Deno.test("heads compare as sets of refs, whatever their order", () => {
  const ab = { "refs/heads/a": C1, "refs/heads/b": C2 };
  const ba = { "refs/heads/b": C2, "refs/heads/a": C1 };
  assert.deepEqual(
    states([
      simple("a", [project({ heads: ab })]),
      simple("b", [project({ heads: ba })]),
    ]),
    { a: "in sync", b: "in sync" },
  );
});

Deno.test("an envoy at a lower sequence with other heads is behind", () => {
  const latest = [
    simple("a", [project({ signed_seq: 5, heads: { "refs/heads/main": C2 } })]),
    simple("b", [project({ signed_seq: 4 })]),
    simple("c", [project({ signed_seq: null, heads: {} })]),
  ];
  assert.deepEqual(states(latest), {
    a: "in sync",
    b: "behind",
    c: "behind",
  });
  const r = only(latest);
  assert.equal(r.badge, "Warning");
  assert.deepEqual(r.reasons, [
    "b is behind (signed seq 4, a at signed seq 5)",
    "c is behind (no signed state, a at signed seq 5)",
  ]);
});

Deno.test("a lower sequence with the reference heads is in sync", () => {
  assert.deepEqual(
    states([
      simple("a", [project({ signed_seq: 5 })]),
      simple("b", [project({ signed_seq: 4 })]),
    ]),
    { a: "in sync", b: "in sync" },
  );
});

Deno.test("other heads at the reference sequence have diverged", () => {
  const latest = [
    simple("a", [project()]),
    simple("b", [project({ heads: { "refs/heads/main": C2 } })]),
    simple("c", [project()]),
  ];
  assert.deepEqual(states(latest), {
    a: "in sync",
    b: "diverged",
    c: "in sync",
  });
  const r = only(latest);
  assert.equal(r.badge, "Degraded");
  assert.deepEqual(r.reasons, ["b has diverged from a, c (signed seq 4)"]);
});

Deno.test("the majority at the reference sequence wins over the first envoy", () => {
  const other = { "refs/heads/main": C2 };
  assert.deepEqual(
    states([
      simple("a", [project()]),
      simple("b", [project({ heads: other })]),
      simple("c", [project({ heads: other })]),
    ]),
    { a: "diverged", b: "in sync", c: "in sync" },
  );
});

Deno.test("a tie at the reference sequence goes to the lexically first envoy", () => {
  const other = { "refs/heads/main": C2 };
  // Given out of order: the rule reads envoy names, not input order.
  assert.deepEqual(
    states([
      simple("d", [project({ heads: other })]),
      simple("b", [project()]),
      simple("c", [project({ heads: other })]),
      simple("a", [project()]),
    ]),
    { a: "in sync", b: "in sync", c: "diverged", d: "diverged" },
  );
});

Deno.test("only envoys at the reference sequence choose its heads", () => {
  // b and c agree, but at a lower sequence: a alone is the reference.
  const old = { "refs/heads/main": C2 };
  assert.deepEqual(
    states([
      simple("a", [project({ signed_seq: 7, heads: { "x": C3 } })]),
      simple("b", [project({ signed_seq: 6, heads: old })]),
      simple("c", [project({ signed_seq: 6, heads: old })]),
    ]),
    { a: "in sync", b: "behind", c: "behind" },
  );
});

Deno.test("with no signed state anywhere, null is the reference", () => {
  const latest = [
    simple("a", [project({ signed_seq: null })]),
    simple("b", [project({ signed_seq: null })]),
    simple("c", [project({ signed_seq: null, heads: {} })]),
  ];
  assert.deepEqual(states(latest), {
    a: "in sync",
    b: "in sync",
    c: "diverged",
  });
  assert.deepEqual(only(latest).reasons, [
    "c has diverged from a, b (no signed state)",
  ]);
});

Deno.test("disagreeing on the tombstone is Degraded", () => {
  const r = only([
    simple("a", [project({ tombstoned: true })]),
    simple("b", [project()]),
    simple("c", [project()]),
  ]);
  assert.equal(r.badge, "Degraded");
  assert.deepEqual(r.reasons, ["tombstoned on a but not on b, c"]);
  const all = only([
    simple("a", [project({ tombstoned: true })]),
    simple("b", [project({ tombstoned: true })]),
  ]);
  assert.equal(all.badge, "Healthy");
});

Deno.test("an envoy silent for three periods is stale and a Warning", () => {
  const latest = [
    simple("a", [project()]),
    simple("b", [project()], NOW - 3 * PERIOD),
  ];
  const r = only(latest);
  assert.deepEqual(r.envoys.map((e) => e.stale), [false, true]);
  assert.equal(r.badge, "Warning");
  assert.deepEqual(r.reasons, [
    "b has not checked in for 180 s (3 periods of 60 s)",
  ]);
  const fresh = gitbackRows(latest, {}, NOW - 1, PERIOD)[0];
  assert.equal(fresh.badge, "Healthy");
  assert.equal(fresh.envoys[1].stale, false);
});

Deno.test("Degraded reasons come before Warning reasons", () => {
  const r = only([
    simple("a", [project({ signed_seq: 5 })], NOW - 10 * PERIOD),
    simple("b", [project({ signed_seq: 5, heads: {} })]),
    simple("c", [project({ signed_seq: 1, heads: {} })]),
  ]);
  assert.equal(r.badge, "Degraded");
  assert.deepEqual(r.reasons, [
    "b has diverged from a (signed seq 5)",
    "c is behind (signed seq 1, a at signed seq 5)",
    "a has not checked in for 600 s (3 periods of 60 s)",
  ]);
});

Deno.test("several users of one envoy count once, their members merged", () => {
  const latest = [
    envoy("a", [
      user("dan", [project({ members: [K1, K2] })]),
      // Same bare repository; other facts from a later user are not used.
      user("ann", [project({ members: [K1, K3], repo_bytes: 5 })]),
    ]),
    simple("b", [project({ members: [K1, K2, K2] })]),
  ];
  const r = only(latest);
  assert.deepEqual(r.envoys.map((e) => [e.envoy, e.repo_bytes]), [
    ["a", 1000],
    ["b", 1000],
  ]);
  assert.deepEqual(r.members, [K1, K2, K3]);
  assert.equal(r.founder, K1);
});

Deno.test("members are merged in first-seen order, envoys by name", () => {
  const r = only([
    simple("b", [project({ members: [K3, K1] })]),
    simple("a", [project({ members: [K2] })]),
  ]);
  assert.deepEqual(r.members, [K2, K3, K1]);
  assert.equal(r.founder, K2);
  const none = only([simple("a", [project({ members: [] })])]);
  assert.equal(none.founder, null);
  assert.equal(none.friendly_url, null);
});

Deno.test("the friendly URL needs the founder to own a name alone", () => {
  const latest = [simple("a", [project()])];
  assert.equal(only(latest, { dan: [K1] }).friendly_url, "gitback://dan/notes");
  // Not the founder's name.
  assert.equal(only(latest, { ann: [K2] }).friendly_url, null);
  // A contested name is refused by resolvers, so it is no hint.
  assert.equal(only(latest, { dan: [K1, K2] }).friendly_url, null);
  assert.equal(only(latest, { dan: [K2, K1] }).friendly_url, null);
  assert.equal(only(latest, {}).friendly_url, null);
});

Deno.test("rows are sorted by handle then project id", () => {
  const rows = gitbackRows(
    [
      simple("a", [
        project({ project_id: P2, handle: "alpha" }),
        project({ project_id: P1, handle: "zeta" }),
      ]),
      simple("b", [project({ project_id: P1, handle: "zeta" })]),
    ],
    {},
    NOW,
    PERIOD,
  );
  assert.deepEqual(rows.map((r) => [r.handle, r.envoys.length]), [
    ["alpha", 1],
    ["zeta", 2],
  ]);
  assert.deepEqual(gitbackRows([], {}, NOW, PERIOD), []);
  assert.deepEqual(
    gitbackRows(
      [envoy("a", [{ user: "x", puddle: null, gitback: null }])],
      {},
      NOW,
      PERIOD,
    ),
    [],
  );
});

Deno.test("projectView is one row of gitbackRows, or null", () => {
  const latest = [
    simple("a", [project(), project({ project_id: P2, handle: "other" })]),
    simple("b", [project({ heads: {} })], NOW - 5 * PERIOD),
  ];
  const rows = gitbackRows(latest, { dan: [K1] }, NOW, PERIOD);
  assert.deepEqual(
    projectView(latest, { dan: [K1] }, NOW, PERIOD, P1),
    rows.find((r) => r.project_id === P1),
  );
  assert.equal(projectView(latest, {}, NOW, PERIOD, "3".repeat(64)), null);
});

Deno.test("findProjects takes a project id or a handle", () => {
  const latest = [
    simple("a", [
      project({ project_id: P2, handle: "notes" }),
      project({ project_id: P1, handle: "notes" }),
    ]),
    simple("b", [project({ project_id: "3".repeat(64), handle: "other" })]),
  ];
  assert.deepEqual(findProjects(latest, "notes"), [P1, P2]);
  assert.deepEqual(findProjects(latest, "other"), ["3".repeat(64)]);
  assert.deepEqual(findProjects(latest, P2), [P2]);
  assert.deepEqual(findProjects(latest, "4".repeat(64)), []);
  assert.deepEqual(findProjects(latest, "missing"), []);
  // A handle that happens to look like an id still names its project.
  const hexHandle = [simple("a", [project({ handle: P2 })])];
  assert.deepEqual(findProjects(hexHandle, P2), [P1]);
});
