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
 * @module
 */

import dgram from "node:dgram";
import { writeTextAtomic } from "../platform/fs.ts";
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
const HOST_NAME = /^[A-Za-z0-9.-]{1,253}$/;
const MAX_DATAGRAM = 60_000;
/** Hosts an agent learns from datagrams, beyond those in agent.yaml. */
const MAX_LEARNED_HOSTS = 1024;
/** Immediate answers to newly heard hosts, per announcement period. */
const MAX_ANSWERS_PER_PERIOD = 16;

/** Formats one announcement line. */
export function formatAnnouncement(host: string, p: HeldProject): string {
  return `${PREFIX}${host}:${p.projectId}:${p.handle}:${p.scope}`;
}

/** The presence line that opens every datagram. */
export function formatPresence(host: string): string {
  return `${PRESENCE}${host}`;
}

/** The host named by a presence line, or null. */
export function parsePresence(line: string): string | null {
  if (!line.startsWith(PRESENCE)) return null;
  const host = line.slice(PRESENCE.length);
  return HOST_NAME.test(host) ? host : null;
}

/** Parses one line (current or older form), or null. */
export function parseAnnouncement(line: string): Announcement | null {
  if (!line.startsWith(PREFIX)) return null;
  const fields = line.slice(PREFIX.length).split(":");
  if (fields.length !== 2 && fields.length !== 4) return null;
  const [host, projectId, handle, scope] = fields;
  if (
    !HOST_NAME.test(host) || !/^[0-9a-f]{64}$/.test(projectId)
  ) return null;
  if (fields.length === 2) return { host, projectId };
  if (!/^(?!\.)[A-Za-z0-9._-]{1,64}$/.test(handle)) return null;
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
  socket.on("message", (message: Uint8Array, remote: { address: string }) => {
    if (message.length > MAX_DATAGRAM) return;
    for (const line of new TextDecoder().decode(message).split("\n")) {
      const host = parsePresence(line.trim());
      if (
        host && host !== config.hostname && learn(host, remote.address) &&
        answers < MAX_ANSWERS_PER_PERIOD
      ) {
        // A host we did not know: answer at once, so a new envoy learns
        // what we hold without waiting for our next period.
        answers++;
        send([remote.address]);
      }
      const announcement = parseAnnouncement(line.trim());
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
  function send(addresses: string[]): void {
    const lines = [formatPresence(config.hostname)];
    for (const p of heldProjects(config)) {
      lines.push(formatAnnouncement(config.hostname, p));
    }
    const payload = new TextEncoder().encode(lines.join("\n") + "\n");
    for (const address of new Set(addresses)) {
      socket.send(payload, config.announce.port, address, () => {});
    }
  }
  const announceNow = () => {
    answers = 0;
    const targets = Object.entries(config.hosts)
      .filter(([host]) => host !== config.hostname)
      .map(([, address]) => address);
    if (multicast) targets.push(config.announce.group);
    send(targets);
  };
  announceNow();
  const timer = setInterval(announceNow, config.announce.periodSeconds * 1000);
  return {
    announceNow,
    stop() {
      clearInterval(timer);
      socket.close();
    },
  };
}
