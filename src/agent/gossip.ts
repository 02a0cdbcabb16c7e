/**
 * Envelope gossip: a REVOKE or LEAVE stored on one envoy is posted to every
 * peer of its project, and each agent periodically compares a digest of its
 * stored envelopes with its peers', pulling and merging on a mismatch, so a
 * peer that was offline catches up within one reconcile period.
 *
 * Posts go through a bounded queue per peer (one request in flight, at most
 * {@link MAX_PENDING_SENDS_PER_PEER} waiting, duplicates coalesced); what
 * does not fit is dropped with a log line and reaches the peer through the
 * next reconcile instead. So no burst of envelopes grows memory or floods a
 * peer.
 *
 * After a founder rotation an envelope's chain verifies only with the
 * founder's delegations, so a post carries the ones this envoy recorded
 * (`{"body","sig","delegations"}`, only `body` and `sig` are stored) and the
 * `all` answer lists them beside the envelopes; the receiver merges them
 * with its own record, first seen winning (delegation_store.ts).
 *
 * Tombstones (gitback/tombstone.ts) travel the same way as a third kind,
 * `tombstones`: posted when the sweep stores one, named
 * `tombstones/<project_id>.json` in the digest (one per project: the first
 * verified stays, so two envoys holding different ones do not pull each
 * other's every period), and listed in the `all` answer. They are verified
 * before they are stored, like every envelope (agent/tombstone_store.ts).
 *
 * @module
 */

import { envelopeSetDigest } from "../gitback/envelopes.ts";
import { TokenError } from "../gitback/tokens.ts";
import { envelopesDir, gitbackBase } from "../gitback/repo.ts";
import type { AgentConfig } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import { startReactor } from "../swarm/reactor.ts";
import type { PeerIndex } from "./announce.ts";
import { peersOf } from "./fanout.ts";
import { readProjectMeta } from "./announce.ts";
import { verifyMemberRequest } from "./push_route.ts";
import { TombstoneError } from "../gitback/tombstone.ts";
import { acceptTombstone, readTombstone } from "./tombstone_store.ts";
import { localMemberHeaders } from "./member_proof.ts";
import { HttpError, type SwarmRoute } from "../swarm/swarm_server.ts";
import {
  readSwarmTls,
  swarmRequest,
  type SwarmTls,
  swarmUrl,
} from "../swarm/swarm_client.ts";
import {
  DELEGATION_MAX_LEN,
  MAX_DELEGATION_BYTES,
} from "../gitback/delegations.ts";
import { MAX_ENVELOPE_BYTES } from "../gitback/envelopes.ts";
import { delegationsToSend } from "./delegation_store.ts";
import {
  acceptEnvelope,
  EnvelopeCapError,
  type EnvelopeKind,
  reapEnvelopes,
  storedNames as storedFileNames,
} from "./envelope_store.ts";

const KINDS: EnvelopeKind[] = ["revokes", "leaves"];
/** What gossip carries: the two kinds of envelope and tombstones. */
export type GossipKind = EnvelopeKind | "tombstones";
/** Most tombstones taken from one `all` answer (a project has one). */
const MAX_TOMBSTONES_PER_ANSWER = 4;
/** Largest post: an envelope and the most delegations of the largest size. */
const MAX_ENVELOPE_BODY = MAX_ENVELOPE_BYTES + 4096 +
  DELEGATION_MAX_LEN * (MAX_DELEGATION_BYTES + 256);
/** Most envelope posts waiting for one peer; more are left to reconcile. */
export const MAX_PENDING_SENDS_PER_PEER = 64;
/**
 * Largest `all` answer a reconcile reads: every cap full of 32 KiB
 * envelopes (512 + 512 + 256 of them) still fits.
 */
const MAX_ALL_BYTES = 48 * 1024 * 1024;

function storedNames(
  config: AgentConfig,
  projectId: string,
  kind: EnvelopeKind,
): string[] {
  return storedFileNames(config.paths, projectId, kind);
}

/**
 * The digest of every envelope stored for `projectId`: see
 * `envelopeSetDigest` (the sorted names `revokes/<token_id>.json`,
 * `leaves/<envelope_id>.json` and, when a tombstone that verifies is
 * stored, `tombstones/<project_id>.json`).
 */
export function envelopeDigest(config: AgentConfig, projectId: string): string {
  const names = KINDS.flatMap((kind) =>
    storedNames(config, projectId, kind).map((n) => `${kind}/${n}`)
  );
  if (readTombstone(config.paths, projectId)) {
    names.push(`tombstones/${projectId}.json`);
  }
  return envelopeSetDigest(names);
}

function readAll(
  config: AgentConfig,
  projectId: string,
): Record<GossipKind, unknown[]> {
  const tombstone = readTombstone(config.paths, projectId);
  const all: Record<GossipKind, unknown[]> = {
    revokes: [],
    leaves: [],
    tombstones: tombstone ? [tombstone.wire] : [],
  };
  for (const kind of KINDS) {
    for (const name of storedNames(config, projectId, kind)) {
      try {
        all[kind].push(
          JSON.parse(
            Deno.readTextFileSync(
              `${envelopesDir(config.paths, projectId, kind)}/${name}`,
            ),
          ),
        );
      } catch {
        // Skip a file being replaced.
      }
    }
  }
  return all;
}

function checkParams(projectId: string, kind?: string): void {
  if (!/^[0-9a-f]{64}$/.test(projectId)) {
    throw new HttpError(400, "the project id must be 64 hex digits.");
  }
  if (
    kind !== undefined && kind !== "revokes" && kind !== "leaves" &&
    kind !== "tombstones"
  ) {
    throw new HttpError(404, "envelopes are revokes, leaves or tombstones.");
  }
}

/**
 * Stores a tombstone a peer posted, once it verifies (403 otherwise);
 * answers `{stored}`, false when it or another one is stored already.
 */
async function receiveTombstone(
  config: AgentConfig,
  log: Logger,
  project: string,
  peer: string,
  wire: unknown,
): Promise<{ status: number; json: { stored: boolean } }> {
  let stored: boolean;
  try {
    stored = await acceptTombstone(config.paths, project, wire, {
      delegations: (wire as { delegations?: unknown } | null)?.delegations,
      log,
    });
  } catch (error) {
    if (!(error instanceof TombstoneError || error instanceof TokenError)) {
      throw error;
    }
    log.warn("signature failure on gossiped tombstone", {
      project,
      peer,
      error: error.message,
    });
    throw new HttpError(
      403,
      `the tombstone does not verify: ${error.message}`,
    );
  }
  if (stored) log.info("tombstone received", { project, peer });
  return { status: 200, json: { stored } };
}

/** The gossip routes: receive one envelope or tombstone, digest, all. */
export function gossipRoutes(config: AgentConfig, log: Logger): SwarmRoute[] {
  return [
    {
      method: "POST",
      pattern: "/swarm/gitback/envelopes/:project/:kind",
      maxBodyBytes: MAX_ENVELOPE_BODY,
      handler: async (ctx) => {
        const { project, kind } = ctx.params;
        checkParams(project, kind);
        const envelope = ctx.json();
        if (kind === "tombstones") {
          return await receiveTombstone(
            config,
            log,
            project,
            ctx.peer.subject,
            envelope,
          );
        }
        let stored: boolean;
        try {
          stored = await acceptEnvelope(
            config,
            project,
            kind as EnvelopeKind,
            envelope,
            undefined,
            {
              delegations: (envelope as { delegations?: unknown } | null)
                ?.delegations,
              log,
            },
          );
        } catch (error) {
          if (error instanceof EnvelopeCapError) {
            log.warn("envelope refused over the cap", {
              project,
              kind,
              peer: ctx.peer.subject,
              error: error.message,
            });
            throw new HttpError(429, error.message);
          }
          if (!(error instanceof TokenError)) throw error;
          log.warn("signature failure on gossiped envelope", {
            project,
            kind,
            peer: ctx.peer.subject,
            error: error.message,
          });
          throw new HttpError(
            403,
            `the envelope does not verify: ${error.message}`,
          );
        }
        if (stored) {
          log.info("envelope received", {
            project,
            kind,
            peer: ctx.peer.subject,
          });
        }
        return { status: 200, json: { stored } };
      },
    },
    {
      method: "GET",
      pattern: "/swarm/gitback/envelopes/:project/digest",
      maxBodyBytes: 0,
      handler: (ctx) => {
        checkParams(ctx.params.project);
        return {
          status: 200,
          json: { digest: envelopeDigest(config, ctx.params.project) },
        };
      },
    },
    {
      method: "GET",
      pattern: "/swarm/gitback/envelopes/:project/all",
      maxBodyBytes: 0,
      handler: async (ctx) => {
        const project = ctx.params.project;
        checkParams(project);
        // Who left or was revoked from a members-only project is for an
        // envoy where a member lives: a chain and its binding, as for a
        // bundle (a tombstoned project's too: its tombstone must travel).
        if (readProjectMeta(config, project).scope === "members-only") {
          await verifyMemberRequest(config, ctx, project, log, {
            allowTombstoned: true,
          });
        }
        return {
          status: 200,
          json: {
            ...readAll(config, project),
            delegations: delegationsToSend(config.paths, project),
          },
        };
      },
    },
  ];
}

interface PendingSend {
  projectId: string;
  kind: GossipKind;
  body: string;
}

interface PeerQueue {
  /** Waiting posts by envelope, oldest first. */
  pending: Map<string, PendingSend>;
  /** The post on its way now, if any. */
  inFlight: string | null;
  running: boolean;
  /** Posts dropped since the queue last ran dry. */
  dropped: number;
}

/** One queue per agent (its root) and peer. */
const queues = new Map<string, PeerQueue>();

/** How many posts wait for `peer` (for tests and status). */
export function pendingSends(config: AgentConfig, peer: string): number {
  return queues.get(`${config.paths.root}\0${peer}`)?.pending.size ?? 0;
}

/**
 * Queues one stored envelope or tombstone for every peer of its project
 * and returns at once. Each peer gets one post at a time; a post already waiting for a
 * peer is not queued twice, and a peer with
 * {@link MAX_PENDING_SENDS_PER_PEER} waiting gets no more until it drains
 * (logged once per overflow): reconcile brings it what was dropped.
 */
export function gossipEnvelope(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
  projectId: string,
  kind: GossipKind,
  envelope: unknown,
): Promise<void> {
  const { body, sig } = envelope as { body: string; sig: string };
  const key = `${projectId}/${kind}/${JSON.stringify({ body, sig })}`;
  const delegations = delegationsToSend(config.paths, projectId);
  const text = JSON.stringify(
    delegations.length > 0 ? { body, sig, delegations } : { body, sig },
  );
  for (const peer of peersOf(config, projectId, index)) {
    const id = `${config.paths.root}\0${peer}`;
    let queue = queues.get(id);
    if (!queue) {
      queue = {
        pending: new Map(),
        inFlight: null,
        running: false,
        dropped: 0,
      };
      queues.set(id, queue);
    }
    if (queue.pending.has(key) || queue.inFlight === key) continue;
    if (queue.pending.size >= MAX_PENDING_SENDS_PER_PEER) {
      if (queue.dropped++ === 0) {
        log.warn("gossip queue full; further envelopes wait for reconcile", {
          peer,
          pending: queue.pending.size,
        });
      }
      continue;
    }
    queue.pending.set(key, { projectId, kind, body: text });
    if (!queue.running) void drain(config, log, peer, id, queue);
  }
  return Promise.resolve();
}

async function drain(
  config: AgentConfig,
  log: Logger,
  peer: string,
  id: string,
  queue: PeerQueue,
): Promise<void> {
  queue.running = true;
  try {
    let tls: SwarmTls | undefined;
    while (queue.pending.size > 0) {
      const [key, send] = queue.pending.entries().next().value!;
      queue.pending.delete(key);
      queue.inFlight = key;
      try {
        tls ??= readSwarmTls(config);
        const response = await swarmRequest(
          tls,
          swarmUrl(
            config,
            peer,
            `/swarm/gitback/envelopes/${send.projectId}/${send.kind}`,
          ),
          {
            method: "POST",
            body: send.body,
            headers: { "content-type": "application/json" },
            timeoutMs: 10_000,
          },
        );
        if (response.status !== 200) {
          log.warn("gossip refused", {
            project: send.projectId,
            peer,
            status: response.status,
          });
        }
      } catch (error) {
        // A peer that cannot be reached (or answered garbage) gets nothing
        // more now: reconcile catches it up once it is back.
        const left = queue.pending.size;
        queue.pending.clear();
        log.info("gossip deferred to reconcile", {
          project: send.projectId,
          peer,
          dropped: left,
          error: (error as Error).message,
        });
      }
    }
  } finally {
    queue.running = false;
    queue.inFlight = null;
    if (queue.dropped > 0) {
      log.warn(
        "gossip queue overflowed; dropped envelopes wait for reconcile",
        {
          peer,
          dropped: queue.dropped,
        },
      );
      queue.dropped = 0;
    }
    if (queue.pending.size === 0) queues.delete(id);
  }
}

/** Projects this envoy knows envelopes, a repository or a tombstone for. */
function knownProjects(config: AgentConfig, index: PeerIndex): string[] {
  const ids = new Set<string>();
  for (
    const dir of [
      `${gitbackBase(config.paths)}/envelopes`,
      `${gitbackBase(config.paths)}/projects`,
      `${gitbackBase(config.paths)}/tombstones`,
    ]
  ) {
    try {
      for (const entry of Deno.readDirSync(dir)) {
        const id = entry.name.replace(/\.git$/, "");
        if (/^[0-9a-f]{64}$/.test(id)) ids.add(id);
      }
    } catch {
      // Nothing there yet.
    }
  }
  for (const a of index.all()) ids.add(a.projectId);
  return [...ids];
}

/** One reconcile pass: compare digests with peers, pull and merge on mismatch. */
export async function reconcileOnce(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): Promise<number> {
  const tls = readSwarmTls(config);
  let merged = 0;
  let reaped = 0;
  for (const projectId of knownProjects(config, index)) {
    reaped += reapEnvelopes(config.paths, projectId);
    const mine = envelopeDigest(config, projectId);
    for (const peer of peersOf(config, projectId, index)) {
      try {
        const digest = await swarmRequest(
          tls,
          swarmUrl(
            config,
            peer,
            `/swarm/gitback/envelopes/${projectId}/digest`,
          ),
          {
            timeoutMs: 10_000,
          },
        );
        if (
          digest.status !== 200 ||
          digest.json<{ digest: string }>().digest === mine
        ) continue;
        const all = await swarmRequest(
          tls,
          swarmUrl(config, peer, `/swarm/gitback/envelopes/${projectId}/all`),
          {
            timeoutMs: 30_000,
            maxResponseBytes: MAX_ALL_BYTES,
            // A peer lists a members-only project's envelopes only to an
            // envoy where a member lives.
            headers: localMemberHeaders(config, projectId) ?? {},
          },
        );
        if (all.status !== 200) continue;
        const lists = all.json<Record<string, unknown>>();
        const offered = lists.delegations;
        // One line per kind of refusal and peer, not one per envelope.
        const refused = { invalid: 0, overCap: 0, error: "" };
        for (const kind of KINDS) {
          const list = Array.isArray(lists[kind])
            ? lists[kind] as unknown[]
            : [];
          for (const envelope of list) {
            try {
              if (
                await acceptEnvelope(
                  config,
                  projectId,
                  kind,
                  envelope,
                  undefined,
                  { delegations: offered, log },
                )
              ) {
                merged++;
              }
            } catch (error) {
              if (error instanceof EnvelopeCapError) refused.overCap++;
              else refused.invalid++;
              refused.error ||= (error as Error).message;
            }
          }
        }
        const tombstones = Array.isArray(lists.tombstones)
          ? lists.tombstones.slice(0, MAX_TOMBSTONES_PER_ANSWER)
          : [];
        for (const tombstone of tombstones) {
          try {
            if (
              await acceptTombstone(config.paths, projectId, tombstone, {
                delegations: offered,
                log,
              })
            ) merged++;
          } catch (error) {
            refused.invalid++;
            refused.error ||= (error as Error).message;
          }
        }
        if (refused.invalid > 0) {
          log.warn("signature failure on reconciled envelope", {
            project: projectId,
            peer,
            count: refused.invalid,
            error: refused.error,
          });
        } else if (refused.overCap > 0) {
          log.warn("reconciled envelopes refused over the cap", {
            project: projectId,
            peer,
            count: refused.overCap,
            error: refused.error,
          });
        }
      } catch {
        // The peer is unreachable; the next pass tries again.
      }
    }
  }
  if (reaped > 0) {
    log.info("reaped envelopes past retention", { count: reaped });
  }
  if (merged > 0) log.info("reconcile merged envelopes", { count: merged });
  return merged;
}

/** Runs {@link reconcileOnce} every `reactors.gossip_s`. */
export function startReconcile(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): { stop(): void } {
  return startReactor(
    "reconcile",
    config.reactors.gossipSeconds,
    log,
    () => reconcileOnce(config, log, index),
  );
}
