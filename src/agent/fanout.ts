/**
 * Push fan-out: after a push changes a project's refs, send each known peer
 * a bundle of what it lacks. A peer's last acknowledged tips are kept, so a
 * one-commit push sends one commit's objects; a peer that cannot use the
 * thin bundle gets a full one.
 *
 * @module
 */

import { readOwnedJson, writeTextAtomic } from "../platform/fs.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import { createBundle } from "../gitback/bundle.ts";
import { bareRepoPath, gitbackBase, listRefs } from "../gitback/repo.ts";
import type { AgentConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "./swarm_client.ts";
import { type PeerIndex, readProjectMeta } from "./announce.ts";
import { managedHomes } from "./user_homes.ts";

/** Header carrying the pusher's token chain (base64 of its JSON). */
export const CHAIN_HEADER = "x-vigo-chain";
/** Header carrying the project's distribution scope. */
export const SCOPE_HEADER = "x-vigo-scope";

function ackPath(config: AgentConfig, projectId: string, peer: string): string {
  return `${gitbackBase(config.paths)}/acks/${projectId}/${peer}.json`;
}

/** The tips `peer` acknowledged last for `projectId`. */
export function readAck(
  config: AgentConfig,
  projectId: string,
  peer: string,
): string[] {
  try {
    const value = JSON.parse(
      Deno.readTextFileSync(ackPath(config, projectId, peer)),
    );
    return Array.isArray(value.tips) ? value.tips.map(String) : [];
  } catch {
    return [];
  }
}

function writeAck(
  config: AgentConfig,
  projectId: string,
  peer: string,
  tips: string[],
) {
  const path = ackPath(config, projectId, peer);
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), {
    recursive: true,
    mode: 0o700,
  });
  writeTextAtomic(
    path,
    JSON.stringify({ tips, at: new Date().toISOString() }) + "\n",
    0o600,
  );
}

/**
 * The peers a project's pushes go to, deduplicated: every known host (the
 * unicast announce targets, which gitback-enabled receivers accept), every
 * host announcing the project, and the project's `cross_subnet_members`.
 */
export function peersOf(
  config: AgentConfig,
  projectId: string,
  index?: PeerIndex,
): string[] {
  const peers = new Set(Object.keys(config.hosts));
  for (const a of index?.holders(projectId) ?? []) peers.add(a.host);
  for (const host of crossSubnetMembers(config, projectId)) peers.add(host);
  peers.delete(config.hostname);
  return [...peers].sort();
}

/** `cross_subnet_members` from the project.json of every local holder. */
function crossSubnetMembers(config: AgentConfig, projectId: string): string[] {
  const hosts: string[] = [];
  for (const { uid, home } of managedHomes(config)) {
    try {
      const project = readOwnedJson(
        `${home}/.vigo-gitback/${projectId}/project.json`,
        uid,
      ) as { cross_subnet_members?: unknown };
      if (Array.isArray(project.cross_subnet_members)) {
        hosts.push(
          ...project.cross_subnet_members.filter((h: unknown) =>
            typeof h === "string"
          ),
        );
      }
    } catch {
      // This user does not hold the project.
    }
  }
  return hosts;
}

/** The recorded scope of a held project (swarm-wide when none is recorded). */
export function scopeOf(config: AgentConfig, projectId: string): string {
  return readProjectMeta(config, projectId).scope;
}

/** What one peer answered. */
export interface PeerResult {
  peer: string;
  ok: boolean;
  bytes: number;
  thin: boolean;
  refsChanged?: number;
  error?: string;
  /** The peer could not be reached at all. */
  unreachable?: boolean;
}

function pendingPath(
  config: AgentConfig,
  projectId: string,
  peer: string,
): string {
  return `${gitbackBase(config.paths)}/pending/${projectId}/${peer}.json`;
}

function markPending(
  config: AgentConfig,
  projectId: string,
  peer: string,
  chain: unknown[],
) {
  const path = pendingPath(config, projectId, peer);
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), {
    recursive: true,
    mode: 0o700,
  });
  writeTextAtomic(
    path,
    JSON.stringify({ chain, at: new Date().toISOString() }) + "\n",
    0o600,
  );
}

function clearPending(config: AgentConfig, projectId: string, peer: string) {
  try {
    Deno.removeSync(pendingPath(config, projectId, peer));
  } catch {
    // Nothing was pending.
  }
}

/**
 * Retries deliveries to peers that were unreachable, so a peer that was
 * down during a push catches up once it is back, without another push.
 */
export async function retryPendingFanOut(
  config: AgentConfig,
  log: Logger,
  index?: PeerIndex,
): Promise<void> {
  const base = `${gitbackBase(config.paths)}/pending`;
  let projects: Deno.DirEntry[];
  try {
    projects = [...Deno.readDirSync(base)];
  } catch {
    return;
  }
  for (const project of projects) {
    if (!/^[0-9a-f]{64}$/.test(project.name)) continue;
    for (const entry of Deno.readDirSync(`${base}/${project.name}`)) {
      if (!entry.name.endsWith(".json")) continue;
      const peer = entry.name.slice(0, -5);
      try {
        const { chain } = JSON.parse(
          Deno.readTextFileSync(`${base}/${project.name}/${entry.name}`),
        );
        await fanOut(config, log, project.name, chain, index, [peer]);
      } catch (error) {
        log.warn("fan-out retry failed", {
          project: project.name,
          peer,
          error: (error as Error).message,
        });
      }
    }
  }
}

async function sendTo(
  config: AgentConfig,
  projectId: string,
  chain: unknown[],
  peer: string,
  repo: string,
  tips: string[],
): Promise<PeerResult> {
  const tls = readSwarmTls(config);
  const url = swarmUrl(config, peer, `/swarm/gitback/push/${projectId}`);
  const headers = {
    [CHAIN_HEADER]: encodeBase64(
      new TextEncoder().encode(JSON.stringify(chain)),
    ),
    [SCOPE_HEADER]: scopeOf(config, projectId),
  };
  let known = readAck(config, projectId, peer);
  for (let attempt = 0; attempt < 2; attempt++) {
    const bundle = await createBundle(repo, known);
    if (!bundle) {
      return { peer, ok: true, bytes: 0, thin: true, refsChanged: 0 };
    }
    const response = await swarmRequest(tls, url, {
      method: "POST",
      body: bundle.bytes,
      headers,
      timeoutMs: 120_000,
    });
    if (response.status === 200) {
      writeAck(config, projectId, peer, tips);
      const reply = response.json<{ refs_changed?: number }>();
      return {
        peer,
        ok: true,
        bytes: bundle.bytes.length,
        thin: bundle.thin,
        refsChanged: reply.refs_changed,
      };
    }
    // The peer lacks what we assumed it had: fall back to a full bundle.
    if (response.status === 409 && bundle.thin) {
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
      bytes: bundle.bytes.length,
      thin: bundle.thin,
      error,
    };
  }
  return {
    peer,
    ok: false,
    bytes: 0,
    thin: false,
    error: "full bundle refused",
  };
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
  const tips = [...new Set((await listRefs(repo)).values())];
  const targets = only ?? peersOf(config, projectId, index);
  const results: PeerResult[] = await Promise.all(
    targets.map((peer) =>
      sendTo(config, projectId, chain, peer, repo, tips).catch((error) => ({
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
