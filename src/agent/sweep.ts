/**
 * The sweep reactor: collects the signed LEAVE and REVOKE envelopes users
 * queue in `~/.vigo-gitback/<project_id>/{leave,revoke}.pending`, checks
 * them, and stores them root-side where the git socket (and gossip) find
 * them.
 *
 * @module
 */

import { pidAlive } from "../platform/process.ts";
import {
  readOwnedFile,
  readOwnedJson,
  removeIfExists,
} from "../platform/fs.ts";
import type { AgentConfig } from "./config.ts";
import { acceptEnvelope, type EnvelopeKind } from "./envelope_store.ts";
import type { Logger } from "./log.ts";
import { startReactor } from "./reactor.ts";
import { managedHomes } from "./user_homes.ts";

const PROJECT_ID = /^[0-9a-f]{64}$/;

/** Called for each envelope the sweep stored (to gossip it). */
export type StoredListener = (
  projectId: string,
  kind: EnvelopeKind,
  envelope: unknown,
) => void;

async function collect(
  config: AgentConfig,
  log: Logger,
  user: string,
  uid: number,
  dir: string,
  projectId: string,
  kind: EnvelopeKind,
  onStored?: StoredListener,
): Promise<number> {
  const file = `${dir}/${kind === "revokes" ? "revoke" : "leave"}.pending`;
  let list: unknown;
  try {
    list = readOwnedJson(file, uid, 1024 * 1024);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    log.warn("unreadable pending envelope", {
      user,
      file,
      error: (error as Error).message,
    });
    removeIfExists(file);
    return 0;
  }
  let stored = 0;
  for (const envelope of Array.isArray(list) ? list : [list]) {
    try {
      if (await acceptEnvelope(config, projectId, kind, envelope)) {
        stored++;
        onStored?.(projectId, kind, envelope);
      }
    } catch (error) {
      log.warn("signature failure on queued envelope", {
        user,
        project: projectId,
        kind,
        error: (error as Error).message,
      });
    }
  }
  removeIfExists(file);
  return stored;
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
      pid = Number(
        new TextDecoder().decode(
          readOwnedFile(`${home}/.vigo-puddle/session.unlocked`, uid, 64),
        ).trim(),
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

/** One pass over every managed home. Returns how many envelopes it stored. */
export async function sweepOnce(
  config: AgentConfig,
  log: Logger,
  reportedHelpers: Set<string> = new Set(),
  onStored?: StoredListener,
): Promise<number> {
  reportDeadHelpers(config, log, reportedHelpers);
  let stored = 0;
  for (const { user, uid, home } of managedHomes(config)) {
    const base = `${home}/.vigo-gitback`;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(base)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.isDirectory || !PROJECT_ID.test(entry.name)) continue;
      const dir = `${base}/${entry.name}`;
      for (const kind of ["revokes", "leaves"] as const) {
        stored += await collect(
          config,
          log,
          user,
          uid,
          dir,
          entry.name,
          kind,
          onStored,
        );
      }
      // A project left and swept leaves an empty directory behind.
      try {
        Deno.removeSync(dir);
      } catch {
        // Not empty: the user still holds the project.
      }
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
