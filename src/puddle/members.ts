/**
 * The local membership log: which envoys this envoy paired with, per user.
 * Kept root-side (the agent and `join` write it), readable by everyone.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import {
  readFileBounded,
  withFileLock,
  writeTextAtomic,
} from "../platform/fs.ts";

/** One pairing this envoy took part in. */
export interface MemberEntry {
  /** The other envoy: its certificate subject or the host joined from. */
  host: string;
  /** `joined-from-here`: it claimed a code here; `joined-from`: we claimed one there. */
  direction: "joined-from-here" | "joined-from";
  at: string;
}

/** Directory of the per-user logs. */
export function membersDir(paths: SystemPaths): string {
  return `${paths.varLib}/swarm/puddle/members`;
}

/** The entries recorded for `user`, oldest first. */
export function readMembers(paths: SystemPaths, user: string): MemberEntry[] {
  try {
    const value = JSON.parse(
      new TextDecoder().decode(
        readFileBounded(`${membersDir(paths)}/${user}.json`, 1024 * 1024),
      ),
    );
    return Array.isArray(value) ? value as MemberEntry[] : [];
  } catch {
    return [];
  }
}

/**
 * Records an entry for `user`, replacing an older one for the same host and
 * direction; concurrent writers are serialized.
 */
export async function recordMember(
  paths: SystemPaths,
  user: string,
  entry: MemberEntry,
): Promise<void> {
  const dir = membersDir(paths);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  await withFileLock(`${dir}/.lock`, () => {
    const entries = readMembers(paths, user).filter((e) =>
      e.host !== entry.host || e.direction !== entry.direction
    );
    entries.push(entry);
    writeTextAtomic(
      `${dir}/${user}.json`,
      JSON.stringify(entries, null, 2) + "\n",
      0o644,
    );
  });
}
