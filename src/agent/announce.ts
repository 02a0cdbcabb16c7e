/**
 * LAN discovery: agents announce the projects they hold, by UDP multicast
 * and by unicast to every known host (for networks without multicast, such
 * as a fleet on loopback), one line per project:
 *
 *   GITBACKPROJECT:<host>:<project_id>:<handle>:<scope>
 *
 * `<scope>` is what the founder's statement recorded here says (else
 * `members-only`); a receiver never records it as a project's scope, which
 * comes only from a verified statement (gitback/scope_statement.ts).
 * The older two-field form `GITBACKPROJECT:<host>:<project_id>` still parses.
 * Every datagram starts with `GITBACKHOST:<host>`, so an envoy that holds
 * nothing yet (freshly paired) is still heard and answered.
 * What is heard feeds a per-project index of peers, with staleness and
 * bounds. Datagrams are unauthenticated: only lines of hosts configured in
 * agent.yaml, or of hosts whose name a fleet certificate confirmed at the
 * datagram's source address over mutual TLS, reach the index; any other
 * name is a bounded candidate until then (see {@link HostBook}).
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
import { isHostName } from "../envoy/host_name.ts";
import {
  bareRepoPath,
  gitbackBase,
  projectsDir,
  readRepoMetaRecord,
} from "../gitback/repo.ts";
import {
  checkScopeStatement,
  DEFAULT_SCOPE,
  type Scope,
  type ScopeStatementWire,
} from "../gitback/scope_statement.ts";
import type { AgentConfig } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import { confirmHost } from "./host_confirm.ts";
import { MAX_BACKOFF_PERIODS, PEER_CONCURRENCY } from "../swarm/peer_work.ts";
import { readSwarmTls } from "../swarm/swarm_client.ts";

/**
 * One project held by one peer. `scope` is what the datagram said: a hint
 * for people reading logs, never recorded as a project's scope.
 */
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
  /** What {@link HeldProject.statement} says; `members-only` without one. */
  scope: string;
  /** The founder's scope statement, verified, when one is recorded. */
  statement?: ScopeStatementWire | null;
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
/**
 * Hosts an agent learns from datagrams and confirms over mutual TLS, beyond
 * those in agent.yaml.
 */
export const MAX_LEARNED_HOSTS = 1024;
/** Names heard in datagrams and not (yet) confirmed, with their addresses. */
export const MAX_CANDIDATE_HOSTS = 256;
/** Projects the index keeps per announcing host. */
export const MAX_PROJECTS_PER_HOST = 4096;
/** Announcements the index keeps in all. */
export const MAX_INDEX_ENTRIES = 65_536;
/** Immediate answers to newly heard hosts, per announcement period. */
const MAX_ANSWERS_PER_PERIOD = 16;
/** Candidate hosts checked over mutual TLS per announcement period. */
export const MAX_CHECKS_PER_PERIOD = 16;

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

interface IndexEntry {
  announcement: Announcement;
  at: number;
}

/**
 * Who announced what, and when: fresh announcements by host and project,
 * bounded. A host keeps at most {@link MAX_PROJECTS_PER_HOST} projects and
 * the index at most {@link MAX_INDEX_ENTRIES} announcements in all; past
 * either bound the announcement heard longest ago gives way, and stale ones
 * (older than `staleMs`) are dropped as the index is used. The announcer
 * records only announcements of hosts configured in agent.yaml or confirmed
 * over mutual TLS (see {@link HostBook}).
 */
export class PeerIndex {
  /** Every entry, oldest heard first. */
  #entries = new Map<string, IndexEntry>();
  #byProject = new Map<string, Map<string, IndexEntry>>();
  /** Per host, oldest heard first. */
  #byHost = new Map<string, Map<string, IndexEntry>>();

  constructor(private staleMs: number) {}

  /** Records an announcement heard at `now`. */
  record(announcement: Announcement, now = Date.now()): void {
    const { host, projectId } = announcement;
    this.#remove(host, projectId);
    this.prune(now);
    const perHost = this.#byHost.get(host);
    if (perHost && perHost.size >= MAX_PROJECTS_PER_HOST) {
      this.#remove(host, perHost.keys().next().value!);
    }
    if (this.#entries.size >= MAX_INDEX_ENTRIES) {
      const oldest = this.#entries.values().next().value!.announcement;
      this.#remove(oldest.host, oldest.projectId);
    }
    const entry = { announcement, at: now };
    this.#entries.set(`${host}\n${projectId}`, entry);
    let peers = this.#byProject.get(projectId);
    if (!peers) this.#byProject.set(projectId, peers = new Map());
    peers.set(host, entry);
    let held = this.#byHost.get(host);
    if (!held) this.#byHost.set(host, held = new Map());
    held.set(projectId, entry);
  }

  #remove(host: string, projectId: string): void {
    if (!this.#entries.delete(`${host}\n${projectId}`)) return;
    const peers = this.#byProject.get(projectId);
    peers?.delete(host);
    if (peers?.size === 0) this.#byProject.delete(projectId);
    const held = this.#byHost.get(host);
    held?.delete(projectId);
    if (held?.size === 0) this.#byHost.delete(host);
  }

  /** Drops announcements that are stale at `now`. */
  prune(now = Date.now()): void {
    for (const entry of this.#entries.values()) {
      if (now - entry.at <= this.staleMs) break;
      this.#remove(entry.announcement.host, entry.announcement.projectId);
    }
  }

  /** Forgets everything `host` announced. */
  forgetHost(host: string): void {
    for (const projectId of [...(this.#byHost.get(host)?.keys() ?? [])]) {
      this.#remove(host, projectId);
    }
  }

  /** Fresh announcements for `projectId`. */
  holders(projectId: string, now = Date.now()): Announcement[] {
    return [...(this.#byProject.get(projectId)?.values() ?? [])]
      .filter((e) => now - e.at <= this.staleMs)
      .map((e) => e.announcement);
  }

  /** Every fresh announcement. */
  all(now = Date.now()): Announcement[] {
    return [...this.#entries.values()]
      .filter((e) => now - e.at <= this.staleMs)
      .map((e) => e.announcement);
  }

  /** How much is held: announcements, hosts and projects. */
  size(): { entries: number; hosts: number; projects: number } {
    return {
      entries: this.#entries.size,
      hosts: this.#byHost.size,
      projects: this.#byProject.size,
    };
  }
}

/**
 * Which host names the announcer believes, and at which address. Names in
 * agent.yaml `hosts` are trusted as configured and never move. Any other
 * name heard in a datagram is only a candidate (name and source address,
 * at most {@link MAX_CANDIDATE_HOSTS}, the one heard longest ago giving
 * way) until a mutual-TLS request to that address shows a fleet
 * certificate for that name; it is then learned (at most
 * {@link MAX_LEARNED_HOSTS}), written into `config.hosts` so that every
 * other part of the agent reaches it there, and forgotten again once no
 * datagram has come from that address for `staleMs`. A datagram naming a
 * learned host from another address makes that address a candidate; it
 * never moves the name by itself. A candidate that failed its check is
 * checked again only after a back-off that doubles per failure.
 */
export class HostBook {
  readonly #configured: Set<string>;
  #learned = new Map<string, { address: string; heardAt: number }>();
  /** `<host> <address>` → candidate, oldest heard first. */
  #candidates = new Map<
    string,
    { host: string; address: string; heardAt: number }
  >();
  #checking = new Set<string>();
  #backoff = new Map<string, { failures: number; until: number }>();

  constructor(
    private config: AgentConfig,
    private staleMs: number,
    private backoffMs: number,
  ) {
    this.#configured = new Set(Object.keys(config.hosts));
  }

  /** True when lines naming `host` and coming from `address` count. */
  trusted(host: string, address: string): boolean {
    if (this.#configured.has(host)) return true;
    return this.#learned.get(host)?.address === address;
  }

  /**
   * Notes that a datagram from `address` named `host`: refreshes a learned
   * host, or records a candidate. Returns true for a candidate not seen
   * before (which the announcer may answer at once).
   */
  heard(host: string, address: string, now = Date.now()): boolean {
    if (host === this.config.hostname || this.#configured.has(host)) {
      return false;
    }
    const learned = this.#learned.get(host);
    if (learned?.address === address) {
      learned.heardAt = now;
      return false;
    }
    const key = `${host} ${address}`;
    const known = this.#candidates.get(key);
    this.#candidates.delete(key);
    if (!known && this.#candidates.size >= MAX_CANDIDATE_HOSTS) {
      this.#candidates.delete(this.#candidates.keys().next().value!);
    }
    this.#candidates.set(key, { host, address, heardAt: now });
    return !known;
  }

  /** Up to `count` candidates to check now, the most recently heard first. */
  due(count: number, now = Date.now()): { host: string; address: string }[] {
    const due: { host: string; address: string }[] = [];
    for (const [key, c] of [...this.#candidates].reverse()) {
      if (due.length >= count) break;
      if (this.#checking.has(key)) continue;
      if ((this.#backoff.get(key)?.until ?? 0) > now) continue;
      due.push({ host: c.host, address: c.address });
    }
    for (const c of due) this.#checking.add(`${c.host} ${c.address}`);
    return due;
  }

  /** Candidate checks under way. */
  get checking(): number {
    return this.#checking.size;
  }

  /**
   * Records the outcome of checking `host` at `address`. A confirmed host
   * is learned (unless {@link MAX_LEARNED_HOSTS} are) and its address
   * written into `config.hosts`; returns true when it was.
   */
  checked(
    host: string,
    address: string,
    confirmed: boolean,
    now = Date.now(),
  ): boolean {
    const key = `${host} ${address}`;
    this.#checking.delete(key);
    if (!confirmed) {
      const failures = (this.#backoff.get(key)?.failures ?? 0) + 1;
      this.#backoff.delete(key);
      if (this.#backoff.size >= MAX_CANDIDATE_HOSTS * 4) {
        this.#backoff.delete(this.#backoff.keys().next().value!);
      }
      this.#backoff.set(key, {
        failures,
        until: now +
          this.backoffMs * Math.min(2 ** (failures - 1), MAX_BACKOFF_PERIODS),
      });
      return false;
    }
    this.#candidates.delete(key);
    this.#backoff.delete(key);
    if (this.#configured.has(host)) return false;
    if (!this.#learned.has(host) && this.#learned.size >= MAX_LEARNED_HOSTS) {
      return false;
    }
    this.#learned.set(host, { address, heardAt: now });
    this.config.hosts[host] = address;
    return true;
  }

  /**
   * Forgets learned hosts and candidates not heard for `staleMs`; returns
   * the learned hosts forgotten (their announcements should go too).
   */
  expire(now = Date.now()): string[] {
    const forgotten: string[] = [];
    for (const [host, learned] of this.#learned) {
      if (now - learned.heardAt <= this.staleMs) continue;
      this.#learned.delete(host);
      if (this.config.hosts[host] === learned.address) {
        delete this.config.hosts[host];
      }
      forgotten.push(host);
    }
    for (const [key, c] of this.#candidates) {
      if (now - c.heardAt > this.staleMs && !this.#checking.has(key)) {
        this.#candidates.delete(key);
      }
    }
    for (const [key, b] of this.#backoff) {
      if (b.until < now - this.staleMs) this.#backoff.delete(key);
    }
    return forgotten;
  }

  /** Counts, for tests and logs. */
  size(): { configured: number; learned: number; candidates: number } {
    return {
      configured: this.#configured.size,
      learned: this.#learned.size,
      candidates: this.#candidates.size,
    };
  }

  /** The learned hosts and their confirmed addresses. */
  learned(): Record<string, string> {
    return Object.fromEntries(
      [...this.#learned].map(([host, l]) => [host, l.address]),
    );
  }
}

/** Root-side record of a held project's handle and scope. */
export function metaPath(config: AgentConfig, projectId: string): string {
  return `${gitbackBase(config.paths)}/meta/${projectId}.json`;
}

/** What is recorded for a held project, its statement verified again. */
export interface ProjectMeta {
  handle: string;
  /** The verified statement's scope, else `members-only`. */
  scope: Scope;
  /** The founder's statement, verified; null when none is recorded. */
  statement: ScopeStatementWire | null;
}

/** `meta/<project_id>.json`, its statement verified, or null. */
function readMetaFile(
  config: AgentConfig,
  projectId: string,
): ProjectMeta | null {
  try {
    const meta = JSON.parse(Deno.readTextFileSync(metaPath(config, projectId)));
    if (typeof meta?.handle !== "string") return null;
    const statement = checkScopeStatement(meta.scope_statement, projectId);
    return {
      handle: statement?.body.handle ?? meta.handle,
      scope: statement?.body.scope ?? DEFAULT_SCOPE,
      statement: statement?.wire ?? null,
    };
  } catch {
    return null;
  }
}

/**
 * The recorded handle and scope of a held project: `meta/`, else the record
 * kept inside the repository; `unknown` and `members-only` when neither
 * exists. The scope is only ever what the founder's statement says: every
 * read verifies the recorded statement again (verdicts are remembered, so
 * this costs a lookup), and a record without one that verifies is
 * `members-only`, whatever else it says.
 */
export function readProjectMeta(
  config: AgentConfig,
  projectId: string,
): ProjectMeta {
  const meta = readMetaFile(config, projectId);
  if (meta?.statement) return meta;
  // Recorded with the repository (a crash may come between the install
  // and meta/, and a record made before statements has none); with no
  // record at all, the narrower scope.
  const inRepo = PROJECT_ID.test(projectId)
    ? readRepoMetaRecord(bareRepoPath(config.paths, projectId), projectId)
    : null;
  if (inRepo?.scope_statement) {
    return {
      handle: inRepo.handle,
      scope: inRepo.scope,
      statement: inRepo.scope_statement,
    };
  }
  return meta ??
    (inRepo
      ? { handle: inRepo.handle, scope: DEFAULT_SCOPE, statement: null }
      : { handle: "unknown", scope: DEFAULT_SCOPE, statement: null });
}

/**
 * The handle, scope and scope statement recorded for a project this envoy
 * holds a bare repository of, or null when it holds none or recorded no
 * valid handle: what this envoy confirms to a peer asking over mutual TLS.
 * The peer goes by the statement, which it verifies itself.
 */
export function heldRecord(
  config: AgentConfig,
  projectId: string,
): {
  handle: string;
  scope: Scope;
  scope_statement: ScopeStatementWire | null;
} | null {
  if (!PROJECT_ID.test(projectId)) return null;
  try {
    Deno.statSync(`${projectsDir(config.paths)}/${projectId}.git`);
  } catch {
    return null;
  }
  const meta = readProjectMeta(config, projectId);
  if (!HANDLE.test(meta.handle) || meta.handle === "unknown") return null;
  return {
    handle: meta.handle,
    scope: meta.scope,
    scope_statement: meta.statement,
  };
}

/** True for a handle that announcements and the announced cache carry. */
export function isAnnouncedHandle(handle: unknown): handle is string {
  return typeof handle === "string" && HANDLE.test(handle);
}

/**
 * Remembers a project's handle and the founder's scope statement. The
 * first record stays, unless it has no statement that verifies and `meta`
 * brings one that does: only a statement that verifies is ever written,
 * and the first one verified here is the project's scope from then on.
 * `meta.scope` is not looked at.
 */
export function recordProjectMeta(
  config: AgentConfig,
  meta: HeldProject,
): void {
  const path = metaPath(config, meta.projectId);
  const statement = checkScopeStatement(meta.statement, meta.projectId);
  let existing = false;
  try {
    Deno.statSync(path);
    existing = true;
  } catch {
    // None yet.
  }
  if (
    existing && (!statement || readMetaFile(config, meta.projectId)?.statement)
  ) {
    return;
  }
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), {
    recursive: true,
    mode: 0o755,
  });
  writeTextAtomic(
    path,
    JSON.stringify({
      handle: statement?.body.handle ?? meta.handle,
      scope: statement?.body.scope ?? DEFAULT_SCOPE,
      scope_statement: statement?.wire ?? null,
    }) + "\n",
    0o644,
  );
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

/**
 * One entry of `gitback-announced.json`: a project that `host` announced
 * and then, asked over mutual TLS by a certificate for that name, said it
 * holds, with the handle it recorded and the founder's scope statement it
 * holds, which this agent verified (`scope` is what it says, else
 * `members-only`).
 */
export interface ConfirmedProject {
  project_id: string;
  handle: string;
  scope: Scope;
  scope_statement: ScopeStatementWire | null;
  host: string;
  /** ISO 8601 time of that answer. */
  confirmed_at: string;
}

/** Where the world-readable cache of confirmed announcements lives. */
export function announcedCachePath(config: AgentConfig): string {
  return `${gitbackBase(config.paths)}/gitback-announced.json`;
}

/** Writes the world-readable cache of confirmed announcements (0644). */
export function writeAnnouncedCache(
  config: AgentConfig,
  entries: ConfirmedProject[],
): void {
  Deno.mkdirSync(gitbackBase(config.paths), { recursive: true, mode: 0o755 });
  writeTextAtomic(
    announcedCachePath(config),
    JSON.stringify(entries, null, 2) + "\n",
    0o644,
  );
}

/** Options of {@link startAnnouncer}. */
export interface AnnouncerOptions {
  /**
   * Checks that `address` serves a fleet certificate for `host`; rejects
   * otherwise. By default a mutual-TLS request with this envoy's
   * certificate ({@link confirmHost}).
   */
  confirm?: (host: string, address: string) => Promise<void>;
}

/**
 * Sends announcements every period and listens for peers'. Only lines of
 * trusted hosts ({@link HostBook}) reach the index; other names are checked
 * over mutual TLS first, a few per period.
 */
export async function startAnnouncer(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
  options: AnnouncerOptions = {},
): Promise<{ stop(): void; announceNow(): void; hosts: HostBook }> {
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  const periodMs = config.announce.periodSeconds * 1000;
  const book = new HostBook(
    config,
    config.announce.staleSeconds * 1000,
    periodMs,
  );
  const confirm = options.confirm ??
    ((host: string, address: string) =>
      confirmHost(readSwarmTls(config), host, address, config.port));
  // Immediate answers and candidate checks are bounded per period: a
  // datagram's source can be forged, so neither may amplify without limit.
  let answers = 0;
  let checks = 0;
  let unconfirmed = 0;
  let unconfirmedLast = "";
  let stopped = false;
  const check = () => {
    const room = Math.min(
      PEER_CONCURRENCY - book.checking,
      MAX_CHECKS_PER_PERIOD - checks,
    );
    if (room <= 0 || stopped) return;
    for (const { host, address } of book.due(room)) {
      checks++;
      confirm(host, address).then(
        () => {
          if (stopped) return;
          if (book.checked(host, address, true)) {
            log.info("host confirmed", { host, address });
          }
        },
        (error) => {
          if (stopped) return;
          book.checked(host, address, false);
          unconfirmed++;
          unconfirmedLast = `${host} at ${address}: ${(error as Error).message}`
            .slice(0, 200);
        },
      ).finally(check);
    }
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
      const announcement = parseAnnouncement(trimmed);
      const host = parsePresence(trimmed) ?? announcement?.host;
      if (!host || host === config.hostname) continue;
      if (book.trusted(host, remote.address)) {
        book.heard(host, remote.address);
        if (announcement) index.record(announcement);
      } else if (
        book.heard(host, remote.address) && answers < MAX_ANSWERS_PER_PERIOD
      ) {
        // A host we did not know: answer at once, so a new envoy learns
        // what we hold without waiting for our next period. Its own lines
        // count once its certificate has confirmed its name.
        answers++;
        void send([remote.address]);
      }
    }
    check();
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
    checks = 0;
    for (const host of book.expire()) index.forgetHost(host);
    index.prune();
    if (unconfirmed > 0) {
      log.info("announced hosts not confirmed", {
        count: unconfirmed,
        last: unconfirmedLast,
      });
      unconfirmed = 0;
    }
    check();
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
    hosts: book,
    stop() {
      stopped = true;
      clearInterval(timer);
      socket.close();
    },
  };
}
