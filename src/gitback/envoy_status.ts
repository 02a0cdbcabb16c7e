/**
 * The envoy-wide gitback view: every user's projects joined with the bare
 * repositories and stored envelopes. The agent (root) computes it for
 * `vigo swarm gitback status`; a user without the agent gets a partial view.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { exists } from "../platform/fs.ts";
import {
  bareRepoPath,
  diskUsage,
  envelopesDir,
  gitbackBase,
  listRefs,
  projectsDir,
} from "./repo.ts";
import { readRefStates } from "./ref_state.ts";
import { LOST_REFS } from "./ref_apply.ts";
import { decodeToken } from "./tokens.ts";

/** One project as seen from this envoy. */
export interface EnvoyProject {
  project_id: string;
  handle: string;
  scope: string;
  bare_repo: boolean;
  refs: number;
  bytes: number;
  /** Sequence number of the signed ref state the repository is at. */
  signed_seq: number | null;
  /** Tips kept after conflicting pushes (ref_apply.ts): name → object id. */
  lost: Record<string, string>;
  /** Founder delegations the agent recorded; absent without an agent. */
  delegations?: number;
  /**
   * The founder now: the last delegation's new key, else the genesis
   * founder of the repository's signed state; null when neither is known.
   */
  current_founder?: string | null;
  /** True when peers offered delegations that conflict with the record. */
  conflicted?: boolean;
  /**
   * True when the agent holds the founder's tombstone of the project
   * (tombstone.ts) and refuses git for it; absent without an agent.
   */
  tombstoned?: boolean;
  /** The project it was re-founded as, by that tombstone; null with none. */
  successor?: string | null;
}

/** What the agent recorded of a project's founder delegations. */
export interface FounderRecord {
  delegations: number;
  /** The last delegation's new key; null with none. */
  current_founder: string | null;
  conflicted: boolean;
}

/** What the agent holds of a project's tombstone. */
export interface TombstoneRecord {
  /** The project it was re-founded as; null when none is named. */
  successor: string | null;
}

/** What `status` prints. */
export interface EnvoyStatus {
  base: string;
  projects: EnvoyProject[];
  bare_bytes: number;
  revokes: number;
  leaves: number;
}

/** A project some user holds, as the status lists it. */
export interface HeldByUser {
  project_id: string;
  handle: string;
  scope: string;
}

/**
 * Collects the view of `projects` (the users' own state, read by the
 * caller). With `everything`, which only root may see, bare repositories no
 * listed user holds and the envelope counts of every project are included;
 * otherwise envelopes are counted for the listed projects only. With
 * `founders` (the agent's delegation record), each project says how many
 * delegations are recorded, who its founder is now, and whether the record
 * holds conflicts. With `tombstones` (the agent's verified tombstones),
 * each project says whether it is tombstoned and what succeeds it.
 */
export async function collectEnvoyStatus(
  paths: SystemPaths,
  projects: HeldByUser[],
  everything: boolean,
  founders?: (projectId: string) => FounderRecord | null,
  tombstones?: (projectId: string) => TombstoneRecord | null,
): Promise<EnvoyStatus> {
  const byId = new Map<string, EnvoyProject>();
  for (const project of projects) {
    if (byId.has(project.project_id)) continue;
    byId.set(project.project_id, {
      project_id: project.project_id,
      handle: project.handle,
      scope: project.scope,
      bare_repo: false,
      refs: 0,
      bytes: 0,
      signed_seq: null,
      lost: {},
    });
  }
  const listed = new Set(byId.keys());
  try {
    if (!everything) throw new Error("only the caller's projects");
    for (const entry of Deno.readDirSync(projectsDir(paths))) {
      const match = /^([0-9a-f]{64})\.git$/.exec(entry.name);
      if (match && !byId.has(match[1])) {
        byId.set(match[1], {
          project_id: match[1],
          handle: "(no local member)",
          scope: "-",
          bare_repo: false,
          refs: 0,
          bytes: 0,
          signed_seq: null,
          lost: {},
        });
      }
    }
  } catch {
    // No bare repos, or not readable by this caller.
  }
  let bareBytes = 0;
  for (const project of byId.values()) {
    const record = founders?.(project.project_id);
    if (record) {
      project.delegations = record.delegations;
      project.current_founder = record.current_founder;
      project.conflicted = record.conflicted;
    }
    if (tombstones) {
      const tombstone = tombstones(project.project_id);
      project.tombstoned = tombstone !== null;
      project.successor = tombstone?.successor ?? null;
    }
    const facts = await repositoryFacts(paths, project.project_id);
    // Unreadable or absent: shown as no bare repo.
    if (!facts) continue;
    project.refs = facts.refs.size;
    project.signed_seq = facts.signedSeq;
    // Never rotated: the founder is the genesis key, the chain's root.
    if (record && record.current_founder === null && facts.signedSeq !== null) {
      project.current_founder = facts.genesis;
    }
    project.lost = Object.fromEntries(
      [...facts.refs].filter(([ref]) => ref.startsWith(LOST_REFS)),
    );
    project.bytes = facts.bytes;
    project.bare_repo = true;
    bareBytes += project.bytes;
  }
  const base = gitbackBase(paths);
  return {
    base,
    projects: [...byId.values()].sort((a, b) =>
      a.handle.localeCompare(b.handle)
    ),
    bare_bytes: bareBytes,
    revokes: countKind(paths, "revokes", everything ? null : listed),
    leaves: countKind(paths, "leaves", everything ? null : listed),
  };
}

/** What a project's bare repository here holds. */
export interface RepositoryFacts {
  /** Every ref: name → object id. */
  refs: Map<string, string>;
  /** The sequence of the signed ref state it is at; null with none. */
  signedSeq: number | null;
  /** That state's genesis founder (its chain's root); null with none. */
  genesis: string | null;
  /** Bytes on disk. */
  bytes: number;
}

/**
 * The facts of `projectId`'s bare repository here, read once; null when
 * there is none or it cannot be read (root reads it; others may not).
 */
export async function repositoryFacts(
  paths: SystemPaths,
  projectId: string,
): Promise<RepositoryFacts | null> {
  const repo = bareRepoPath(paths, projectId);
  if (!exists(repo)) return null;
  try {
    const refs = await listRefs(repo);
    const current = readRefStates(repo).current;
    return {
      refs,
      signedSeq: current?.body.seq ?? null,
      genesis: current ? genesisOf(current.wire.chain) : null,
      bytes: diskUsage(repo),
    };
  } catch {
    return null;
  }
}

function genesisOf(chain: unknown[]): string | null {
  try {
    return decodeToken(chain[0]).body.issuer;
  } catch {
    return null;
  }
}

function countKind(
  paths: SystemPaths,
  kind: "revokes" | "leaves",
  only: Set<string> | null,
): number {
  let count = 0;
  try {
    for (const project of Deno.readDirSync(`${gitbackBase(paths)}/envelopes`)) {
      if (only && !only.has(project.name)) continue;
      count += countProjectEnvelopes(paths, project.name, kind);
    }
  } catch {
    // No envelopes.
  }
  return count;
}

/**
 * How many envelopes of `kind` (revokes or leaves) this envoy stores for
 * `projectId`; 0 when none (or the id is not one).
 */
export function countProjectEnvelopes(
  paths: SystemPaths,
  projectId: string,
  kind: "revokes" | "leaves",
): number {
  if (!/^[0-9a-f]{64}$/.test(projectId)) return 0;
  let count = 0;
  try {
    for (const _ of Deno.readDirSync(envelopesDir(paths, projectId, kind))) {
      count++;
    }
  } catch {
    // None of this kind.
  }
  return count;
}

/**
 * Asks the agent listening on `socketPath` for its status
 * (`{"op":"status"}`); null when no agent answers within 10 s.
 */
export async function askAgentStatus(
  socketPath: string,
): Promise<EnvoyStatus | null> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socketPath });
  } catch {
    return null;
  }
  // An agent that does not answer in time is treated as absent.
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }, 10_000);
  try {
    await conn.write(new TextEncoder().encode('{"op":"status"}\n'));
    const chunks: Uint8Array[] = [];
    let size = 0;
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      size += n;
      if (size > 16 * 1024 * 1024) return null;
      if (buffer.subarray(0, n).includes(0x0a)) break;
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    const reply = JSON.parse(new TextDecoder().decode(bytes).split("\n")[0]);
    return reply.ok ? reply.status as EnvoyStatus : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
