/**
 * The fleet server's one store: a SQLite file (`node:sqlite`), its schema
 * created on open and versioned by `PRAGMA user_version` (now 2).
 *
 * Schema, version 2 (version 1 lacked `published`; opening adds it):
 * - `envoys(envoy PK, at, first_seen, last_seen, traits)`: each envoy's
 *   latest traits (JSON) and when the server first and last heard of it.
 * - `checkins(id PK, envoy, at, received, puddles, UNIQUE(envoy, at))`:
 *   the check-in history, the puddle facts of each (JSON, see
 *   `health.ts`); the last {@link HISTORY_PER_ENVOY} per envoy are kept.
 * - `claims(envoy, user, name, key, PK(envoy, user))`: the name claims in
 *   each envoy's latest traits.
 * - `names(seq PK, name, key, UNIQUE(name, key))`: the name map, in the
 *   store's own first-seen order; a row disappears when no envoy reports
 *   that claim any more.
 * - `published(id PK = 1, digest, document)`: the usercrate policy
 *   `vigo config publish` published last (policy.ts's published form).
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { PublishedPolicy } from "../envoy/policy.ts";
import { claimedName, type Traits } from "../swarm/traits.ts";
import {
  type PuddleFact,
  type PuddleObservations,
  type PuddleRow,
  puddleRows,
} from "./health.ts";

/** The schema version this module writes. */
export const SCHEMA_VERSION = 2;
/** Check-ins kept per envoy (health reads two; the rest is for operators). */
export const HISTORY_PER_ENVOY = 8;

/** The `names.json` form of the name map. */
export interface NameMapJson {
  version: 1;
  names: Record<string, string[]>;
}

/** One envoy as the store knows it. */
export interface EnvoySummary {
  envoy: string;
  /** The `at` of its latest traits (the envoy's clock). */
  at: number;
  first_seen: number;
  last_seen: number;
  users: number;
}

/** What {@link FleetStore.recordCheckIn} did. */
export type CheckInResult = "recorded" | "repeated" | "out-of-order";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS envoys (
  envoy TEXT PRIMARY KEY,
  at INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  traits TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkins (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  envoy TEXT NOT NULL,
  at INTEGER NOT NULL,
  received INTEGER NOT NULL,
  puddles TEXT NOT NULL,
  UNIQUE (envoy, at)
);
CREATE TABLE IF NOT EXISTS claims (
  envoy TEXT NOT NULL,
  user TEXT NOT NULL,
  name TEXT NOT NULL,
  key TEXT NOT NULL,
  PRIMARY KEY (envoy, user)
);
CREATE TABLE IF NOT EXISTS names (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  key TEXT NOT NULL,
  UNIQUE (name, key)
);
CREATE INDEX IF NOT EXISTS claims_by_name ON claims (name, key);
CREATE TABLE IF NOT EXISTS published (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  digest TEXT NOT NULL,
  document TEXT NOT NULL
);
`;

/** The fleet server's store; open with {@link openFleetStore}. */
export class FleetStore {
  readonly #db: DatabaseSync;
  readonly #historyPerEnvoy: number;

  constructor(db: DatabaseSync, historyPerEnvoy: number) {
    this.#db = db;
    this.#historyPerEnvoy = historyPerEnvoy;
  }

  /**
   * Records verified traits received at `now` (server clock, unix s):
   * upserts the envoy's latest traits, adds (or, for the same `at`,
   * replaces) a history row, prunes older history, and joins the name
   * claims first come, first served. Traits older than the envoy's latest
   * are ignored ("out-of-order"); a repeat of the latest is "repeated".
   */
  recordCheckIn(traits: Traits, now: number): CheckInResult {
    const db = this.#db;
    const current = db.prepare("SELECT at FROM envoys WHERE envoy = ?").get(
      traits.envoy,
    ) as { at: number } | undefined;
    if (current && traits.at < current.at) return "out-of-order";
    const facts: PuddleFact[] = [];
    const claims: { user: string; name: string; key: string }[] = [];
    for (const u of traits.users) {
      if (!u.puddle) continue;
      const name = claimedName(u.puddle);
      facts.push({
        user: u.user,
        pubkey: u.puddle.pubkey,
        wrapped_sha256: u.puddle.wrapped_sha256,
        unlocked: u.puddle.unlocked,
        rekey_pending: u.puddle.rekey_pending,
        retired: u.puddle.retired,
        name,
      });
      if (name !== null) {
        claims.push({ user: u.user, name, key: u.puddle.pubkey });
      }
    }
    db.exec("BEGIN IMMEDIATE");
    try {
      db.prepare(
        `INSERT INTO envoys (envoy, at, first_seen, last_seen, traits)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (envoy) DO UPDATE SET at = excluded.at,
           last_seen = excluded.last_seen, traits = excluded.traits`,
      ).run(traits.envoy, traits.at, now, now, JSON.stringify(traits));
      db.prepare(
        `INSERT INTO checkins (envoy, at, received, puddles) VALUES (?, ?, ?, ?)
         ON CONFLICT (envoy, at) DO UPDATE SET received = excluded.received,
           puddles = excluded.puddles`,
      ).run(traits.envoy, traits.at, now, JSON.stringify(facts));
      db.prepare(
        `DELETE FROM checkins WHERE envoy = ? AND id NOT IN
           (SELECT id FROM checkins WHERE envoy = ? ORDER BY at DESC LIMIT ?)`,
      ).run(traits.envoy, traits.envoy, this.#historyPerEnvoy);
      const earlier = db.prepare(
        "SELECT name, key FROM claims WHERE envoy = ?",
      ).all(traits.envoy) as { name: string; key: string }[];
      db.prepare("DELETE FROM claims WHERE envoy = ?").run(traits.envoy);
      const addClaim = db.prepare(
        "INSERT INTO claims (envoy, user, name, key) VALUES (?, ?, ?, ?)",
      );
      const addName = db.prepare(
        "INSERT OR IGNORE INTO names (name, key) VALUES (?, ?)",
      );
      for (const c of claims) {
        addClaim.run(traits.envoy, c.user, c.name, c.key);
        addName.run(c.name, c.key);
      }
      // Only this envoy's dropped claims can have left a name unclaimed.
      const dropUnclaimed = db.prepare(
        `DELETE FROM names WHERE name = ? AND key = ? AND NOT EXISTS
           (SELECT 1 FROM claims WHERE name = ? AND key = ?)`,
      );
      for (const e of earlier) dropUnclaimed.run(e.name, e.key, e.name, e.key);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
    return current?.at === traits.at ? "repeated" : "recorded";
  }

  /**
   * The name map in `names.json` form: every claimed name with its keys in
   * first-seen order. The first key is the owner; more keys are a
   * collision, which resolvers treat as ambiguous.
   */
  nameMap(): NameMapJson {
    const rows = this.#db.prepare(
      "SELECT name, key FROM names ORDER BY name, seq",
    ).all() as { name: string; key: string }[];
    const names: Record<string, string[]> = {};
    for (const r of rows) (names[r.name] ??= []).push(r.key);
    return { version: 1, names };
  }

  /** Every envoy that has checked in, by name. */
  envoys(): EnvoySummary[] {
    const rows = this.#db.prepare(
      "SELECT envoy, at, first_seen, last_seen, traits FROM envoys ORDER BY envoy",
    ).all() as {
      envoy: string;
      at: number;
      first_seen: number;
      last_seen: number;
      traits: string;
    }[];
    return rows.map((r) => ({
      envoy: r.envoy,
      at: r.at,
      first_seen: r.first_seen,
      last_seen: r.last_seen,
      users: (JSON.parse(r.traits) as Traits).users.length,
    }));
  }

  /** How many envoys have checked in. */
  envoyCount(): number {
    const row = this.#db.prepare("SELECT count(*) AS n FROM envoys").get() as {
      n: number;
    };
    return Number(row.n);
  }

  /** The latest traits of `envoy`, or null. */
  traitsOf(envoy: string): Traits | null {
    const row = this.#db.prepare("SELECT traits FROM envoys WHERE envoy = ?")
      .get(envoy) as { traits: string } | undefined;
    return row ? JSON.parse(row.traits) as Traits : null;
  }

  /**
   * Every envoy's latest traits with when the server received them (its
   * clock), by envoy name: what the gitbackmesh is computed from.
   */
  latestTraits(): { envoy: string; received: number; traits: Traits }[] {
    const rows = this.#db.prepare(
      "SELECT envoy, last_seen, traits FROM envoys ORDER BY envoy",
    ).all() as { envoy: string; last_seen: number; traits: string }[];
    return rows.map((r) => ({
      envoy: r.envoy,
      received: Number(r.last_seen),
      traits: JSON.parse(r.traits) as Traits,
    }));
  }

  /** Replaces the published usercrate policy with `policy`. */
  publishPolicy(policy: PublishedPolicy): void {
    this.#db.prepare(
      `INSERT INTO published (id, digest, document) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET digest = excluded.digest,
         document = excluded.document`,
    ).run(policy.digest, JSON.stringify(policy));
  }

  /** The published usercrate policy, or null when none was published. */
  publishedPolicy(): PublishedPolicy | null {
    const row = this.#db.prepare("SELECT document FROM published WHERE id = 1")
      .get() as { document: string } | undefined;
    return row ? JSON.parse(row.document) as PublishedPolicy : null;
  }

  /** How many history rows the store holds for `envoy`. */
  historyCount(envoy: string): number {
    const row = this.#db.prepare(
      "SELECT count(*) AS n FROM checkins WHERE envoy = ?",
    ).get(envoy) as { n: number };
    return Number(row.n);
  }

  /** What the puddlemesh is computed from: each envoy's two latest check-ins. */
  observations(): PuddleObservations {
    const rows = this.#db.prepare(
      `SELECT envoy, received, puddles FROM (
         SELECT envoy, received, puddles,
           row_number() OVER (PARTITION BY envoy ORDER BY at DESC) AS n
         FROM checkins) WHERE n <= 2 ORDER BY envoy, n`,
    ).all() as { envoy: string; received: number; puddles: string }[];
    const envoys: PuddleObservations["envoys"] = [];
    for (const r of rows) {
      let e = envoys.at(-1);
      if (e?.envoy !== r.envoy) envoys.push(e = { envoy: r.envoy, recent: [] });
      e!.recent.push({
        received: Number(r.received),
        puddles: JSON.parse(r.puddles),
      });
    }
    return { envoys, names: this.nameMap().names };
  }

  /** The puddlemesh rows at `now` for check-ins every `periodS` seconds. */
  puddles(now: number, periodS: number): PuddleRow[] {
    return puddleRows(this.observations(), now, periodS);
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }
}

/**
 * Opens (creating when needed) the store at `path`. Throws when the file
 * was written by a newer schema than this build knows.
 */
export function openFleetStore(
  path: string,
  options: { historyPerEnvoy?: number } = {},
): FleetStore {
  const db = new DatabaseSync(path);
  try {
    // WAL with synchronous=NORMAL: a crash never corrupts the store; a
    // power cut may lose the last check-ins, which agents repeat anyway.
    db.exec(
      "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000",
    );
    const { user_version: version } = db.prepare("PRAGMA user_version")
      .get() as { user_version: number };
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `the fleet store ${path} has schema version ${version}, newer than this vigo's ${SCHEMA_VERSION}; upgrade vigo before running the server.`,
      );
    }
    if (version < SCHEMA_VERSION) {
      db.exec("BEGIN IMMEDIATE");
      db.exec(SCHEMA);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      db.exec("COMMIT");
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return new FleetStore(db, options.historyPerEnvoy ?? HISTORY_PER_ENVOY);
}
