/**
 * The revocations an envoy knows of: one verified envelope per revoked
 * token, stored root-side by the agent's sweep and gossip.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { envelopesDir } from "./repo.ts";

/** Ids of every token revoked in `projectId`, as this envoy knows them. */
export function revokedTokenIds(
  paths: SystemPaths,
  projectId: string,
): Set<string> {
  const ids = new Set<string>();
  try {
    for (
      const entry of Deno.readDirSync(envelopesDir(paths, projectId, "revokes"))
    ) {
      const match = /^([0-9a-f]{64})\.json$/.exec(entry.name);
      if (entry.isFile && match) ids.add(match[1]);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return ids;
}
