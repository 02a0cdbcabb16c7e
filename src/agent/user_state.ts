/**
 * A managed user's gitback state, as the agent (root) reads it: every
 * directory and file through {@link OwnedDir}, so a symlink, a FIFO or a
 * file the user does not own is refused instead of followed or waited on.
 * What is read here is only ever the user's own claim; decisions that need
 * more rest on proof of possession (puddle_bindings.ts) or on signatures.
 *
 * @module
 */

import { OwnedDir, withOwnedDir } from "../platform/user_files.ts";
import { LEFT_FILE, MAX_LEFT_BYTES, parseLeft } from "../gitback/left.ts";
import type { ManagedHome } from "../envoy/user_homes.ts";
import {
  checkScopeStatement,
  DEFAULT_SCOPE,
  type Scope,
  type ScopeStatementWire,
} from "../gitback/scope_statement.ts";

const PROJECT_ID = /^[0-9a-f]{64}$/;
/** Project directories looked at per user and pass. */
const MAX_PROJECTS_PER_USER = 4096;

/** Where gitback state lives below a home. */
export const GITBACK_DIR = ".vigo-gitback";

/** One project a user holds state for. */
export interface UserProject {
  projectId: string;
  handle: string;
  /**
   * What the founder's statement in `project.json` says once it verified;
   * `members-only` without one (the file's `scope` field decides nothing).
   */
  scope: Scope;
  /** That statement, verified, or null. */
  scopeStatement: ScopeStatementWire | null;
}

/** What {@link readUserProject} can add. */
export interface UserProjectState extends UserProject {
  /** `tokens.json`'s chain, when asked for and present. */
  chain?: unknown[];
  /**
   * `delegations.json`'s list, when asked for: the user's claim, which a
   * verifier merges with what the envoy recorded (delegation_store.ts).
   */
  delegations?: unknown[];
}

/** Largest `delegations.json` read: five of the largest delegations fit. */
const MAX_DELEGATIONS_FILE_BYTES = 256 * 1024;

/** `delegations.json` of an opened project directory; none when absent. */
export function delegationsIn(dir: OwnedDir): unknown[] {
  if (!dir.has("delegations.json")) return [];
  const file = dir.readJson("delegations.json", MAX_DELEGATIONS_FILE_BYTES) as {
    delegations?: unknown;
  };
  return Array.isArray(file?.delegations) ? file.delegations : [];
}

function projectFrom(dir: OwnedDir, projectId: string): UserProject | null {
  try {
    const project = dir.readJson("project.json") as {
      project_id?: unknown;
      handle?: unknown;
      scope_statement?: unknown;
    };
    if (typeof project?.handle !== "string") return null;
    const statement = checkScopeStatement(project.scope_statement, projectId);
    return {
      projectId,
      handle: project.handle,
      scope: statement?.body.scope ?? DEFAULT_SCOPE,
      scopeStatement: statement?.wire ?? null,
    };
  } catch {
    return null;
  }
}

/** The project directories in an opened `~/.vigo-gitback` (bounded). */
export function projectIdsIn(gitbackDir: OwnedDir): string[] {
  return gitbackDir.list(MAX_PROJECTS_PER_USER * 4)
    .filter((e) => e.isDirectory && PROJECT_ID.test(e.name))
    .slice(0, MAX_PROJECTS_PER_USER)
    .map((e) => e.name);
}

/** The ids of the project directories a user holds (not followed if symlinks). */
export function userProjectIds(home: ManagedHome): string[] {
  try {
    return withOwnedDir(
      home.home,
      home.uid,
      GITBACK_DIR,
      projectIdsIn,
      [] as string[],
    );
  } catch {
    // Refused (not the user's, a symlink): nothing is held there.
    return [];
  }
}

/** Every project with a readable `project.json`. */
export function listUserProjects(home: ManagedHome): UserProject[] {
  const projects: UserProject[] = [];
  for (const id of userProjectIds(home)) {
    const project = readUserProject(home, id);
    if (project) projects.push(project);
  }
  return projects;
}

/**
 * One project's state, or null when the user holds none (or it is not
 * readable as theirs). `include.chain` asks for the token chain too,
 * `include.delegations` for the founder's delegations.
 */
export function readUserProject(
  home: ManagedHome,
  projectId: string,
  include: { chain?: boolean; delegations?: boolean } = {},
): UserProjectState | null {
  if (!PROJECT_ID.test(projectId)) return null;
  try {
    return withOwnedDir(
      home.home,
      home.uid,
      `${GITBACK_DIR}/${projectId}`,
      (dir) => {
        const project: UserProjectState | null = projectFrom(dir, projectId);
        if (!project) return null;
        if (include.chain) {
          try {
            const tokens = dir.readJson("tokens.json") as { chain?: unknown };
            if (Array.isArray(tokens?.chain)) project.chain = tokens.chain;
          } catch {
            // No chain here.
          }
        }
        if (include.delegations) {
          try {
            project.delegations = delegationsIn(dir);
          } catch {
            // Unreadable: none offered.
          }
        }
        return project;
      },
      null,
    );
  } catch {
    return null;
  }
}

/** True when the user has a state directory for `projectId` (owned, real). */
export function holdsProjectDir(home: ManagedHome, projectId: string): boolean {
  if (!PROJECT_ID.test(projectId)) return false;
  try {
    return withOwnedDir(
      home.home,
      home.uid,
      GITBACK_DIR,
      (dir) => dir.has(projectId),
      false,
    );
  } catch {
    return false;
  }
}

/**
 * The projects a user dropped on this envoy (`~/.vigo-gitback/left.json`,
 * see gitback/left.ts), which nothing adopts for them again until they
 * join again. Null when the record is there but cannot be read as theirs:
 * then nothing is adopted for them at all.
 */
export function userLeftProjects(home: ManagedHome): Set<string> | null {
  try {
    return withOwnedDir(
      home.home,
      home.uid,
      GITBACK_DIR,
      (dir) =>
        dir.has(LEFT_FILE)
          ? new Set(parseLeft(dir.readJson(LEFT_FILE, MAX_LEFT_BYTES)).keys())
          : new Set<string>(),
      new Set<string>(),
    );
  } catch {
    return null;
  }
}
