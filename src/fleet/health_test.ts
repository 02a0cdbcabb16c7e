import assert from "node:assert/strict";
import {
  type CheckInFacts,
  type PuddleFact,
  type PuddleObservations,
  puddleRows,
} from "./health.ts";

const K1 = "ed25519:" + "1".repeat(64);
const K2 = "ed25519:" + "2".repeat(64);
const W = "a".repeat(64);
const PERIOD = 60;
const NOW = 10_000;

function fact(over: Partial<PuddleFact> = {}): PuddleFact {
  return {
    user: "dan",
    pubkey: K1,
    wrapped_sha256: W,
    unlocked: false,
    rekey_pending: false,
    retired: [],
    name: null,
    ...over,
  };
}

/** Two check-ins (newest first), one period apart, ending at `last`. */
function twice(puddles: PuddleFact[], last = NOW): CheckInFacts[] {
  return [{ received: last, puddles }, { received: last - PERIOD, puddles }];
}

function obs(
  envoys: Record<string, CheckInFacts[]>,
  names: Record<string, string[]> = {},
): PuddleObservations {
  return {
    envoys: Object.entries(envoys).map(([envoy, recent]) => ({
      envoy,
      recent,
    })),
    names,
  };
}

function row(o: PuddleObservations, key = K1, now = NOW) {
  const found = puddleRows(o, now, PERIOD).find((r) => r.key === key);
  assert.ok(found, `a row for ${key}`);
  return found;
}

Deno.test("one key on three envoys, all current, is Healthy", () => {
  const o = obs(
    {
      a: twice([fact({ unlocked: true, name: "dan" })]),
      b: twice([fact({ name: "dan" })]),
      c: twice([fact({ user: "dan2" })]),
    },
    { dan: [K1] },
  );
  const rows = puddleRows(o, NOW, PERIOD);
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0], {
    key: K1,
    short_key: "ed25519:111111111111",
    owner: "dan",
    envoys: ["a", "b", "c"],
    users: ["dan", "dan2"],
    unlocked_sessions: 1,
    badge: "Healthy",
    reasons: [],
  });
  assert.equal(row(obs({ a: twice([fact()]) })).owner, "(unnamed)");
});

Deno.test("one user reporting different keys on two envoys is Degraded", () => {
  const o = obs({ a: twice([fact()]), b: twice([fact({ pubkey: K2 })]) });
  for (const key of [K1, K2]) {
    const r = row(o, key);
    assert.equal(r.badge, "Degraded");
    assert.deepEqual(r.reasons, [
      "the envoys of user dan report 2 different keys",
    ]);
  }
  // Different users with different keys are simply two puddles.
  const fine = obs({
    a: twice([fact()]),
    b: twice([fact({ user: "ann", pubkey: K2 })]),
  });
  assert.equal(row(fine, K2).badge, "Healthy");
});

Deno.test("a retired key still in use elsewhere is Degraded", () => {
  const o = obs({
    a: twice([fact({ pubkey: K2, retired: [K1] })]),
    b: twice([fact({ user: "ann" })]),
  });
  const r = row(o, K1);
  assert.equal(r.badge, "Degraded");
  assert.deepEqual(r.reasons, ["retired on a but still in use on b"]);
  assert.equal(row(o, K2).badge, "Healthy");
});

Deno.test("a name two keys claim is Degraded on both", () => {
  const o = obs(
    {
      a: twice([fact({ name: "dan" })]),
      b: twice([fact({ user: "ann", pubkey: K2, name: "dan" })]),
    },
    { dan: [K1, K2] },
  );
  for (const key of [K1, K2]) {
    const r = row(o, key);
    assert.equal(r.badge, "Degraded");
    assert.equal(r.owner, "dan");
    assert.deepEqual(r.reasons, ["the name dan is claimed by 2 keys"]);
  }
});

Deno.test("drifted copies (different wrapped digests) are a Warning", () => {
  const o = obs({
    a: twice([fact()]),
    b: twice([fact({ wrapped_sha256: "b".repeat(64) })]),
  });
  const r = row(o);
  assert.equal(r.badge, "Warning");
  assert.deepEqual(r.reasons, [
    "the copies of the key differ (2 different identity.wrapped digests)",
  ]);
});

Deno.test("a pending rekey is a Warning", () => {
  const o = obs({
    a: twice([fact({ rekey_pending: true })]),
    b: twice([fact()]),
  });
  const r = row(o);
  assert.equal(r.badge, "Warning");
  assert.deepEqual(r.reasons, ["a rekey is pending on a (user dan)"]);
});

Deno.test("an envoy silent for three periods turns its puddles Warning", () => {
  const last = NOW - 3 * PERIOD;
  const o = obs({ a: twice([fact()]), b: twice([fact()], last) });
  assert.equal(row(o, K1, NOW - 1).badge, "Healthy");
  const r = row(o);
  assert.equal(r.badge, "Warning");
  assert.deepEqual(r.reasons, [
    "b has not checked in for 180 s (3 periods of 60 s)",
  ]);
  // A single check-in so far still counts for staleness.
  const once = obs({ a: [{ received: last, puddles: [fact()] }] });
  assert.equal(row(once).badge, "Warning");
});

Deno.test("one odd check-in does not flap the badge", () => {
  const odd = (over: Partial<PuddleFact>): CheckInFacts[] => [
    { received: NOW, puddles: [fact(over)] },
    { received: NOW - PERIOD, puddles: [fact()] },
  ];
  const recovered = (over: Partial<PuddleFact>): CheckInFacts[] => [
    { received: NOW, puddles: [fact()] },
    { received: NOW - PERIOD, puddles: [fact(over)] },
  ];
  for (
    const over of [
      { rekey_pending: true },
      { wrapped_sha256: "b".repeat(64) },
      { retired: [K1], pubkey: K2 },
    ]
  ) {
    for (const a of [odd(over), recovered(over)]) {
      const o = obs({ a, b: twice([fact()]) });
      assert.equal(row(o).badge, "Healthy", JSON.stringify(over));
    }
  }
  // A conflict first seen on a new envoy's first check-in waits for its second.
  const fresh = obs({
    a: twice([fact()]),
    b: [{ received: NOW, puddles: [fact({ pubkey: K2 })] }],
  });
  assert.equal(row(fresh, K1).badge, "Healthy");
  assert.equal(row(fresh, K2).badge, "Healthy");
  const second = obs({ a: twice([fact()]), b: twice([fact({ pubkey: K2 })]) });
  assert.equal(row(second, K2).badge, "Degraded");
});

Deno.test("Degraded reasons come before Warning reasons", () => {
  const o = obs({
    a: twice([fact({ rekey_pending: true })]),
    b: twice([fact({ pubkey: K2 })], NOW - 5 * PERIOD),
  });
  const r = row(o);
  assert.equal(r.badge, "Degraded");
  assert.deepEqual(r.reasons, [
    "the envoys of user dan report 2 different keys",
    "a rekey is pending on a (user dan)",
  ]);
});
