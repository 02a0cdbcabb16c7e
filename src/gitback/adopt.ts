/**
 * Adoption at `puddle unlock`: projects that peers announce and that this
 * puddle founded become local projects here, so a freshly paired envoy gets
 * its repositories (through DR catch-up) without manual steps.
 *
 * @module
 */

import { formatPublicKey } from "../crypto/ed25519.ts";
import { exists } from "../platform/fs.ts";
import { projectId as computeProjectId } from "./project_id.ts";
import { projectDir, writeProjectState } from "./project.ts";
import { mintBootstrapToken, type Signer } from "./tokens.ts";

/** Hidden CLI verb by which the agent writes an adopted membership as the user. */
export const ADOPT_VERB = "_adopt-project";

/** Reads the agent's cache of announced projects (empty when absent). */
export function readAnnounced(
  path: string,
): { projectId: string; handle?: string; scope?: string }[] {
  try {
    const value = JSON.parse(Deno.readTextFileSync(path));
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

/**
 * Adopts every announced project whose id this signer's key and the
 * announced handle reproduce, and that has no local state yet. Returns the
 * handles adopted.
 */
export async function adoptFoundedProjects(
  gitbackDir: string,
  announcedPath: string,
  signer: Signer,
): Promise<string[]> {
  const adopted: string[] = [];
  const founder = formatPublicKey(signer.publicKey);
  for (const entry of readAnnounced(announcedPath)) {
    const handle = entry.handle;
    if (typeof handle !== "string" || typeof entry.projectId !== "string") {
      continue;
    }
    if (exists(`${projectDir(gitbackDir, entry.projectId)}/project.json`)) {
      continue;
    }
    let id: string;
    try {
      id = await computeProjectId(signer.publicKey, handle);
    } catch {
      continue;
    }
    if (id !== entry.projectId || adopted.includes(handle)) continue;
    const token = await mintBootstrapToken(signer, handle);
    writeProjectState(gitbackDir, {
      version: 1,
      project_id: id,
      handle,
      founder,
      scope: entry.scope === "members-only" ? "members-only" : "swarm-wide",
      members: [founder],
      cross_subnet_members: [],
      created_at: new Date().toISOString(),
      tombstoned_at: null,
    }, { version: 1, chain: [token] });
    adopted.push(handle);
  }
  return adopted;
}
