/**
 * `~/.vigo-gitback/left.json`: the projects this user dropped on this envoy
 * (`project leave`, with or without `--purge`, and `gitback purge`), so
 * that nothing adopts them again here until the user joins again: not
 * `puddle unlock` (founded projects), not the agent (memberships found on
 * peers). `leave` records the project before it removes anything, so no
 * adoption can slip in between, whenever the agent sweeps the LEAVE.
 * `join` and `init` of a project clear its entry.
 *
 * The record is the user's own wish about their own state: it can only
 * make the agent do less for that user, never more, so the agent may act
 * on it as read (through `OwnedDir`, like every file in a home).
 *
 * @module
 */

import {
  ensurePrivateDir,
  readFileBounded,
  withFileLock,
  writeTextAtomic,
} from "../platform/fs.ts";

/** The record's file name in `~/.vigo-gitback`. */
export const LEFT_FILE = "left.json";
/** The lock that serializes writers of {@link LEFT_FILE}. */
export const LEFT_LOCK = ".left.lock";
/** Projects kept in the record; past this, the ones dropped longest ago go. */
export const MAX_LEFT_PROJECTS = 4096;
/** Largest record read: 4096 entries of about 100 bytes, with room. */
export const MAX_LEFT_BYTES = 1024 * 1024;

const PROJECT_ID = /^[0-9a-f]{64}$/;

/** `left.json`: project id → when it was dropped (ISO 8601). */
export interface LeftRecord {
  version: 1;
  projects: Record<string, string>;
}

/**
 * The entries of a parsed `left.json` (id → ISO time). Anything that is not
 * a 64-hex id with a time is skipped; a value of another shape reads as
 * empty.
 */
export function parseLeft(value: unknown): Map<string, string> {
  const entries = new Map<string, string>();
  const projects = (value as Partial<LeftRecord> | null)?.projects;
  if (typeof projects !== "object" || projects === null) return entries;
  if (Array.isArray(projects)) return entries;
  for (const [id, at] of Object.entries(projects)) {
    if (PROJECT_ID.test(id) && typeof at === "string") entries.set(id, at);
    if (entries.size >= MAX_LEFT_PROJECTS) break;
  }
  return entries;
}

function readEntries(gitbackDir: string): Map<string, string> {
  let text: string;
  try {
    text = new TextDecoder().decode(
      readFileBounded(`${gitbackDir}/${LEFT_FILE}`, MAX_LEFT_BYTES),
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return new Map();
    throw error;
  }
  try {
    return parseLeft(JSON.parse(text));
  } catch {
    throw new Error(
      `${gitbackDir}/${LEFT_FILE} is not valid JSON; remove it (projects you left may then be adopted again) or restore it.`,
    );
  }
}

/**
 * The ids of the projects this user dropped on this envoy. Throws when the
 * record cannot be read, so that adoption stops rather than guesses.
 */
export function readLeft(gitbackDir: string): Set<string> {
  return new Set(readEntries(gitbackDir).keys());
}

function writeEntries(gitbackDir: string, entries: Map<string, string>) {
  const path = `${gitbackDir}/${LEFT_FILE}`;
  if (entries.size === 0) {
    try {
      Deno.removeSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return;
  }
  const record: LeftRecord = {
    version: 1,
    projects: Object.fromEntries(
      [...entries].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
    ),
  };
  writeTextAtomic(path, JSON.stringify(record, null, 2) + "\n", 0o600);
}

async function update(
  gitbackDir: string,
  change: (entries: Map<string, string>) => boolean,
): Promise<void> {
  ensurePrivateDir(gitbackDir);
  await withFileLock(`${gitbackDir}/${LEFT_LOCK}`, () => {
    let entries: Map<string, string>;
    try {
      entries = readEntries(gitbackDir);
    } catch {
      // Unreadable: what it said is lost either way; write a good one.
      entries = new Map();
    }
    if (change(entries)) writeEntries(gitbackDir, entries);
  });
}

/**
 * Records that this user dropped `projectIds` on this envoy. Past
 * {@link MAX_LEFT_PROJECTS}, the entries dropped longest ago give way.
 */
export async function recordLeft(
  gitbackDir: string,
  projectIds: readonly string[],
  at: Date = new Date(),
): Promise<void> {
  const ids = projectIds.filter((id) => PROJECT_ID.test(id));
  if (ids.length === 0) return;
  await update(gitbackDir, (entries) => {
    for (const id of ids) {
      entries.delete(id);
      entries.set(id, at.toISOString());
    }
    if (entries.size > MAX_LEFT_PROJECTS) {
      const oldest = [...entries].sort(([, x], [, y]) =>
        x < y ? -1 : x > y ? 1 : 0
      );
      for (const [id] of oldest.slice(0, entries.size - MAX_LEFT_PROJECTS)) {
        entries.delete(id);
      }
    }
    return true;
  });
}

/** Forgets that this user dropped `projectId` (they joined it again). */
export async function clearLeft(
  gitbackDir: string,
  projectId: string,
): Promise<void> {
  try {
    Deno.statSync(`${gitbackDir}/${LEFT_FILE}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  await update(gitbackDir, (entries) => entries.delete(projectId));
}
