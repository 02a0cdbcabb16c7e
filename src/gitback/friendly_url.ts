/**
 * `gitback://<name>/<handle>`: the friendly form of a project URL. The name
 * stands for a puddle key (puddle/names.ts); the project is the one this
 * user holds with that handle whose founder, at genesis or now, is that
 * key. The id found is verified like any other: a name decides nothing.
 *
 * @module
 */

import { type NameClaim, type NameMap, resolveName } from "../puddle/names.ts";
import { currentFounderOf } from "./founder_rotation.ts";
import {
  listProjects,
  ProjectError,
  readDelegations,
  readTokens,
} from "./project.ts";

/** The id of the project `name`'s puddle founded as `handle`, held here. */
export function resolveFriendly(
  gitbackDir: string,
  name: string,
  handle: string,
  map: NameMap,
  own: NameClaim | null,
): string {
  const key = resolveName(name, map, own);
  for (const project of listProjects(gitbackDir)) {
    if (project.handle !== handle || project.tombstone) continue;
    if (project.founder === key) return project.project_id;
    try {
      const chain = readTokens(gitbackDir, project.project_id).chain;
      const delegations = readDelegations(gitbackDir, project.project_id);
      if (currentFounderOf(chain, delegations) === key) {
        return project.project_id;
      }
    } catch {
      // Unreadable state names no founder.
    }
  }
  throw new ProjectError(
    `you hold no project ${handle} founded by ${name} (${key}).`,
    "join it with an invitation first, or use the hex form gitback://<project_id>/<handle>.",
  );
}
