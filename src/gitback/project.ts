/**
 * Per-user project state: `~/.vigo-gitback/<project_id>/project.json`,
 * `tokens.json` and, once the founder rotated, `delegations.json`, all 0600
 * in 0700 directories, written atomically. (The queue `tombstone.pending`
 * belongs to tombstone.ts.)
 *
 * @module
 */

import {
  ensurePrivateDir,
  exists,
  readFileBounded,
  removeIfExists,
  writeTextAtomic,
} from "../platform/fs.ts";
import type { DelegationWire } from "./delegations.ts";
import {
  checkScopeStatement,
  type Scope,
  type ScopeStatementWire,
} from "./scope_statement.ts";
import { checkTombstone, type TombstoneWire } from "./tombstone.ts";

export type { Scope } from "./scope_statement.ts";

/** `project.json`. */
export interface ProjectConfig {
  version: 1;
  project_id: string;
  handle: string;
  /** The genesis founder's key, `ed25519:<hex>`. */
  founder: string;
  /**
   * For display: what {@link ProjectConfig.scope_statement} says when there
   * is one. Envoys go by the statement alone, and treat a project without
   * one as members-only.
   */
  scope: Scope;
  /**
   * The founder's signed statement of the scope (scope_statement.ts), or
   * null when this state has none that verifies.
   */
  scope_statement?: ScopeStatementWire | null;
  /** Puddle keys (`ed25519:<hex>`) known to be members, founder first. */
  members: string[];
  /** Hosts to push to beyond those announcing the project on the LAN. */
  cross_subnet_members: string[];
  created_at: string;
  /**
   * For display: when the project was tombstoned, the time its
   * {@link ProjectConfig.tombstone} was signed when there is one. Without a
   * statement it marks a project this user gave up locally (a rekey at the
   * delegation cap), which no envoy goes by.
   */
  tombstoned_at: string | null;
  /**
   * The current founder's signed tombstone (tombstone.ts), or null when
   * this state has none that verifies with the delegations held here.
   */
  tombstone?: TombstoneWire | null;
}

/** `tokens.json`: this user's own chain, root first. */
export interface TokenStore {
  version: 1;
  chain: unknown[];
}

const PROJECT_ID = /^[0-9a-f]{64}$/;
const MAX_STATE_BYTES = 256 * 1024;

/** Raised when a project argument or the state on disk is unusable. */
export class ProjectError extends Error {
  /** What to do next. */
  hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "ProjectError";
    this.hint = hint;
  }
}

/** The state directory of one project. */
export function projectDir(gitbackDir: string, projectId: string): string {
  return `${gitbackDir}/${projectId}`;
}

/** Reads a state file as JSON; a missing file raises `missing`. */
function readJson(path: string, missing: ProjectError): unknown {
  try {
    return JSON.parse(
      new TextDecoder().decode(readFileBounded(path, MAX_STATE_BYTES)),
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw missing;
    throw new ProjectError(`${path} is not valid JSON; restore or remove it.`);
  }
}

/** Reads `project.json` of `projectId`. */
export function readProject(
  gitbackDir: string,
  projectId: string,
): ProjectConfig {
  const path = `${projectDir(gitbackDir, projectId)}/project.json`;
  const p = readJson(
    path,
    new ProjectError(
      `you have no local state for project ${projectId}.`,
      "`vigo swarm gitback project list` shows the projects you hold.",
    ),
  ) as Partial<ProjectConfig>;
  if (p?.project_id !== projectId || typeof p.handle !== "string") {
    throw new ProjectError(`${path} does not describe project ${projectId}.`);
  }
  // The scope is the statement's; one that does not verify counts as none,
  // and leaves the project members-only.
  const statement = checkScopeStatement(p.scope_statement, projectId);
  const present = p.scope_statement !== undefined && p.scope_statement !== null;
  // A tombstone counts only when it verifies with the delegations held here.
  let delegations: DelegationWire[] = [];
  if (p.tombstone !== undefined && p.tombstone !== null) {
    try {
      delegations = readDelegations(gitbackDir, projectId);
    } catch {
      // Unreadable: the walk starts at the genesis founder.
    }
  }
  const tombstone = checkTombstone(p.tombstone, { projectId, delegations });
  return {
    version: 1,
    project_id: projectId,
    handle: p.handle,
    founder: String(p.founder ?? ""),
    scope: statement
      ? statement.body.scope
      : present || p.scope === "members-only"
      ? "members-only"
      : "swarm-wide",
    scope_statement: statement?.wire ?? null,
    members: Array.isArray(p.members) ? p.members.map(String) : [],
    cross_subnet_members: Array.isArray(p.cross_subnet_members)
      ? p.cross_subnet_members.map(String)
      : [],
    created_at: String(p.created_at ?? ""),
    // Only the founder's statement tombstones; a time written by hand
    // (or by older versions) means nothing, here as on the agent.
    tombstoned_at: tombstone
      ? new Date(tombstone.body.at * 1000).toISOString()
      : null,
    tombstone: tombstone?.wire ?? null,
  };
}

/** Reads this user's chain for `projectId`. */
export function readTokens(gitbackDir: string, projectId: string): TokenStore {
  const path = `${projectDir(gitbackDir, projectId)}/tokens.json`;
  const value = readJson(
    path,
    new ProjectError(
      `you hold no token for project ${projectId}.`,
      "ask an admin of the project for an invitation, then run `vigo swarm gitback project join`.",
    ),
  );
  const chain = (value as Partial<TokenStore>)?.chain;
  if (!Array.isArray(chain) || chain.length === 0) {
    throw new ProjectError(`${path} holds no token chain.`);
  }
  return { version: 1, chain };
}

/** `delegations.json`: the founder's delegations, first rotation first. */
export interface DelegationsFile {
  version: 1;
  delegations: DelegationWire[];
}

/**
 * The delegations this user holds for `projectId`: none when the file is
 * missing. Verifiers check them; this only reads the list.
 */
export function readDelegations(
  gitbackDir: string,
  projectId: string,
): DelegationWire[] {
  const path = `${projectDir(gitbackDir, projectId)}/delegations.json`;
  if (!exists(path)) return [];
  const value = readJson(path, new ProjectError(`${path} vanished.`));
  const list = (value as Partial<DelegationsFile>)?.delegations;
  if (!Array.isArray(list)) {
    throw new ProjectError(`${path} holds no list of delegations.`);
  }
  return list as DelegationWire[];
}

/** Writes `delegations.json`, or removes it when `delegations` is empty. */
export function writeDelegations(
  gitbackDir: string,
  projectId: string,
  delegations: readonly DelegationWire[],
): void {
  const path = `${projectDir(gitbackDir, projectId)}/delegations.json`;
  if (delegations.length === 0) {
    removeIfExists(path);
    return;
  }
  const file: DelegationsFile = { version: 1, delegations: [...delegations] };
  writeTextAtomic(path, JSON.stringify(file, null, 2) + "\n", 0o600);
}

/**
 * Keeps a chain this user issued (`issued.json`), so they can later revoke
 * it and so a rotation can seal it.
 */
export function recordIssued(
  gitbackDir: string,
  projectId: string,
  chain: unknown[],
): void {
  const path = `${projectDir(gitbackDir, projectId)}/issued.json`;
  const issued = readIssued(gitbackDir, projectId);
  issued.push(chain);
  writeTextAtomic(path, JSON.stringify(issued, null, 2) + "\n", 0o600);
}

/** The chains this user issued for `projectId`, oldest first. */
export function readIssued(gitbackDir: string, projectId: string): unknown[][] {
  const path = `${projectDir(gitbackDir, projectId)}/issued.json`;
  if (!exists(path)) return [];
  try {
    const value = JSON.parse(
      new TextDecoder().decode(readFileBounded(path, MAX_STATE_BYTES)),
    );
    return Array.isArray(value) ? value.filter(Array.isArray) : [];
  } catch {
    return [];
  }
}

/** Writes `project.json` and `tokens.json` (the directory is made 0700). */
export function writeProjectState(
  gitbackDir: string,
  project: ProjectConfig,
  tokens?: TokenStore,
): void {
  ensurePrivateDir(gitbackDir);
  const dir = projectDir(gitbackDir, project.project_id);
  ensurePrivateDir(dir);
  if (tokens) {
    writeTextAtomic(
      `${dir}/tokens.json`,
      JSON.stringify(tokens, null, 2) + "\n",
      0o600,
    );
  }
  writeTextAtomic(
    `${dir}/project.json`,
    JSON.stringify(project, null, 2) + "\n",
    0o600,
  );
}

/** Every project this user holds state for, sorted by handle. */
export function listProjects(gitbackDir: string): ProjectConfig[] {
  const projects: ProjectConfig[] = [];
  try {
    for (const entry of Deno.readDirSync(gitbackDir)) {
      if (!entry.isDirectory || !PROJECT_ID.test(entry.name)) continue;
      if (!exists(`${gitbackDir}/${entry.name}/project.json`)) continue;
      try {
        projects.push(readProject(gitbackDir, entry.name));
      } catch {
        // A damaged project is reported by `project status`, not listed.
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return projects.sort((a, b) => a.handle.localeCompare(b.handle));
}

/**
 * Resolves a `<project_id>` argument: the full hex id, or a handle prefix
 * that matches exactly one local project.
 */
export function resolveProject(gitbackDir: string, arg: string): ProjectConfig {
  const projects = listProjects(gitbackDir);
  if (PROJECT_ID.test(arg)) {
    const found = projects.find((p) => p.project_id === arg);
    if (found) return found;
    throw new ProjectError(
      `you have no local state for project ${arg}.`,
      "`vigo swarm gitback project list` shows the projects you hold.",
    );
  }
  const exact = projects.filter((p) => p.handle === arg);
  if (exact.length === 1) return exact[0];
  // After a re-found the old and the new project share the handle; the
  // handle means the live one (the old is reached by its id).
  const live = exact.filter((p) => !p.tombstoned_at);
  if (exact.length > 1 && live.length === 1) return live[0];
  const matches = projects.filter((p) => p.handle.startsWith(arg));
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) {
    throw new ProjectError(
      `no local project matches ${JSON.stringify(arg)}.`,
      "give the 64-hex project id or a handle prefix from `vigo swarm gitback project list`.",
    );
  }
  throw new ProjectError(
    `${JSON.stringify(arg)} matches several projects (${
      matches.map((p) => p.handle).join(", ")
    }).`,
    "give a longer handle prefix or the full project id.",
  );
}
