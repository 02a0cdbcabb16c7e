import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { signNameClaim } from "../puddle/names.ts";
import { openFleetStore, SCHEMA_VERSION } from "./store.ts";
import type { Traits } from "../swarm/traits.ts";
import { publishedPolicy } from "../envoy/policy.ts";

const PERIOD = 60;

function withStore(fn: (path: string) => void | Promise<void>) {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-fleet-store-" });
    try {
      await fn(`${dir}/fleet.sqlite`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

async function traits(
  envoy: string,
  at: number,
  users: { user: string; key: Signer; name?: string }[],
): Promise<Traits> {
  return {
    v: 1,
    envoy,
    at,
    users: await Promise.all(users.map(async (u) => ({
      user: u.user,
      puddle: {
        pubkey: formatPublicKey(u.key.publicKey),
        wrapped_sha256: "a".repeat(64),
        unlocked: false,
        name_claim: u.name ? await signNameClaim(u.key, u.name, 1) : null,
        pair_pending: false,
        rekey_pending: false,
        retired: [],
      },
      gitback: null,
    }))),
  };
}

const newKey = () => seedSigner(generateSeed());

Deno.test(
  "the schema is created on open, versioned, and reopens",
  withStore((path) => {
    openFleetStore(path).close();
    const db = new DatabaseSync(path);
    const row = db.prepare("PRAGMA user_version").get() as {
      user_version: number;
    };
    assert.equal(row.user_version, SCHEMA_VERSION);
    db.exec("PRAGMA user_version = 99");
    db.close();
    assert.throws(
      () => openFleetStore(path),
      /schema version 99.*upgrade vigo/,
    );
  }),
);

Deno.test(
  "check-ins are idempotent upserts; older traits are ignored",
  withStore(async (path) => {
    const store = openFleetStore(path);
    const dan = newKey();
    const t = await traits("a", 100, [{ user: "dan", key: dan, name: "dan" }]);
    assert.equal(store.recordCheckIn(t, 1000), "recorded");
    assert.equal(store.recordCheckIn(t, 1005), "repeated");
    assert.equal(store.historyCount("a"), 1);
    assert.deepEqual(store.envoys(), [
      { envoy: "a", at: 100, first_seen: 1000, last_seen: 1005, users: 1 },
    ]);
    assert.deepEqual(store.traitsOf("a"), t);
    assert.deepEqual(store.nameMap(), {
      version: 1,
      names: { dan: [formatPublicKey(dan.publicKey)] },
    });
    assert.equal(
      store.recordCheckIn(await traits("a", 99, []), 1010),
      "out-of-order",
    );
    assert.equal(store.traitsOf("a")!.users.length, 1);
    assert.equal(
      store.recordCheckIn(await traits("a", 160, []), 1060),
      "recorded",
    );
    assert.equal(store.historyCount("a"), 2);
    assert.equal(store.envoys()[0].users, 0);
    assert.equal(store.envoyCount(), store.envoys().length);
    store.close();
  }),
);

Deno.test(
  "history keeps the last N check-ins per envoy",
  withStore(async (path) => {
    const store = openFleetStore(path, { historyPerEnvoy: 3 });
    for (let i = 0; i < 10; i++) {
      store.recordCheckIn(await traits("a", i * PERIOD, []), 1000 + i * PERIOD);
    }
    store.recordCheckIn(await traits("b", 0, []), 1000);
    assert.equal(store.historyCount("a"), 3);
    assert.equal(store.historyCount("b"), 1);
    const a = store.observations().envoys.find((e) => e.envoy === "a")!;
    assert.deepEqual(a.recent.map((c) => c.received), [1540, 1480]);
    store.close();
  }),
);

Deno.test(
  "names are first come, first served; a second key is a collision",
  withStore(async (path) => {
    const store = openFleetStore(path);
    const dan = newKey();
    const eve = newKey();
    const danKey = formatPublicKey(dan.publicKey);
    const eveKey = formatPublicKey(eve.publicKey);
    // Eve's claim is signed earlier, but the server saw Dan's first.
    store.recordCheckIn(
      await traits("a", 10, [{ user: "dan", key: dan, name: "dan" }]),
      100,
    );
    store.recordCheckIn(
      await traits("b", 10, [{ user: "eve", key: eve, name: "dan" }]),
      101,
    );
    assert.deepEqual(store.nameMap().names, { dan: [danKey, eveKey] });
    // Dan's later check-ins keep his place ahead of Eve.
    store.recordCheckIn(
      await traits("a", 20, [{ user: "dan", key: dan, name: "dan" }]),
      160,
    );
    assert.deepEqual(store.nameMap().names, { dan: [danKey, eveKey] });
    // Eve drops her claim: the name is Dan's alone again.
    store.recordCheckIn(
      await traits("b", 20, [{ user: "eve", key: eve }]),
      161,
    );
    assert.deepEqual(store.nameMap().names, { dan: [danKey] });
    // Dan renames himself: the old name is released.
    store.recordCheckIn(
      await traits("a", 30, [{ user: "dan", key: dan, name: "daniel" }]),
      220,
    );
    assert.deepEqual(store.nameMap().names, { daniel: [danKey] });
    // Eve now claims "dan" and is its only key.
    store.recordCheckIn(
      await traits("b", 30, [{ user: "eve", key: eve, name: "dan" }]),
      221,
    );
    assert.deepEqual(store.nameMap().names, {
      dan: [eveKey],
      daniel: [danKey],
    });
    store.close();
  }),
);

Deno.test(
  "puddles() judges health from the stored history",
  withStore(async (path) => {
    const store = openFleetStore(path);
    const dan = newKey();
    const other = newKey();
    for (const [i, at] of [0, PERIOD].entries()) {
      for (const envoy of ["a", "b", "c"]) {
        store.recordCheckIn(
          await traits(envoy, at, [{ user: "dan", key: dan, name: "dan" }]),
          1000 + i * PERIOD,
        );
      }
    }
    let rows = store.puddles(1000 + PERIOD, PERIOD);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].owner, "dan");
    assert.deepEqual(rows[0].envoys, ["a", "b", "c"]);
    assert.equal(rows[0].badge, "Healthy");
    // c stops checking in: Warning three periods after its last check-in.
    rows = store.puddles(1000 + 4 * PERIOD - 1, PERIOD);
    assert.equal(rows[0].badge, "Healthy");
    rows = store.puddles(1000 + 4 * PERIOD, PERIOD);
    assert.equal(rows[0].badge, "Warning");
    // b reports another key for dan: Degraded only from its second report.
    store.recordCheckIn(
      await traits("a", 2 * PERIOD, [{ user: "dan", key: dan }]),
      1120,
    );
    store.recordCheckIn(
      await traits("b", 2 * PERIOD, [{ user: "dan", key: other }]),
      1120,
    );
    rows = store.puddles(1120, PERIOD);
    assert.deepEqual(rows.map((r) => r.badge), ["Healthy", "Healthy"]);
    store.recordCheckIn(
      await traits("a", 3 * PERIOD, [{ user: "dan", key: dan }]),
      1180,
    );
    store.recordCheckIn(
      await traits("b", 3 * PERIOD, [{ user: "dan", key: other }]),
      1180,
    );
    rows = store.puddles(1180, PERIOD);
    assert.deepEqual(rows.map((r) => r.badge), ["Degraded", "Degraded"]);
    store.close();
  }),
);

Deno.test(
  "a published policy replaces the last; latest traits carry the receipt time",
  withStore(async (path) => {
    const store = openFleetStore(path);
    try {
      assert.equal(store.publishedPolicy(), null);
      const first = publishedPolicy([
        { user: "dan", home: "/home/dan", puddle: true, gitback: true },
      ], "2026-11-30T00:00:00.000Z");
      store.publishPolicy(first);
      assert.deepEqual(store.publishedPolicy(), first);
      const second = publishedPolicy([], "2026-11-30T00:01:00.000Z");
      store.publishPolicy(second);
      assert.deepEqual(store.publishedPolicy(), second);
      assert.notEqual(first.digest, second.digest);

      const dan = newKey();
      store.recordCheckIn(
        await traits("envoy-b", 10, [{ user: "dan", key: dan }]),
        1000,
      );
      store.recordCheckIn(
        await traits("envoy-a", 10, [{ user: "dan", key: dan }]),
        1001,
      );
      assert.deepEqual(
        store.latestTraits().map((l) => [l.envoy, l.received, l.traits.at]),
        [["envoy-a", 1001, 10], ["envoy-b", 1000, 10]],
      );
    } finally {
      store.close();
    }
  }),
);

Deno.test(
  "a version 1 store is upgraded in place and keeps its data",
  withStore(async (path) => {
    const store = openFleetStore(path);
    store.recordCheckIn(
      await traits("envoy-a", 10, [{ user: "dan", key: newKey() }]),
      1000,
    );
    store.close();
    const db = new DatabaseSync(path);
    db.exec("DROP TABLE published; PRAGMA user_version = 1");
    db.close();
    const reopened = openFleetStore(path);
    try {
      assert.equal(reopened.latestTraits().length, 1);
      assert.equal(reopened.publishedPolicy(), null);
    } finally {
      reopened.close();
    }
  }),
);
