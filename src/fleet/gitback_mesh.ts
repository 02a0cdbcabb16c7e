/**
 * The gitbackmesh: one row per gitback project the fleet reports, with the
 * state of each envoy's replica and a health badge. Pure functions over
 * each envoy's latest traits ({@link LatestTraits}), the time `now` and the
 * check-in period; no clock is read here.
 *
 * A project is listed when some envoy's latest traits report it for some
 * user. Several users of one envoy share that envoy's bare repository, so
 * the envoy counts once: its replica facts come from the first user that
 * reports the project, and the member lists of all its users are merged.
 * A row's members are the union in first-seen order (envoys by name), its
 * founder the first of them. The friendly URL hint
 * `gitback://<name>/<handle>` is given when the founder is the only key of
 * a name in the name map: a contested name does not resolve.
 *
 * **Replica state.** The reference sequence is the highest `signed_seq`
 * among the project's envoys (`null` counts lowest). Among the envoys at
 * that sequence, the reference heads are the heads most of them share; on a
 * tie, those of the lexically first envoy. Then each envoy is
 *
 * - **in sync** when its heads equal the reference heads exactly (whatever
 *   its sequence),
 * - else **behind** when its `signed_seq` is lower than the reference
 *   sequence (or `null` while the reference is not),
 * - else **diverged**.
 *
 * An envoy is **stale** when `now - received >= 3 × period`
 * ({@link STALE_PERIODS}).
 *
 * **Badge.**
 *
 * - **Degraded** when an envoy is diverged, or the envoys disagree on
 *   whether the project is tombstoned.
 * - **Warning** when an envoy is behind or stale.
 * - **Healthy** otherwise.
 *
 * Reasons are short sentences naming the envoys, Degraded ones first.
 *
 * @module
 */

import type { ProjectTrait, Traits } from "../swarm/traits.ts";
import { type Badge, badgeOf, byFields, STALE_PERIODS } from "./health.ts";

/** One envoy's latest traits and when the server received them. */
export interface LatestTraits {
  envoy: string;
  /** When the server received the envoy's latest check-in (unix s, server clock). */
  received: number;
  traits: Traits;
}

/** How one envoy's replica compares with the project's reference heads. */
export type ReplicaState = "in sync" | "behind" | "diverged";

/** One envoy's replica of a project. */
export interface EnvoyReplica {
  envoy: string;
  state: ReplicaState;
  /** The envoy has not checked in for {@link STALE_PERIODS} periods. */
  stale: boolean;
  signed_seq: number | null;
  heads_count: number;
  repo_bytes: number;
  revokes: number;
  leaves: number;
  delegations: number;
  tombstoned: boolean;
}

/** One gitbackmesh row: a project across the fleet. */
export interface GitbackRow {
  project_id: string;
  handle: string;
  scope: "swarm-wide" | "members-only";
  /** The first member key, or null when no envoy lists members. */
  founder: string | null;
  /**
   * `gitback://<name>/<handle>` when the founder owns a name in the name
   * map (it is the name's only key), else null. A display hint only.
   */
  friendly_url: string | null;
  /** `gitback://<project_id>/<handle>`, the self-certifying URL. */
  url: string;
  /** Per envoy, sorted by envoy name. */
  envoys: EnvoyReplica[];
  /** Every member key the envoys list, in first-seen order. */
  members: string[];
  badge: Badge;
  /** Degraded reasons first, then Warning reasons. */
  reasons: string[];
}

const PROJECT_ID = /^[0-9a-f]{64}$/;

/** One envoy's view of one project, merged over the envoy's users. */
interface Replica {
  envoy: string;
  received: number;
  project: ProjectTrait;
  members: string[];
}

function byEnvoy(latest: LatestTraits[]): LatestTraits[] {
  return [...latest].sort((a, b) =>
    a.envoy < b.envoy ? -1 : a.envoy > b.envoy ? 1 : 0
  );
}

/**
 * Every project's replicas, envoys in name order. With `onlyId`, only that
 * project is collected.
 */
function collect(
  latest: LatestTraits[],
  onlyId?: string,
): Map<string, Replica[]> {
  const projects = new Map<string, Replica[]>();
  for (const entry of byEnvoy(latest)) {
    const here = new Map<string, Replica>();
    for (const user of entry.traits.users) {
      for (const project of user.gitback?.projects ?? []) {
        if (onlyId !== undefined && project.project_id !== onlyId) continue;
        const seen = here.get(project.project_id);
        if (seen) {
          // The same bare repository: only the member lists can add.
          for (const key of project.members) {
            if (!seen.members.includes(key)) seen.members.push(key);
          }
          continue;
        }
        const replica: Replica = {
          envoy: entry.envoy,
          received: entry.received,
          project,
          members: [...new Set(project.members)],
        };
        here.set(project.project_id, replica);
        const list = projects.get(project.project_id);
        if (list) list.push(replica);
        else projects.set(project.project_id, [replica]);
      }
    }
  }
  return projects;
}

/** A canonical text of a heads map, so that equal heads compare equal. */
function headsKey(heads: Record<string, string>): string {
  return JSON.stringify(
    Object.entries(heads).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
  );
}

/** `a` is lower than `b`, with null lowest. */
function seqBelow(a: number | null, b: number | null): boolean {
  if (b === null) return false;
  return a === null || a < b;
}

function seqText(seq: number | null): string {
  return seq === null ? "no signed state" : `signed seq ${seq}`;
}

/** The reference sequence and heads (see the module doc). */
function reference(
  replicas: Replica[],
): { seq: number | null; heads: string; holders: string[] } {
  let seq: number | null = null;
  for (const r of replicas) {
    if (seqBelow(seq, r.project.signed_seq)) seq = r.project.signed_seq;
  }
  // Replicas are in envoy order, so the first group to reach the top count
  // is the lexically first envoy's on a tie.
  const groups = new Map<string, string[]>();
  for (const r of replicas) {
    if (r.project.signed_seq !== seq) continue;
    const key = headsKey(r.project.heads);
    const group = groups.get(key);
    if (group) group.push(r.envoy);
    else groups.set(key, [r.envoy]);
  }
  let heads = "";
  let holders: string[] = [];
  for (const [key, envoys] of groups) {
    if (envoys.length > holders.length) [heads, holders] = [key, envoys];
  }
  return { seq, heads, holders };
}

/** The friendly URL hint for `founder`, or null. */
function friendlyUrl(
  founder: string | null,
  handle: string,
  names: Record<string, string[]>,
): string | null {
  if (founder === null) return null;
  for (const name of Object.keys(names).sort()) {
    const keys = names[name];
    // A name with several keys is ambiguous: resolvers refuse it, so a
    // hint with it would not work.
    if (keys.length === 1 && keys[0] === founder) {
      return `gitback://${name}/${handle}`;
    }
  }
  return null;
}

function row(
  projectId: string,
  replicas: Replica[],
  names: Record<string, string[]>,
  now: number,
  periodS: number,
): GitbackRow {
  const ref = reference(replicas);
  const first = replicas[0].project;
  const members: string[] = [];
  for (const r of replicas) {
    for (const key of r.members) if (!members.includes(key)) members.push(key);
  }
  const founder = members[0] ?? null;
  const envoys: EnvoyReplica[] = replicas.map((r) => {
    const p = r.project;
    const state: ReplicaState = headsKey(p.heads) === ref.heads
      ? "in sync"
      : seqBelow(p.signed_seq, ref.seq)
      ? "behind"
      : "diverged";
    return {
      envoy: r.envoy,
      state,
      stale: now - r.received >= STALE_PERIODS * periodS,
      signed_seq: p.signed_seq,
      heads_count: Object.keys(p.heads).length,
      repo_bytes: p.repo_bytes,
      revokes: p.revokes,
      leaves: p.leaves,
      delegations: p.delegations,
      tombstoned: p.tombstoned,
    };
  });
  const degraded: string[] = [];
  const warning: string[] = [];
  const holders = ref.holders.join(", ");
  for (const e of envoys) {
    if (e.state === "diverged") {
      degraded.push(
        `${e.envoy} has diverged from ${holders} (${seqText(ref.seq)})`,
      );
    }
  }
  const tombstoned = envoys.filter((e) => e.tombstoned).map((e) => e.envoy);
  if (tombstoned.length > 0 && tombstoned.length < envoys.length) {
    const live = envoys.filter((e) => !e.tombstoned).map((e) => e.envoy);
    degraded.push(
      `tombstoned on ${tombstoned.join(", ")} but not on ${live.join(", ")}`,
    );
  }
  for (const e of envoys) {
    if (e.state === "behind") {
      warning.push(
        `${e.envoy} is behind (${seqText(e.signed_seq)}, ${holders} at ${
          seqText(ref.seq)
        })`,
      );
    }
  }
  for (const r of replicas) {
    const silent = now - r.received;
    if (silent >= STALE_PERIODS * periodS) {
      warning.push(
        `${r.envoy} has not checked in for ${silent} s (${STALE_PERIODS} periods of ${periodS} s)`,
      );
    }
  }
  return {
    project_id: projectId,
    handle: first.handle,
    scope: first.scope,
    founder,
    friendly_url: friendlyUrl(founder, first.handle, names),
    url: `gitback://${projectId}/${first.handle}`,
    envoys,
    members,
    badge: badgeOf(degraded, warning),
    reasons: [...degraded, ...warning],
  };
}

/**
 * The gitbackmesh rows at `now` for check-ins every `periodS` seconds, one
 * per project any envoy's latest traits report, sorted by handle then
 * project id. `names` is `names.json`'s `names` (name → keys, first first).
 */
export function gitbackRows(
  latest: LatestTraits[],
  names: Record<string, string[]>,
  now: number,
  periodS: number,
): GitbackRow[] {
  const rows = [...collect(latest)].map(([id, replicas]) =>
    row(id, replicas, names, now, periodS)
  );
  return rows.sort(byFields("handle", "project_id"));
}

/** The row of project `projectId` (as {@link gitbackRows}), or null. */
export function projectView(
  latest: LatestTraits[],
  names: Record<string, string[]>,
  now: number,
  periodS: number,
  projectId: string,
): GitbackRow | null {
  const replicas = collect(latest, projectId).get(projectId);
  return replicas ? row(projectId, replicas, names, now, periodS) : null;
}

/**
 * The project ids `query` names, sorted: a 64-hex query names the project
 * with that id; any query names every project whose handle it is.
 */
export function findProjects(latest: LatestTraits[], query: string): string[] {
  const found = new Set<string>();
  const byId = PROJECT_ID.test(query);
  for (const entry of latest) {
    for (const user of entry.traits.users) {
      for (const project of user.gitback?.projects ?? []) {
        if (
          project.handle === query || (byId && project.project_id === query)
        ) {
          found.add(project.project_id);
        }
      }
    }
  }
  return [...found].sort();
}
