/**
 * Push fan-out: after a push changes a project's refs, send each known peer
 * a bundle of what it lacks. A peer's last acknowledged tips are kept, so a
 * one-commit push sends one commit's objects; a peer that cannot use the
 * thin bundle gets a full one.
 *
 * @module
 */

import { readOwnedJson, writeTextAtomic } from "../platform/fs.ts";
import { encodeJsonBase64 } from "../platform/encoding.ts";
import { createBundle } from "../gitback/bundle.ts";
import {
  bareRepoPath,
  gitbackBase,
  ingestTempDir,
  listRefs,
} from "../gitback/repo.ts";
import {
  readRefStates,
  type RefState,
  roleOf,
  type StoredRefStates,
} from "../gitback/ref_state.ts";
import type { AgentConfig } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import {
  readSwarmTls,
  swarmRequest,
  type SwarmTls,
  swarmUrl,
} from "../swarm/swarm_client.ts";
import { MEMBER_HEADER, memberHeaderFor } from "./member_proof.ts";
import { decodeToken, MAX_CHAIN_BYTES } from "../gitback/tokens.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import { verifyMemberBinding } from "../gitback/member_binding.ts";
import { PEER_DEADLINE_MS } from "../swarm/peer_work.ts";
import { type PeerIndex, readProjectMeta } from "./announce.ts";
import { encodeScopeHeader, type Scope } from "../gitback/scope_statement.ts";
import {
  describeUntrusted,
  hostDigest,
  isHostName,
} from "../envoy/host_name.ts";
import { managedHomes } from "../envoy/user_homes.ts";
import {
  DELEGATION_MAX_LEN,
  MAX_DELEGATION_BYTES,
  pushChain,
} from "../gitback/delegations.ts";
import {
  delegationsToSend,
  verifyChainWithDelegations,
} from "./delegation_store.ts";

/**
 * Header carrying the pusher's token chain with the founder's delegations
 * this envoy knows: base64 of `{"chain": [...], "delegations": [...]}`
 * (delegations.ts `pushChain`); a bare chain array still reads.
 */
export const CHAIN_HEADER = "x-vigo-chain";
/**
 * Largest {@link CHAIN_HEADER} value: base64 of the largest chain and the
 * most delegations of the largest size, with their JSON around them.
 */
export const MAX_CHAIN_HEADER_BYTES = Math.ceil(
  (MAX_CHAIN_BYTES + DELEGATION_MAX_LEN * (MAX_DELEGATION_BYTES + 256) +
    256) * 4 / 3,
);
/**
 * Header carrying the founder's delegations an envoy knows (base64 of a
 * JSON array) on an answer whose signed ref states the asker verifies.
 */
export const DELEGATIONS_HEADER = "x-vigo-delegations";
/**
 * Header carrying the founder's scope statement (base64 of its JSON, see
 * scope_statement.ts). Without one that verifies, a receiver treats the
 * project as members-only.
 */
export const SCOPE_HEADER = "x-vigo-scope";
/** Header carrying signed ref states (base64 of a JSON array, oldest first). */
export const REFS_HEADER = "x-vigo-refs";
/** Most signed ref states one delivery carries. */
export const MAX_STATES_PER_DELIVERY = 8;
/**
 * Largest {@link REFS_HEADER} value: room for at least two states of the
 * largest size, within the listener's 2.5 MiB request head.
 */
export const MAX_STATES_HEADER_BYTES = 2 * 1024 * 1024;

/**
 * The {@link CHAIN_HEADER} value for `chain` of `projectId`: the chain and
 * the delegations this envoy recorded for the project.
 */
export function chainHeaderFor(
  config: AgentConfig,
  projectId: string,
  chain: readonly unknown[],
): string {
  return encodeJsonBase64(
    pushChain(chain, delegationsToSend(config.paths, projectId)),
  );
}

/** Encodes signed ref states for {@link REFS_HEADER}. */
export function encodeStatesHeader(states: RefState[]): string {
  return encodeJsonBase64(states.map((s) => s.wire));
}

/** Per-project, per-peer state the sender keeps root-side. */
type PeerStateKind = "acks" | "pending";

const PROJECT_ID = /^[0-9a-f]{64}$/;
/** The only file name a per-peer state file may have: a host digest. */
const STATE_FILE = /^[0-9a-f]{64}\.json$/;
/** At most this many `cross_subnet_members` are taken from one project.json. */
export const MAX_CROSS_SUBNET_MEMBERS = 64;

function peerStateDir(
  config: AgentConfig,
  kind: PeerStateKind,
  projectId: string,
): string {
  if (!PROJECT_ID.test(projectId)) {
    throw new Error(`${describeUntrusted(projectId)} is not a project id.`);
  }
  return `${gitbackBase(config.paths)}/${kind}/${projectId}`;
}

/**
 * Where state about `peer` for `projectId` is kept: the file is named by the
 * SHA-256 of the peer's host name ({@link hostDigest}) and records the name
 * inside, so no text from a user or a peer ever becomes part of a path.
 * Throws when `peer` is not a host name.
 */
export function peerStatePath(
  config: AgentConfig,
  kind: PeerStateKind,
  projectId: string,
  peer: string,
): string {
  return `${peerStateDir(config, kind, projectId)}/${hostDigest(peer)}.json`;
}

/** Reads a per-peer state file, or null when absent or not about `peer`. */
function readPeerState(
  config: AgentConfig,
  kind: PeerStateKind,
  projectId: string,
  peer: string,
): Record<string, unknown> | null {
  try {
    const value = JSON.parse(
      Deno.readTextFileSync(peerStatePath(config, kind, projectId, peer)),
    );
    return value && typeof value === "object" && value.peer === peer
      ? value
      : null;
  } catch {
    return null;
  }
}

function writePeerState(
  config: AgentConfig,
  kind: PeerStateKind,
  projectId: string,
  peer: string,
  fields: Record<string, unknown>,
): void {
  const path = peerStatePath(config, kind, projectId, peer);
  Deno.mkdirSync(peerStateDir(config, kind, projectId), {
    recursive: true,
    mode: 0o700,
  });
  writeTextAtomic(
    path,
    JSON.stringify({ peer, ...fields, at: new Date().toISOString() }) + "\n",
    0o600,
  );
}

/** The signed ref state `peer` acknowledged last for `projectId`. */
export function readAckedState(
  config: AgentConfig,
  projectId: string,
  peer: string,
): { id: string; seq: number } | null {
  const state = readPeerState(config, "acks", projectId, peer);
  return typeof state?.state === "string" && Number.isSafeInteger(state?.seq)
    ? { id: state.state, seq: state.seq as number }
    : null;
}

/** The tips `peer` acknowledged last for `projectId`. */
export function readAck(
  config: AgentConfig,
  projectId: string,
  peer: string,
): string[] {
  const tips = readPeerState(config, "acks", projectId, peer)?.tips;
  return Array.isArray(tips)
    ? tips.filter((t): t is string =>
      typeof t === "string" && /^[0-9a-f]{40,64}$/.test(t)
    )
    : [];
}

function writeAck(
  config: AgentConfig,
  projectId: string,
  peer: string,
  tips: string[],
  state: RefState,
) {
  writePeerState(config, "acks", projectId, peer, {
    tips,
    state: state.id,
    seq: state.body.seq,
  });
}

/**
 * The states to send `peer`, oldest first: every kept state it has not
 * acknowledged (losers of a conflict at its sequence included), from the
 * last admin state among them on (an admin's state may follow one the
 * peer does not know; a member's must follow one it does), the current one
 * last.
 */
function statesFor(
  config: AgentConfig,
  projectId: string,
  peer: string,
  stored: StoredRefStates,
): RefState[] {
  const acked = readAckedState(config, projectId, peer);
  const all = [...stored.recent, stored.current!].sort((a, b) =>
    a.body.seq - b.body.seq || (a.id < b.id ? -1 : 1)
  );
  let unacked = acked
    ? all.filter((s) => s.body.seq >= acked.seq && s.id !== acked.id)
    : all;
  const lastAdmin = unacked.findLastIndex((s) => roleOf(s) === "admin");
  if (lastAdmin > 0) unacked = unacked.slice(lastAdmin);
  return unacked.includes(stored.current!)
    ? unacked
    : [...unacked, stored.current!];
}

/**
 * The peers a project's pushes go to, deduplicated: every known host (the
 * unicast announce targets, which gitback-enabled receivers accept), every
 * host announcing the project, and the project's `cross_subnet_members`.
 * Only host names ({@link isHostName}) are returned; anything else is left
 * out (and logged, when `log` is given).
 */
export function peersOf(
  config: AgentConfig,
  projectId: string,
  index?: PeerIndex,
  log?: Logger,
): string[] {
  const peers = new Set(Object.keys(config.hosts));
  for (const a of index?.holders(projectId) ?? []) peers.add(a.host);
  for (const host of crossSubnetMembers(config, projectId, log)) {
    peers.add(host);
  }
  peers.delete(config.hostname);
  return [...peers].filter((peer) => isHostName(peer)).sort();
}

/**
 * `cross_subnet_members` from the project.json of every local holder: a
 * user's file, so every entry is checked against the host name grammar and
 * at most {@link MAX_CROSS_SUBNET_MEMBERS} are taken from one file.
 */
function crossSubnetMembers(
  config: AgentConfig,
  projectId: string,
  log?: Logger,
): string[] {
  const hosts: string[] = [];
  for (const { user, uid, home } of managedHomes(config)) {
    let listed: unknown;
    try {
      const project = readOwnedJson(
        `${home}/.vigo-gitback/${projectId}/project.json`,
        uid,
      ) as { cross_subnet_members?: unknown };
      listed = project?.cross_subnet_members;
    } catch {
      // This user does not hold the project.
      continue;
    }
    if (listed === undefined || listed === null) continue;
    const entries = Array.isArray(listed) ? listed : [listed];
    const refused = entries.filter((h) => !isHostName(h));
    const valid = entries.filter(isHostName);
    if (refused.length > 0 || valid.length > MAX_CROSS_SUBNET_MEMBERS) {
      log?.warn("cross_subnet_members entries ignored", {
        project: projectId,
        user,
        not_host_names: refused.length,
        first: refused.length > 0 ? describeUntrusted(refused[0]) : undefined,
        over_limit: Math.max(0, valid.length - MAX_CROSS_SUBNET_MEMBERS),
      });
    }
    hosts.push(...valid.slice(0, MAX_CROSS_SUBNET_MEMBERS));
  }
  return hosts;
}

/**
 * The scope of a held project: what the founder's statement recorded here
 * says, verified again; `members-only` without one.
 */
export function scopeOf(config: AgentConfig, projectId: string): Scope {
  return readProjectMeta(config, projectId).scope;
}

/**
 * The {@link SCOPE_HEADER} value for a held project: its recorded
 * statement, verified again, or null when there is none (the header is
 * then left out, and the receiver treats the project as members-only).
 */
export function scopeHeaderOf(
  config: AgentConfig,
  projectId: string,
): string | null {
  const statement = readProjectMeta(config, projectId).statement;
  return statement ? encodeScopeHeader(statement) : null;
}

/** What one peer answered. */
export interface PeerResult {
  peer: string;
  ok: boolean;
  bytes: number;
  thin: boolean;
  /** Bytes of the headers that carried chain, states, binding and scope. */
  headerBytes?: number;
  refsChanged?: number;
  error?: string;
  /** The peer could not be reached at all. */
  unreachable?: boolean;
}

function markPending(
  config: AgentConfig,
  projectId: string,
  peer: string,
  chain: unknown[],
) {
  writePeerState(config, "pending", projectId, peer, { chain });
}

function clearPending(config: AgentConfig, projectId: string, peer: string) {
  try {
    Deno.removeSync(peerStatePath(config, "pending", projectId, peer));
  } catch {
    // Nothing was pending.
  }
}

/** A temporary file of an atomic write of a state file (platform/fs.ts). */
const STATE_TEMP = /^\.[0-9a-f]{64}\.json\..+\.tmp$/;
/** Temporary files older than this are left over from a crash. */
const STALE_TEMP_MS = 10 * 60 * 1000;

/**
 * Removes what is not a per-peer state file from `dir` (one project's
 * `acks` or `pending` directory): files of the older format, named by the
 * peer's name (never read again), and anything else such a name made.
 * A write in progress is left alone. Returns how many entries went.
 */
function removeOldFormat(dir: string): number {
  let removed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (entry.isFile && STATE_FILE.test(entry.name)) continue;
    const path = `${dir}/${entry.name}`;
    try {
      if (STATE_TEMP.test(entry.name)) {
        const age = Date.now() - (Deno.lstatSync(path).mtime?.getTime() ?? 0);
        if (age < STALE_TEMP_MS) continue;
      }
      // A link is removed itself; what it points to is left alone.
      Deno.removeSync(path, { recursive: true });
      removed++;
    } catch {
      // Gone meanwhile.
    }
  }
  return removed;
}

/**
 * Cleans both per-peer directories of every project of what
 * {@link removeOldFormat} removes; logs how much.
 */
function cleanPeerState(config: AgentConfig, log: Logger): void {
  for (const kind of ["acks", "pending"] as const) {
    const base = `${gitbackBase(config.paths)}/${kind}`;
    let projects: Deno.DirEntry[];
    try {
      projects = [...Deno.readDirSync(base)];
    } catch {
      continue;
    }
    for (const project of projects) {
      const removed = project.isDirectory && PROJECT_ID.test(project.name)
        ? removeOldFormat(`${base}/${project.name}`)
        : 0;
      if (removed > 0) {
        log.info("removed old-format fan-out records", {
          kind,
          project: project.name,
          count: removed,
        });
      }
    }
  }
}

/**
 * A pending record's peer and chain; `null` when it is not valid (the
 * peer inside is not a host name, or not the one the file is named for,
 * or there is no chain), `undefined` when it is gone.
 */
function readPending(
  path: string,
  name: string,
): { peer: string; chain: unknown[] } | null | undefined {
  let value: { peer?: unknown; chain?: unknown } | null;
  try {
    value = JSON.parse(Deno.readTextFileSync(path));
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? undefined : null;
  }
  const peer = value?.peer;
  if (!isHostName(peer) || `${hostDigest(peer)}.json` !== name) return null;
  if (!Array.isArray(value?.chain)) return null;
  return { peer, chain: value.chain };
}

/**
 * Retries deliveries to peers that were unreachable, so a peer that was
 * down during a push catches up once it is back, without another push.
 * The peer is the one recorded inside each file (checked against the host
 * name grammar and the file's digest name), never the file's name; files
 * of the older format and invalid ones are removed.
 */
export async function retryPendingFanOut(
  config: AgentConfig,
  log: Logger,
  index?: PeerIndex,
): Promise<void> {
  cleanPeerState(config, log);
  const base = `${gitbackBase(config.paths)}/pending`;
  let projects: Deno.DirEntry[];
  try {
    projects = [...Deno.readDirSync(base)];
  } catch {
    return;
  }
  for (const project of projects) {
    if (!project.isDirectory || !PROJECT_ID.test(project.name)) continue;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${base}/${project.name}`)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!STATE_FILE.test(entry.name)) continue; // A write in progress.
      const path = `${base}/${project.name}/${entry.name}`;
      const pending = readPending(path, entry.name);
      if (pending === undefined) continue; // Delivered meanwhile.
      if (pending === null || pending.peer === config.hostname) {
        log.warn("invalid pending fan-out record removed", {
          project: project.name,
          file: entry.name,
        });
        await Deno.remove(path).catch(() => {});
        continue;
      }
      try {
        await fanOut(config, log, project.name, pending.chain, index, [
          pending.peer,
        ]);
      } catch (error) {
        log.warn("fan-out retry failed", {
          project: project.name,
          peer: pending.peer,
          error: (error as Error).message,
        });
      }
    }
  }
}

/**
 * True when `peer` lists a member of `projectId` whose chain verifies and
 * whose binding names `peer` (the members route, push_route.ts).
 */
async function peerHasMember(
  config: AgentConfig,
  tls: SwarmTls,
  peer: string,
  projectId: string,
  chain: unknown[],
  memberHeader: string,
  log?: Logger,
): Promise<boolean> {
  const url = swarmUrl(config, peer, `/swarm/gitback/members/${projectId}`);
  const response = await swarmRequest(tls, url, {
    headers: {
      [CHAIN_HEADER]: chainHeaderFor(config, projectId, chain),
      [MEMBER_HEADER]: memberHeader,
    },
    timeoutMs: PEER_DEADLINE_MS,
    maxResponseBytes: 1024 * 1024,
    peer,
  });
  if (response.status !== 200) return false;
  let members: unknown;
  let delegations: unknown;
  try {
    ({ members, delegations } = response.json<
      { members?: unknown; delegations?: unknown }
    >());
  } catch {
    return false;
  }
  if (!Array.isArray(members)) return false;
  const revoked = revokedTokenIds(config.paths, projectId);
  for (const member of members.slice(0, 16)) {
    try {
      // The peer's delegations, merged with ours, first seen winning.
      const verified = await verifyChainWithDelegations(
        config.paths,
        member?.chain,
        delegations,
        { projectId, revoked },
        log,
      );
      verifyMemberBinding(member?.binding, {
        member: verified.leaf.body.subject,
        envoy: peer,
      });
      return true;
    } catch {
      // Not a member living there.
    }
  }
  return false;
}

async function sendTo(
  config: AgentConfig,
  projectId: string,
  chain: unknown[],
  peer: string,
  repo: string,
  tips: string[],
  log?: Logger,
): Promise<PeerResult> {
  const tls = readSwarmTls(config);
  const url = swarmUrl(config, peer, `/swarm/gitback/push/${projectId}`);
  const stored = readRefStates(repo);
  if (!stored.current) {
    return {
      peer,
      ok: false,
      bytes: 0,
      thin: false,
      error: "this envoy holds no signed ref state for the project yet",
    };
  }
  // The pusher's binding to this envoy: receivers take no chain without it.
  let memberHeader: string | null = null;
  try {
    memberHeader = memberHeaderFor(
      config,
      decodeToken(chain[chain.length - 1]).body.subject,
    );
  } catch {
    // Not a chain.
  }
  if (!memberHeader) {
    return {
      peer,
      ok: false,
      bytes: 0,
      thin: false,
      error:
        "the pusher has no binding to this envoy; it is made when they unlock here",
    };
  }
  // Nothing of a members-only project goes to an envoy where no member
  // proved to live.
  if (
    scopeOf(config, projectId) === "members-only" &&
    !(await peerHasMember(
      config,
      tls,
      peer,
      projectId,
      chain,
      memberHeader,
      log,
    ))
  ) {
    return {
      peer,
      ok: false,
      bytes: 0,
      thin: false,
      error: "no member of this members-only project has proven to live there",
    };
  }
  const states = statesFor(config, projectId, peer, stored);
  const batches: RefState[][] = [];
  // Batches of at most 8 states whose header fits the receiver's limit.
  for (const state of states) {
    const last = batches[batches.length - 1];
    if (
      last && last.length < MAX_STATES_PER_DELIVERY &&
      encodeStatesHeader([...last, state]).length <= MAX_STATES_HEADER_BYTES
    ) {
      last.push(state);
    } else {
      batches.push([state]);
    }
  }
  let known = readAck(config, projectId, peer);
  let sent = { bytes: 0, thin: true, refsChanged: 0, headerBytes: 0 };
  // The objects go with the first batch: every state sent follows the last
  // admin state, so all they name is reachable from the current refs.
  const scopeHeader = scopeHeaderOf(config, projectId);
  const chainHeader = chainHeaderFor(config, projectId, chain);
  for (const [i, batch] of batches.entries()) {
    const headers: Record<string, string> = {
      [CHAIN_HEADER]: chainHeader,
      [REFS_HEADER]: encodeStatesHeader(batch),
      [MEMBER_HEADER]: memberHeader,
    };
    if (scopeHeader) headers[SCOPE_HEADER] = scopeHeader;
    let delivered = false;
    for (let attempt = 0; attempt < 2 && !delivered; attempt++) {
      const bundle = i === 0
        ? await createBundle(repo, ingestTempDir(config.paths), known)
        : null;
      if (i === 0 && known.length === 0 && !bundle) {
        return { peer, ok: false, bytes: 0, thin: false, error: "no refs" };
      }
      const response = await swarmRequest(tls, url, {
        method: "POST",
        body: bundle?.bytes ?? new Uint8Array(0),
        headers,
        timeoutMs: 120_000,
      });
      if (response.status === 200) {
        writeAck(config, projectId, peer, tips, batch[batch.length - 1]);
        const reply = response.json<{ refs_changed?: number }>();
        sent = {
          bytes: sent.bytes + (bundle?.bytes.length ?? 0),
          thin: i === 0 ? bundle?.thin ?? true : sent.thin,
          refsChanged: sent.refsChanged + (reply.refs_changed ?? 0),
          headerBytes: sent.headerBytes +
            Object.entries(headers).reduce(
              (sum, [name, value]) => sum + name.length + value.length + 4,
              0,
            ),
        };
        delivered = true;
        continue;
      }
      // The peer lacks what we assumed it had: fall back to a full bundle.
      if (response.status === 409 && i === 0 && known.length > 0) {
        known = [];
        continue;
      }
      let error = `HTTP ${response.status}`;
      try {
        error = response.json<{ error?: string }>().error ?? error;
      } catch {
        // Keep the status.
      }
      return {
        peer,
        ok: false,
        bytes: bundle?.bytes.length ?? 0,
        thin: bundle?.thin ?? true,
        error,
      };
    }
    if (!delivered) {
      return {
        peer,
        ok: false,
        bytes: 0,
        thin: false,
        error: "full bundle refused",
      };
    }
  }
  return { peer, ok: true, ...sent };
}

/** Sends `projectId`'s new state to every peer; logs and returns results. */
export async function fanOut(
  config: AgentConfig,
  log: Logger,
  projectId: string,
  chain: unknown[],
  index?: PeerIndex,
  only?: string[],
): Promise<PeerResult[]> {
  const repo = bareRepoPath(config.paths, projectId);
  const targets = (only ?? peersOf(config, projectId, index, log)).filter(
    (peer) => {
      if (isHostName(peer)) return true;
      log.warn("fan-out skipped a peer that is not a host name", {
        project: projectId,
        peer: describeUntrusted(peer),
      });
      return false;
    },
  );
  // Recorded before the first await, so before the push that called us
  // returns: an agent stopped meanwhile still owes every peer this state.
  for (const peer of targets) markPending(config, projectId, peer, chain);
  const tips = [...new Set((await listRefs(repo)).values())];
  const results: PeerResult[] = await Promise.all(
    targets.map((peer) =>
      sendTo(config, projectId, chain, peer, repo, tips, log).catch((
        error,
      ) => ({
        peer,
        ok: false,
        bytes: 0,
        thin: false,
        error: (error as Error).message,
        unreachable: true,
      }))
    ),
  );
  for (const r of results) {
    // An unreachable peer is retried by the catch-up reactor; a refusal is final.
    if (r.unreachable) markPending(config, projectId, r.peer, chain);
    else clearPending(config, projectId, r.peer);
    if (r.ok) {
      log.info("fan-out delivered", {
        project: projectId,
        peer: r.peer,
        bundle: r.thin ? "thin" : "full",
        bytes: r.bytes,
        header_bytes: r.headerBytes,
        refs_changed: r.refsChanged,
      });
    } else {
      log.warn("fan-out failed", {
        project: projectId,
        peer: r.peer,
        error: r.error,
      });
    }
  }
  return results;
}
