/**
 * LAN discovery: agents announce the projects they hold, by UDP multicast
 * and by unicast to every known host (for networks without multicast, such
 * as a fleet on loopback), one line per project:
 *
 *   GITBACKPROJECT:<host>:<project_id>:<handle>:<scope>
 *
 * The older two-field form `GITBACKPROJECT:<host>:<project_id>` still parses.
 * Every datagram starts with `GITBACKHOST:<host>`, so an envoy that holds
 * nothing yet (freshly paired) is still heard and answered.
 * What is heard feeds a per-project index of peers, with staleness.
 *
 * The lines are split over as many datagrams as needed, each at most
 * {@link MAX_SEND_DATAGRAM} bytes (so it crosses an Ethernet LAN unfragmented)
 * and each opening with the presence line; receivers read line by line, so
 * they need not know how a period's lines were split.
 *
 * @module
 */

import dgram from "node:dgram";
import { writeTextAtomic } from "../platform/fs.ts";
import { isHostName } from "./host_name.ts";
import { gitbackBase, projectsDir } from "../gitback/repo.ts";
import type { AgentConfig } from "./config.ts";
import type { Logger } from "./log.ts";

/** One project held by one peer. */
export interface Announcement {
  host: string;
  projectId: string;
  handle?: string;
  scope?: string;
}

/** A project this envoy holds, as announced. */
export interface HeldProject {
  projectId: string;
  handle: string;
  scope: string;
}

const PREFIX = "GITBACKPROJECT:";
const PRESENCE = "GITBACKHOST:";
/** Largest datagram accepted (older agents sent everything in one). */
const MAX_DATAGRAM = 60_000;
/**
 * Largest datagram sent: an Ethernet MTU (1500) less the IPv6 (40) and UDP
 * (8) headers is 1452; 1400 leaves room for tunnels and options. One
 * presence line (≤ 266 bytes with its newline) and one project line
 * (≤ 412 bytes) always fit together.
 */
export const MAX_SEND_DATAGRAM = 1400;
/** A failing destination is logged at most once per this many ms. */
const SEND_FAILURE_LOG_MS = 60_000;
/** Hosts an agent learns from datagrams, beyond those in agent.yaml. */
const MAX_LEARNED_HOSTS = 1024;
/** Immediate answers to newly heard hosts, per announcement period. */
const MAX_ANSWERS_PER_PERIOD = 16;

const PROJECT_ID = /^[0-9a-f]{64}$/;
const HANDLE = /^(?!\.)[A-Za-z0-9._-]{1,64}$/;

/** Formats one announcement line. */
export function formatAnnouncement(host: string, p: HeldProject): string {
  return `${PREFIX}${host}:${p.projectId}:${p.handle}:${p.scope}`;
}

/**
 * The line announcing `p`, exactly as {@link parseAnnouncement} reads it
 * back, or null. A recorded handle or scope that the grammar refuses (a
 * token chain may carry any 64 characters as a handle, newlines included)
 * is left out, giving the two-field form, so no held project can add or
 * change lines of a datagram.
 */
export function announcementLine(host: string, p: HeldProject): string | null {
  if (!isHostName(host) || !PROJECT_ID.test(p.projectId)) return null;
  if (
    HANDLE.test(p.handle) &&
    (p.scope === "swarm-wide" || p.scope === "members-only")
  ) return formatAnnouncement(host, p);
  return `${PREFIX}${host}:${p.projectId}`;
}

/**
 * The datagrams announcing `projects` for `host`. Each opens with the
 * presence line and holds as many whole project lines as fit in
 * `maxBytes` (every line ends with a newline); with nothing held there is
 * one datagram, the presence line alone.
 */
export function announcementDatagrams(
  host: string,
  projects: HeldProject[],
  maxBytes = MAX_SEND_DATAGRAM,
): Uint8Array[] {
  const encoder = new TextEncoder();
  const presence = encoder.encode(formatPresence(host) + "\n");
  const datagrams: Uint8Array[] = [];
  let parts: Uint8Array[] = [presence];
  let size = presence.length;
  for (const p of projects) {
    const line = announcementLine(host, p);
    if (line === null) continue;
    const bytes = encoder.encode(line + "\n");
    if (presence.length + bytes.length > maxBytes) continue; // Never fits.
    if (parts.length > 1 && size + bytes.length > maxBytes) {
      datagrams.push(concat(parts, size));
      parts = [presence];
      size = presence.length;
    }
    parts.push(bytes);
    size += bytes.length;
  }
  datagrams.push(concat(parts, size));
  return datagrams;
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** The presence line that opens every datagram. */
export function formatPresence(host: string): string {
  return `${PRESENCE}${host}`;
}

/** The host named by a presence line, or null. */
export function parsePresence(line: string): string | null {
  if (!line.startsWith(PRESENCE)) return null;
  const host = line.slice(PRESENCE.length);
  return isHostName(host) ? host : null;
}

/** Parses one line (current or older form), or null. */
export function parseAnnouncement(line: string): Announcement | null {
  if (!line.startsWith(PREFIX)) return null;
  const fields = line.slice(PREFIX.length).split(":");
  if (fields.length !== 2 && fields.length !== 4) return null;
  const [host, projectId, handle, scope] = fields;
  if (
    !isHostName(host) || !PROJECT_ID.test(projectId)
  ) return null;
  if (fields.length === 2) return { host, projectId };
  if (!HANDLE.test(handle)) return null;
  if (scope !== "swarm-wide" && scope !== "members-only") return null;
  return { host, projectId, handle, scope };
}

/** Who announced what, and when. */
export class PeerIndex {
  #seen = new Map<
    string,
    Map<string, { announcement: Announcement; at: number }>
  >();

  constructor(private staleMs: number) {}

  /** Records an announcement heard at `now`. */
  record(announcement: Announcement, now = Date.now()): void {
    let peers = this.#seen.get(announcement.projectId);
    if (!peers) this.#seen.set(announcement.projectId, peers = new Map());
    peers.set(announcement.host, { announcement, at: now });
  }

  /** Fresh announcements for `projectId`. */
  holders(projectId: string, now = Date.now()): Announcement[] {
    return [...(this.#seen.get(projectId)?.values() ?? [])]
      .filter((e) => now - e.at <= this.staleMs)
      .map((e) => e.announcement);
  }

  /** Every fresh announcement. */
  all(now = Date.now()): Announcement[] {
    return [...this.#seen.keys()].flatMap((id) => this.holders(id, now));
  }
}

/** Root-side record of a held project's handle and scope. */
export function metaPath(config: AgentConfig, projectId: string): string {
  return `${gitbackBase(config.paths)}/meta/${projectId}.json`;
}

/**
 * The recorded handle and scope of a held project; `unknown` and
 * `swarm-wide` when none is recorded.
 */
export function readProjectMeta(
  config: AgentConfig,
  projectId: string,
): { handle: string; scope: string } {
  try {
    const meta = JSON.parse(Deno.readTextFileSync(metaPath(config, projectId)));
    return {
      handle: String(meta.handle),
      scope: meta.scope === "members-only" ? "members-only" : "swarm-wide",
    };
  } catch {
    return { handle: "unknown", scope: "swarm-wide" };
  }
}

/** Remembers a project's handle and scope (first writer wins). */
export function recordProjectMeta(
  config: AgentConfig,
  meta: HeldProject,
): void {
  const path = metaPath(config, meta.projectId);
  try {
    Deno.statSync(path);
    return;
  } catch {
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), {
      recursive: true,
      mode: 0o755,
    });
    writeTextAtomic(
      path,
      JSON.stringify({ handle: meta.handle, scope: meta.scope }) + "\n",
      0o644,
    );
  }
}

/** Projects with a bare repository here, with their recorded handle and scope. */
export function heldProjects(config: AgentConfig): HeldProject[] {
  const held: HeldProject[] = [];
  try {
    for (const entry of Deno.readDirSync(projectsDir(config.paths))) {
      const match = /^([0-9a-f]{64})\.git$/.exec(entry.name);
      if (!match) continue;
      held.push({ projectId: match[1], ...readProjectMeta(config, match[1]) });
    }
  } catch {
    // No projects yet.
  }
  return held;
}

/** Writes the world-readable cache of what peers announce. */
export function writeAnnouncedCache(
  config: AgentConfig,
  index: PeerIndex,
): void {
  const path = `${gitbackBase(config.paths)}/gitback-announced.json`;
  Deno.mkdirSync(gitbackBase(config.paths), { recursive: true, mode: 0o755 });
  writeTextAtomic(path, JSON.stringify(index.all(), null, 2) + "\n", 0o644);
}

/** Sends announcements every period and listens for peers'. */
export async function startAnnouncer(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): Promise<{ stop(): void; announceNow(): void }> {
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  // Hosts learned from datagrams, and immediate answers, are bounded: a
  // datagram's source can be forged, so neither may grow or amplify without
  // limit.
  let learned = 0;
  let answers = 0;
  const learn = (host: string, address: string): boolean => {
    if (config.hosts[host] || learned >= MAX_LEARNED_HOSTS) return false;
    config.hosts[host] = address;
    learned++;
    return true;
  };
  // Refused lines are counted and logged once per period, not one by one:
  // a datagram's source can be forged, and the log must not be a target.
  let refused = 0;
  let refusedFrom = "";
  socket.on("message", (message: Uint8Array, remote: { address: string }) => {
    if (message.length > MAX_DATAGRAM) return;
    for (const line of new TextDecoder().decode(message).split("\n")) {
      const trimmed = line.trim();
      if (
        (trimmed.startsWith(PRESENCE) && !parsePresence(trimmed)) ||
        (trimmed.startsWith(PREFIX) && !parseAnnouncement(trimmed))
      ) {
        refused++;
        refusedFrom = remote.address;
        continue;
      }
      const host = parsePresence(trimmed);
      if (
        host && host !== config.hostname && learn(host, remote.address) &&
        answers < MAX_ANSWERS_PER_PERIOD
      ) {
        // A host we did not know: answer at once, so a new envoy learns
        // what we hold without waiting for our next period.
        answers++;
        void send([remote.address]);
      }
      const announcement = parseAnnouncement(trimmed);
      if (announcement && announcement.host !== config.hostname) {
        learn(announcement.host, remote.address);
        index.record(announcement);
      }
    }
  });
  socket.on(
    "error",
    (error: Error) =>
      log.warn("announce socket error", { error: error.message }),
  );
  await new Promise<void>((resolve) =>
    socket.bind(config.announce.port, config.listen, () => resolve())
  );
  let multicast = true;
  try {
    socket.addMembership(config.announce.group);
    socket.setMulticastTTL(1);
  } catch (error) {
    multicast = false;
    log.info("multicast unavailable; announcing by unicast only", {
      error: (error as Error).message,
    });
  }
  // Send failures are logged once per destination and period of
  // SEND_FAILURE_LOG_MS, with how many were suppressed in between, so a
  // dead route is visible without flooding the log.
  let stopped = false;
  const failures = new Map<string, { loggedAt: number; suppressed: number }>();
  const sendFailed = (address: string, error: Error) => {
    if (stopped) return;
    const now = Date.now();
    const seen = failures.get(address);
    if (seen && now - seen.loggedAt < SEND_FAILURE_LOG_MS) {
      seen.suppressed++;
      return;
    }
    // Bounded: destinations are the known hosts plus the group.
    if (!seen && failures.size >= MAX_LEARNED_HOSTS * 2) failures.clear();
    log.warn("announcement not sent", {
      address,
      error: error.message,
      suppressed: seen?.suppressed || undefined,
    });
    failures.set(address, { loggedAt: now, suppressed: 0 });
  };
  /**
   * Sends every datagram to every address, one send at a time: each waits
   * until the previous one has left, so hundreds of datagrams do not arrive
   * at a receiver in one burst that overruns its socket buffer.
   */
  async function send(addresses: string[]): Promise<void> {
    const datagrams = announcementDatagrams(
      config.hostname,
      heldProjects(config),
    );
    const targets = [...new Set(addresses)];
    for (const payload of datagrams) {
      for (const address of targets) {
        if (stopped) return;
        await new Promise<void>((resolve) => {
          try {
            socket.send(payload, config.announce.port, address, (error) => {
              if (error) sendFailed(address, error);
              resolve();
            });
          } catch (error) {
            sendFailed(address, error as Error);
            resolve();
          }
        });
      }
    }
  }
  // One periodic round at a time; a request during a round runs one more
  // round after it (so what is held now is announced), not one per request.
  let round: Promise<void> | null = null;
  let again = false;
  const announceNow = () => {
    answers = 0;
    if (refused > 0) {
      log.warn("malformed announcement lines ignored", {
        count: refused,
        last_from: refusedFrom,
      });
      refused = 0;
    }
    if (round) {
      again = true;
      return;
    }
    round = (async () => {
      do {
        again = false;
        const targets = Object.entries(config.hosts)
          .filter(([host]) => host !== config.hostname)
          .map(([, address]) => address);
        if (multicast) targets.push(config.announce.group);
        await send(targets);
      } while (again && !stopped);
    })().catch((error) =>
      log.warn("announcement round failed", {
        error: (error as Error).message,
      })
    ).finally(() => {
      round = null;
    });
  };
  announceNow();
  const timer = setInterval(announceNow, config.announce.periodSeconds * 1000);
  return {
    announceNow,
    stop() {
      stopped = true;
      clearInterval(timer);
      socket.close();
    },
  };
}
