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
  gitbackBase,
  listRefs,
  projectsDir,
} from "./repo.ts";

/** One project as seen from this envoy. */
export interface EnvoyProject {
  project_id: string;
  handle: string;
  scope: string;
  bare_repo: boolean;
  refs: number;
  bytes: number;
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
 * otherwise envelopes are counted for the listed projects only.
 */
export async function collectEnvoyStatus(
  paths: SystemPaths,
  projects: HeldByUser[],
  everything: boolean,
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
        });
      }
    }
  } catch {
    // No bare repos, or not readable by this caller.
  }
  let bareBytes = 0;
  for (const project of byId.values()) {
    const repo = bareRepoPath(paths, project.project_id);
    if (!exists(repo)) continue;
    try {
      project.refs = (await listRefs(repo)).size;
      project.bytes = diskUsage(repo);
      project.bare_repo = true;
      bareBytes += project.bytes;
    } catch {
      // Unreadable: shown as no bare repo.
    }
  }
  const base = gitbackBase(paths);
  return {
    base,
    projects: [...byId.values()].sort((a, b) =>
      a.handle.localeCompare(b.handle)
    ),
    bare_bytes: bareBytes,
    revokes: countKind(base, "revokes", everything ? null : listed),
    leaves: countKind(base, "leaves", everything ? null : listed),
  };
}

function countKind(
  base: string,
  kind: string,
  only: Set<string> | null,
): number {
  let count = 0;
  try {
    for (const project of Deno.readDirSync(`${base}/envelopes`)) {
      if (only && !only.has(project.name)) continue;
      try {
        for (
          const _ of Deno.readDirSync(
            `${base}/envelopes/${project.name}/${kind}`,
          )
        ) count++;
      } catch {
        // None of this kind.
      }
    }
  } catch {
    // No envelopes.
  }
  return count;
}
