/**
 * The revocations an envoy knows of: one verified REVOKE per revoked token,
 * and one verified LEAVE per token whose holder left, both stored
 * root-side by the agent's sweep and gossip. A LEAVE counts as the
 * leaver's revocation of their own token: every verifier refuses a chain
 * through a left token exactly as through a revoked one. Joining again
 * brings a new token, which no LEAVE names.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { MAX_ENVELOPE_BYTES, storedEnvelopeInfo } from "./envelopes.ts";
import { envelopesDir } from "./repo.ts";

const STORED_NAME = /^([0-9a-f]{64})\.json$/;
/** A stored envelope file is its base64 body, a signature and a little JSON. */
const MAX_STORED_FILE_BYTES = MAX_ENVELOPE_BYTES + 1024;

/**
 * Per leaves directory: stored file name → the token that LEAVE leaves
 * (null: not a readable LEAVE). A stored file never changes (its name is
 * the id of its body), so an entry stays right for as long as the file
 * exists; entries of files gone are dropped on the next look.
 */
const leftByDir = new Map<string, Map<string, string | null>>();

/** Names of the stored files in `dir`; none when it does not exist. */
function storedFiles(dir: string): string[] | null {
  try {
    const names: string[] = [];
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.isFile && STORED_NAME.test(entry.name)) names.push(entry.name);
    }
    return names;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * The token a stored LEAVE leaves; null when the file is gone or is not a
 * current LEAVE (damaged, or of an old format: the reaper removes those).
 * Any other failure to read it is thrown: refusing everything for a moment
 * is better than accepting a token that was left.
 */
function leftTokenOf(path: string): string | null {
  let bytes: Uint8Array;
  try {
    // Larger than any envelope: not one this envoy stored.
    if (Deno.statSync(path).size > MAX_STORED_FILE_BYTES) return null;
    bytes = Deno.readFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  if (bytes.length > MAX_STORED_FILE_BYTES) return null;
  try {
    return storedEnvelopeInfo(
      JSON.parse(new TextDecoder().decode(bytes)),
      "leaves",
    ).tokenId;
  } catch {
    return null;
  }
}

/**
 * Ids of the tokens whose holders left `projectId`, as this envoy knows
 * them: the `token_id` of every stored LEAVE. Each file is read once per
 * process; later calls list the directory only.
 */
export function leftTokenIds(
  paths: SystemPaths,
  projectId: string,
): Set<string> {
  const dir = envelopesDir(paths, projectId, "leaves");
  const names = storedFiles(dir);
  if (names === null) {
    leftByDir.delete(dir);
    return new Set();
  }
  let known = leftByDir.get(dir);
  if (!known) leftByDir.set(dir, known = new Map());
  const present = new Set(names);
  for (const name of known.keys()) if (!present.has(name)) known.delete(name);
  const ids = new Set<string>();
  for (const name of names) {
    let tokenId = known.get(name);
    if (tokenId === undefined) {
      tokenId = leftTokenOf(`${dir}/${name}`);
      known.set(name, tokenId);
    }
    if (tokenId !== null) ids.add(tokenId);
  }
  return ids;
}

/**
 * Ids of every token this envoy refuses in `projectId`: the revoked ones
 * (stored REVOKEs are named by the token they revoke) and the left ones
 * ({@link leftTokenIds}). Every verifier passes this to `verifyChain`.
 */
export function revokedTokenIds(
  paths: SystemPaths,
  projectId: string,
): Set<string> {
  const ids = leftTokenIds(paths, projectId);
  for (
    const name of storedFiles(envelopesDir(paths, projectId, "revokes")) ?? []
  ) {
    ids.add(STORED_NAME.exec(name)![1]);
  }
  return ids;
}
