/**
 * The sweep reactor: collects the signed LEAVE and REVOKE envelopes and
 * the founder's tombstones users queue in
 * `~/.vigo-gitback/<project_id>/{leave,revoke,tombstone}.pending`, checks
 * them, and stores them root-side where the git socket (and gossip) find
 * them.
 *
 * @module
 */

import { pidAlive } from "../platform/process.ts";
import { OwnedDir, withOwnedDir } from "../platform/user_files.ts";
import type { AgentConfig } from "../envoy/config.ts";
import { acceptEnvelope } from "./envelope_store.ts";
import type { GossipKind } from "./gossip.ts";
import {
  MAX_QUEUED_TOMBSTONES,
  MAX_TOMBSTONE_PENDING_BYTES,
  TOMBSTONE_PENDING,
} from "../gitback/tombstone.ts";
import { acceptTombstone } from "./tombstone_store.ts";
import type { Logger } from "../platform/log.ts";
import { startReactor } from "../swarm/reactor.ts";
import { managedHomes } from "../envoy/user_homes.ts";
import { delegationsIn, GITBACK_DIR, projectIdsIn } from "./user_state.ts";

/** Called for each envelope or tombstone the sweep stored (to gossip it). */
export type StoredListener = (
  projectId: string,
  kind: GossipKind,
  envelope: unknown,
) => void;

/** Envelopes taken from one pending file. */
const MAX_ENVELOPES_PER_FILE = 256;

const PENDING_FILES: Record<GossipKind, string> = {
  revokes: "revoke.pending",
  leaves: "leave.pending",
  tombstones: TOMBSTONE_PENDING,
};

async function collect(
  config: AgentConfig,
  log: Logger,
  user: string,
  dir: OwnedDir,
  projectId: string,
  kind: GossipKind,
  onStored?: StoredListener,
): Promise<number> {
  const name = PENDING_FILES[kind];
  if (!dir.has(name)) return 0;
  // The user's copy of the founder's delegations, merged with the record
  // here (first seen wins); unreadable, none is offered.
  let delegations: unknown[] = [];
  try {
    delegations = delegationsIn(dir);
  } catch {
    // None offered.
  }
  let list: unknown;
  try {
    list = dir.readJson(
      name,
      kind === "tombstones" ? MAX_TOMBSTONE_PENDING_BYTES : 1024 * 1024,
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    log.warn("unreadable pending envelope", {
      user,
      file: `${dir.path}/${name}`,
      error: (error as Error).message,
    });
    removeQueued(log, user, dir, name);
    return 0;
  }
  let stored = 0;
  let refused = 0;
  // Distinct reasons (at most 8) and how often each came.
  const reasons = new Map<string, number>();
  const envelopes = Array.isArray(list) ? list : [list];
  const most = kind === "tombstones"
    ? MAX_QUEUED_TOMBSTONES
    : MAX_ENVELOPES_PER_FILE;
  for (const envelope of envelopes.slice(0, most)) {
    try {
      if (
        kind === "tombstones"
          ? await acceptTombstone(config.paths, projectId, envelope, {
            delegations,
            log,
          })
          : await acceptEnvelope(config, projectId, kind, envelope, undefined, {
            delegations,
            log,
          })
      ) {
        stored++;
        onStored?.(projectId, kind, envelope);
      }
    } catch (error) {
      refused++;
      const reason = (error as Error).message;
      if (reasons.has(reason) || reasons.size < 8) {
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
    }
  }
  // One line per queue file, however many envelopes a user forged into it.
  if (refused > 0) {
    log.warn("queued envelopes refused", {
      user,
      project: projectId,
      kind,
      count: refused,
      reasons: [...reasons].map(([reason, n]) => `${n}× ${reason}`).join(" | ")
        .slice(0, 2000),
    });
  }
  removeQueued(log, user, dir, name);
  return stored;
}

/** Removes a swept queue file: only a regular file the user owns. */
function removeQueued(
  log: Logger,
  user: string,
  dir: OwnedDir,
  name: string,
): void {
  try {
    dir.removeFile(name);
  } catch (error) {
    log.warn("pending file left in place", {
      user,
      file: `${dir.path}/${name}`,
      error: (error as Error).message,
    });
  }
}

/**
 * Warns once about each session helper that died without cleaning up: a
 * helper removes `session.unlocked` whenever it locks, so a sentinel naming
 * a dead process means it crashed or was killed.
 */
function reportDeadHelpers(
  config: AgentConfig,
  log: Logger,
  reported: Set<string>,
): void {
  for (const { user, uid, home } of managedHomes(config)) {
    let pid: number;
    try {
      pid = withOwnedDir(
        home,
        uid,
        ".vigo-puddle",
        (dir) =>
          Number(
            new TextDecoder().decode(dir.readFile("session.unlocked", 64))
              .trim(),
          ),
        0,
      );
    } catch {
      continue;
    }
    const key = `${user}:${pid}`;
    if (pid > 0 && !reported.has(key) && !pidAlive(pid)) {
      reported.add(key);
      log.warn("session helper died without locking", { user, pid });
    }
  }
}

/**
 * One pass over every managed home. Returns how many envelopes it stored.
 * Directories are walked without following symlinks and must belong to
 * the user at every step; a queue found anywhere else is logged and left
 * alone, never deleted.
 */
export async function sweepOnce(
  config: AgentConfig,
  log: Logger,
  reportedHelpers: Set<string> = new Set(),
  onStored?: StoredListener,
): Promise<number> {
  reportDeadHelpers(config, log, reportedHelpers);
  let stored = 0;
  for (const { user, uid, home } of managedHomes(config)) {
    let base: OwnedDir;
    try {
      base = OwnedDir.open(home, uid, GITBACK_DIR);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        log.warn("gitback state skipped", {
          user,
          error: (error as Error).message,
        });
      }
      continue;
    }
    try {
      for (const projectId of projectIdsIn(base)) {
        let dir: OwnedDir;
        try {
          dir = base.dir(projectId);
        } catch (error) {
          log.warn("project state skipped", {
            user,
            project: projectId,
            error: (error as Error).message,
          });
          continue;
        }
        try {
          for (const kind of ["revokes", "leaves", "tombstones"] as const) {
            stored += await collect(
              config,
              log,
              user,
              dir,
              projectId,
              kind,
              onStored,
            );
          }
          // Kept by a LEAVE for this sweep: once the project is gone and
          // nothing waits, the delegations go too.
          if (
            !dir.has("project.json") &&
            !Object.values(PENDING_FILES).some((name) => dir.has(name)) &&
            dir.has("delegations.json")
          ) removeQueued(log, user, dir, "delegations.json");
        } finally {
          dir.close();
        }
        // A project left and swept leaves an empty directory behind.
        base.removeEmptyDir(projectId);
      }
    } finally {
      base.close();
    }
  }
  if (stored > 0) log.info("sweep stored envelopes", { count: stored });
  return stored;
}
/** Runs {@link sweepOnce} every `config.reactors.sweepSeconds`. */
export function startSweep(
  config: AgentConfig,
  log: Logger,
  onStored?: StoredListener,
): { stop(): void } {
  const reportedHelpers = new Set<string>();
  return startReactor(
    "sweep",
    config.reactors.sweepSeconds,
    log,
    () => sweepOnce(config, log, reportedHelpers, onStored),
  );
}
