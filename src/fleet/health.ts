/**
 * The puddlemesh: one row per puddle key the fleet reports, with a health
 * badge. Pure functions over what the store returns ({@link
 * PuddleObservations}), the time `now` and the check-in period; no clock
 * is read here.
 *
 * A row's key is listed when some envoy's latest check-in reports it as a
 * user's puddle key. Its badge follows these rules:
 *
 * - **Degraded** when
 *   - the envoys of one Unix user report different public keys (every key
 *     of that user is Degraded), or
 *   - a key some envoy lists as retired is still reported in use by an
 *     envoy (the retired key's row is Degraded), or
 *   - the puddle's name collides: two or more keys claim it.
 * - **Warning** when
 *   - an envoy carrying the key has not checked in for
 *     {@link STALE_PERIODS} periods (`now - last check-in >= 3 × period`),
 *   - the copies' `wrapped_sha256` differ (the key copies drifted), or
 *   - a rekey is pending on an envoy carrying the key.
 * - **Healthy** otherwise.
 *
 * No flapping: every condition but staleness is evaluated twice, once over
 * each envoy's latest check-in and once over each envoy's check-in before
 * it, and counts only when it holds in both. A condition seen on one odd
 * check-in, or on an envoy's first check-in, does not show. Staleness is
 * itself judged over time (three periods without a check-in).
 *
 * @module
 */

/** What one check-in said about one user's puddle. */
export interface PuddleFact {
  user: string;
  pubkey: string;
  wrapped_sha256: string;
  unlocked: boolean;
  rekey_pending: boolean;
  retired: string[];
  /** The name the puddle's claim names, or null. */
  name: string | null;
}

/** One check-in, reduced to what health needs. */
export interface CheckInFacts {
  /** When the server received it (unix s, the server's clock). */
  received: number;
  puddles: PuddleFact[];
}

/** One envoy's recent check-ins, newest first (at most two are read). */
export interface EnvoyObservation {
  envoy: string;
  recent: CheckInFacts[];
}

/** Everything the puddlemesh is computed from. */
export interface PuddleObservations {
  envoys: EnvoyObservation[];
  /** The fleet's name map, `names.json`'s `names`: name → keys, first first. */
  names: Record<string, string[]>;
}

/** A badge. */
export type Badge = "Healthy" | "Warning" | "Degraded";

/** One puddlemesh row. */
export interface PuddleRow {
  key: string;
  /** `ed25519:` and the first 12 hex digits. */
  short_key: string;
  /** The name the key claims in the name map, or `(unnamed)`. */
  owner: string;
  envoys: string[];
  users: string[];
  /** How many (envoy, user) copies report the session unlocked. */
  unlocked_sessions: number;
  badge: Badge;
  /** Degraded reasons first, then Warning reasons. */
  reasons: string[];
}

/** Periods without a check-in after which an envoy counts as stale. */
export const STALE_PERIODS = 3;

interface Copy {
  envoy: string;
  fact: PuddleFact;
}

interface Findings {
  degraded: Map<string, Set<string>>;
  warning: Map<string, Set<string>>;
}

function add(map: Map<string, Set<string>>, key: string, reason: string) {
  let set = map.get(key);
  if (!set) map.set(key, set = new Set());
  set.add(reason);
}

/** The conditions over one view: each envoy's check-in number `index`. */
function findings(obs: PuddleObservations, index: number): Findings {
  const copies: Copy[] = [];
  for (const e of obs.envoys) {
    const checkIn = e.recent[index];
    if (!checkIn) continue;
    for (const fact of checkIn.puddles) copies.push({ envoy: e.envoy, fact });
  }
  const out: Findings = { degraded: new Map(), warning: new Map() };
  const byUser = group(copies, (c) => c.fact.user);
  for (const [user, list] of byUser) {
    const keys = [...new Set(list.map((c) => c.fact.pubkey))].sort();
    if (keys.length < 2) continue;
    for (const key of keys) {
      add(
        out.degraded,
        key,
        `the envoys of user ${user} report ${keys.length} different keys`,
      );
    }
  }
  const inUse = group(copies, (c) => c.fact.pubkey);
  for (const c of copies) {
    for (const retired of c.fact.retired) {
      const users = inUse.get(retired);
      if (!users) continue;
      const where = [...new Set(users.map((u) => u.envoy))].sort().join(", ");
      add(
        out.degraded,
        retired,
        `retired on ${c.envoy} but still in use on ${where}`,
      );
    }
  }
  const claims = new Map<string, Set<string>>();
  for (const c of copies) {
    if (c.fact.name !== null) add(claims, c.fact.name, c.fact.pubkey);
  }
  for (const [name, keys] of claims) {
    if (keys.size < 2) continue;
    for (const key of keys) {
      add(
        out.degraded,
        key,
        `the name ${name} is claimed by ${keys.size} keys`,
      );
    }
  }
  for (const [key, list] of inUse) {
    const digests = new Set(list.map((c) => c.fact.wrapped_sha256));
    if (digests.size > 1) {
      add(
        out.warning,
        key,
        `the copies of the key differ (${digests.size} different identity.wrapped digests)`,
      );
    }
    for (const c of list) {
      if (c.fact.rekey_pending) {
        add(
          out.warning,
          key,
          `a rekey is pending on ${c.envoy} (user ${c.fact.user})`,
        );
      }
    }
  }
  return out;
}

function group<T>(items: T[], by: (item: T) => string): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const item of items) {
    const k = by(item);
    const list = map.get(k);
    if (list) list.push(item);
    else map.set(k, [item]);
  }
  return map;
}

function held(
  now: Map<string, Set<string>>,
  before: Map<string, Set<string>>,
  key: string,
): string[] {
  const a = now.get(key);
  const b = before.get(key);
  if (!a || !b) return [];
  return [...a].filter((reason) => b.has(reason)).sort();
}

/**
 * Each key's name in `names`: the first name, in name order, that lists it.
 * Built once per page, so that a row costs a lookup, not a scan of the map.
 */
export function ownersByKey(
  names: Record<string, string[]>,
): Map<string, string> {
  const owners = new Map<string, string>();
  for (const name of Object.keys(names).sort()) {
    for (const key of names[name]) if (!owners.has(key)) owners.set(key, name);
  }
  return owners;
}

/**
 * The puddlemesh rows at `now` for check-ins every `periodS` seconds,
 * sorted by owner then key.
 */
export function puddleRows(
  obs: PuddleObservations,
  now: number,
  periodS: number,
): PuddleRow[] {
  const latest = findings(obs, 0);
  const previous = findings(obs, 1);
  const rows = new Map<string, {
    envoys: Set<string>;
    users: Set<string>;
    unlocked: number;
    stale: Set<string>;
  }>();
  for (const e of obs.envoys) {
    const checkIn = e.recent[0];
    if (!checkIn) continue;
    const silent = now - checkIn.received;
    for (const fact of checkIn.puddles) {
      let row = rows.get(fact.pubkey);
      if (!row) {
        row = {
          envoys: new Set(),
          users: new Set(),
          unlocked: 0,
          stale: new Set(),
        };
        rows.set(fact.pubkey, row);
      }
      row.envoys.add(e.envoy);
      row.users.add(fact.user);
      if (fact.unlocked) row.unlocked++;
      if (silent >= STALE_PERIODS * periodS) {
        row.stale.add(
          `${e.envoy} has not checked in for ${silent} s (${STALE_PERIODS} periods of ${periodS} s)`,
        );
      }
    }
  }
  const owners = ownersByKey(obs.names);
  const out: PuddleRow[] = [];
  for (const [key, row] of rows) {
    const degraded = held(latest.degraded, previous.degraded, key);
    const warning = [
      ...[...row.stale].sort(),
      ...held(latest.warning, previous.warning, key),
    ];
    out.push({
      key,
      short_key: key.slice(0, "ed25519:".length + 12),
      owner: owners.get(key) ?? "(unnamed)",
      envoys: [...row.envoys].sort(),
      users: [...row.users].sort(),
      unlocked_sessions: row.unlocked,
      badge: badgeOf(degraded, warning),
      reasons: [...degraded, ...warning],
    });
  }
  return out.sort(byFields("owner", "key"));
}

/** The badge of a row with these Degraded and Warning reasons. */
export function badgeOf(degraded: string[], warning: string[]): Badge {
  return degraded.length > 0
    ? "Degraded"
    : warning.length > 0
    ? "Warning"
    : "Healthy";
}

/**
 * A comparator of rows by string fields in turn, in code-unit order (the
 * same on every machine, unlike `localeCompare`).
 */
export function byFields<K extends string>(
  ...fields: K[]
): (a: Record<K, string>, b: Record<K, string>) => number {
  return (a, b) => {
    for (const field of fields) {
      if (a[field] < b[field]) return -1;
      if (a[field] > b[field]) return 1;
    }
    return 0;
  };
}
