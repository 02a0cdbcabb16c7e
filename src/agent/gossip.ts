/**
 * Envelope gossip: a REVOKE or LEAVE stored on one envoy is posted to every
 * peer of its project, and each agent periodically compares a digest of its
 * stored envelopes with its peers', pulling and merging on a mismatch, so a
 * peer that was offline catches up within one reconcile period.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../crypto/hex.ts";
import { envelopesDir, gitbackBase } from "../gitback/repo.ts";
import type { AgentConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { startReactor } from "./reactor.ts";
import type { PeerIndex } from "./announce.ts";
import { peersOf } from "./fanout.ts";
import { HttpError, type SwarmRoute } from "./swarm_server.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "./swarm_client.ts";
import { acceptEnvelope, type EnvelopeKind } from "./envelope_store.ts";

const KINDS: EnvelopeKind[] = ["revokes", "leaves"];
const MAX_ENVELOPE_BODY = 64 * 1024;

function storedNames(
  config: AgentConfig,
  projectId: string,
  kind: EnvelopeKind,
): string[] {
  try {
    return [...Deno.readDirSync(envelopesDir(config.paths, projectId, kind))]
      .filter((e) => e.isFile && e.name.endsWith(".json"))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** A digest of every envelope stored for `projectId`. */
export function envelopeDigest(config: AgentConfig, projectId: string): string {
  const names = KINDS.flatMap((kind) =>
    storedNames(config, projectId, kind).map((n) => `${kind}/${n}`)
  );
  return toHex(sha256(new TextEncoder().encode(names.join("\n"))));
}

function readAll(
  config: AgentConfig,
  projectId: string,
): Record<EnvelopeKind, unknown[]> {
  const all: Record<EnvelopeKind, unknown[]> = { revokes: [], leaves: [] };
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
  if (kind !== undefined && kind !== "revokes" && kind !== "leaves") {
    throw new HttpError(404, "envelopes are revokes or leaves.");
  }
}

/** The gossip routes: receive one envelope, digest, all. */
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
        let stored: boolean;
        try {
          stored = await acceptEnvelope(
            config,
            project,
            kind as EnvelopeKind,
            envelope,
          );
        } catch (error) {
          log.warn("signature failure on gossiped envelope", {
            project,
            kind,
            peer: ctx.peer.subject,
            error: (error as Error).message,
          });
          throw new HttpError(
            403,
            `the envelope does not verify: ${(error as Error).message}`,
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
      handler: (ctx) => {
        checkParams(ctx.params.project);
        return { status: 200, json: readAll(config, ctx.params.project) };
      },
    },
  ];
}

/** Posts one stored envelope to every peer of its project. */
export async function gossipEnvelope(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
  projectId: string,
  kind: EnvelopeKind,
  envelope: unknown,
): Promise<void> {
  const tls = readSwarmTls(config);
  await Promise.all(
    peersOf(config, projectId, index).map(async (peer) => {
      try {
        const response = await swarmRequest(
          tls,
          swarmUrl(
            config,
            peer,
            `/swarm/gitback/envelopes/${projectId}/${kind}`,
          ),
          {
            method: "POST",
            body: JSON.stringify(envelope),
            headers: { "content-type": "application/json" },
            timeoutMs: 10_000,
          },
        );
        if (response.status !== 200) {
          log.warn("gossip refused", {
            project: projectId,
            peer,
            status: response.status,
          });
        }
      } catch (error) {
        log.info("gossip deferred to reconcile", {
          project: projectId,
          peer,
          error: (error as Error).message,
        });
      }
    }),
  );
}

/** Projects this envoy knows envelopes or a repository for. */
function knownProjects(config: AgentConfig, index: PeerIndex): string[] {
  const ids = new Set<string>();
  for (
    const dir of [
      `${gitbackBase(config.paths)}/envelopes`,
      `${gitbackBase(config.paths)}/projects`,
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
  for (const projectId of knownProjects(config, index)) {
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
            maxResponseBytes: 16 * 1024 * 1024,
          },
        );
        if (all.status !== 200) continue;
        const lists = all.json<Record<string, unknown>>();
        for (const kind of KINDS) {
          const list = Array.isArray(lists[kind])
            ? lists[kind] as unknown[]
            : [];
          for (const envelope of list) {
            try {
              if (await acceptEnvelope(config, projectId, kind, envelope)) {
                merged++;
              }
            } catch (error) {
              log.warn("signature failure on reconciled envelope", {
                project: projectId,
                peer,
                error: (error as Error).message,
              });
            }
          }
        }
      } catch {
        // The peer is unreachable; the next pass tries again.
      }
    }
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
