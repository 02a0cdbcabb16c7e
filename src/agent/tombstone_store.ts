/**
 * The envoy's record of tombstoned projects: the current founder's signed
 * tombstone itself (gitback/tombstone.ts), `{"body","sig"}` at
 * `tombstonePath` (`<gitback base>/tombstones/<project_id>`, 0644 in a
 * 0755 directory: a tombstone is public), written atomically, and only once
 * it verified with the founder delegations this envoy holds merged with
 * those offered beside it (delegation_store.ts, first seen wins).
 *
 * The stored statement is the one source of truth of "tombstoned" here:
 * every check ({@link readTombstone}, {@link isTombstoned}) verifies it
 * again against the delegations recorded now (remembered while neither
 * file changes), so a file that does not verify tombstones nothing. The
 * first tombstone verified for a project stays; a different one, however
 * well signed, is not stored over it (logged once at WARN).
 *
 * @module
 */

import { writeTextAtomic } from "../platform/fs.ts";
import type { SystemPaths } from "../platform/paths.ts";
import { gitbackBase, tombstonePath } from "../gitback/repo.ts";
import {
  decodeTombstone,
  MAX_TOMBSTONE_FILE_BYTES,
  tombstonedMessage,
  TombstoneError,
  tombstoneGenesis,
  type VerifiedTombstone,
  verifyTombstone,
} from "../gitback/tombstone.ts";
import {
  delegationRecordPath,
  storedDelegations,
  verifyWithDelegations,
} from "./delegation_store.ts";
import type { Logger } from "../platform/log.ts";

const PROJECT_ID = /^[0-9a-f]{64}$/;

/** Verdicts by project, valid while both files are as they were. */
const verdicts = new Map<
  string,
  { key: string; tombstone: VerifiedTombstone | null }
>();
/** Conflicts already logged: `<project> <kept> <offered>`. */
const conflictsLogged = new Set<string>();

/** What identifies a file's current contents; "-" when there is none. */
function stamp(path: string): string {
  try {
    const info = Deno.lstatSync(path);
    return `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "-";
    throw error;
  }
}

function readStored(path: string): unknown {
  const info = Deno.lstatSync(path);
  if (!info.isFile || info.size > MAX_TOMBSTONE_FILE_BYTES) return null;
  return JSON.parse(Deno.readTextFileSync(path));
}

/**
 * The tombstone stored for `projectId`, verified again with the
 * delegations recorded here; null when there is none, or it does not
 * verify (nor when the delegation record cannot be read).
 */
export function readTombstone(
  paths: SystemPaths,
  projectId: string,
): VerifiedTombstone | null {
  if (typeof projectId !== "string" || !PROJECT_ID.test(projectId)) {
    return null;
  }
  const path = tombstonePath(paths, projectId);
  let key: string;
  try {
    key = `${stamp(path)} ${stamp(delegationRecordPath(paths, projectId))}`;
  } catch {
    return null;
  }
  if (key.startsWith("- ")) {
    verdicts.delete(path);
    return null;
  }
  const known = verdicts.get(path);
  if (known?.key === key) return known.tombstone;
  let tombstone: VerifiedTombstone | null;
  try {
    tombstone = verifyTombstone(readStored(path), {
      projectId,
      delegations: storedDelegations(paths, projectId),
    });
  } catch {
    tombstone = null;
  }
  verdicts.set(path, { key, tombstone });
  return tombstone;
}

/** True when a tombstone that verifies is stored for `projectId`. */
export function isTombstoned(paths: SystemPaths, projectId: string): boolean {
  return readTombstone(paths, projectId) !== null;
}

/**
 * The sentence git and the routes refuse a tombstoned `projectId` with,
 * naming its successor when there is one; null when it is not tombstoned.
 */
export function tombstoneRefusal(
  paths: SystemPaths,
  projectId: string,
): string | null {
  const tombstone = readTombstone(paths, projectId);
  return tombstone ? tombstonedMessage(tombstone.body) : null;
}

/**
 * Verifies a tombstone for `projectId` with the delegations recorded here
 * merged with `options.delegations` (offered beside it) and stores it.
 * Returns true when it was stored now, false when this one or another
 * verified tombstone of the project is stored already (the first stays).
 * Throws a TombstoneError, or a TokenError for a malformed delegation
 * offer, when it does not verify; nothing is written then.
 */
export async function acceptTombstone(
  paths: SystemPaths,
  projectId: string,
  wire: unknown,
  options: { delegations?: unknown; log?: Logger } = {},
): Promise<boolean> {
  if (typeof projectId !== "string" || !PROJECT_ID.test(projectId)) {
    throw new TombstoneError(
      "malformed",
      "a project id must be 64 hex digits.",
    );
  }
  const decoded = decodeTombstone(wire);
  const verified = await verifyWithDelegations(
    paths,
    projectId,
    options.delegations,
    () => Promise.resolve(tombstoneGenesis(decoded, projectId)),
    (delegations) =>
      Promise.resolve(
        verifyTombstone(decoded.wire, { projectId, delegations }),
      ),
    options.log,
  );
  // From here on nothing waits, so no other acceptance interleaves.
  const kept = readTombstone(paths, projectId);
  if (kept) {
    const conflict = `${projectId} ${kept.id} ${verified.id}`;
    if (kept.id !== verified.id && !conflictsLogged.has(conflict)) {
      conflictsLogged.add(conflict);
      options.log?.warn("tombstone conflict; the first one stays", {
        project: projectId,
        kept: kept.id,
        offered: verified.id,
      });
    }
    return false;
  }
  const dir = `${gitbackBase(paths)}/tombstones`;
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const { body, sig } = verified.wire;
  writeTextAtomic(
    tombstonePath(paths, projectId),
    JSON.stringify({ body, sig }) + "\n",
    0o644,
  );
  return true;
}
