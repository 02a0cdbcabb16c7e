/**
 * `POST /swarm/gitback/push/<project_id>`: a peer delivers a bundle after a
 * push. The `X-Vigo-Chain` header must verify for the project in the URL;
 * the bundle must verify against the local repository; ingests of one
 * project run one at a time.
 *
 * @module
 */

import { decodeBase64 } from "../platform/encoding.ts";
import { exists } from "../platform/fs.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { managedHomes } from "./user_homes.ts";
import { readUserProject } from "./user_state.ts";
import { boundKeyOf } from "./puddle_bindings.ts";
import { type VerifiedChain, verifyChain } from "../gitback/tokens.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import {
  BundleError,
  ingestBundle,
  MissingPrerequisites,
} from "../gitback/bundle.ts";
import {
  bareRepoPath,
  ensureBareRepo,
  listRefs,
  repairHead,
  tombstonePath,
} from "../gitback/repo.ts";
import { MAX_CHAIN_BYTES } from "../gitback/tokens.ts";
import { type AgentConfig, gitbackEnabledHere } from "./config.ts";
import type { Logger } from "./log.ts";
import { HttpError, type SwarmRoute } from "./swarm_server.ts";
import { CHAIN_HEADER, SCOPE_HEADER, scopeOf } from "./fanout.ts";
import { recordProjectMeta } from "./announce.ts";
import { createBundle } from "../gitback/bundle.ts";

/** Largest bundle a peer may deliver. */
export const MAX_BUNDLE_BYTES = 1024 * 1024 * 1024;

/** Parses and verifies the chain header for `projectId`. */
export async function verifyChainHeader(
  config: AgentConfig,
  header: string | undefined,
  projectId: string,
): Promise<VerifiedChain> {
  if (!header || header.length > MAX_CHAIN_BYTES * 2) {
    throw new HttpError(
      401,
      `the ${CHAIN_HEADER} header is missing or too large.`,
    );
  }
  let chain: unknown;
  try {
    chain = JSON.parse(new TextDecoder().decode(decodeBase64(header)));
  } catch {
    throw new HttpError(400, `the ${CHAIN_HEADER} header is not base64 JSON.`);
  }
  try {
    return await verifyChain(chain, {
      projectId,
      revoked: revokedTokenIds(config.paths, projectId),
      tombstoned: exists(tombstonePath(config.paths, projectId)),
    });
  } catch (error) {
    throw new HttpError(
      403,
      `the chain does not grant this project: ${(error as Error).message}`,
    );
  }
}

/**
 * True when a local user is a member of the project: a key that user proved
 * to hold (never `identity.pub` alone) is the presented chain's subject or
 * founder, or presents a chain of their own that verifies for the project.
 */
export async function hasLocalMember(
  config: AgentConfig,
  projectId: string,
  verified: VerifiedChain,
): Promise<boolean> {
  const subjects = new Set([
    verified.leaf.body.subject,
    formatPublicKey(verified.founder),
  ]);
  for (const managed of managedHomes(config)) {
    const key = boundKeyOf(config.paths, managed.uid);
    if (!key) continue;
    if (subjects.has(key)) return true;
    const own = readUserProject(managed, projectId, { chain: true });
    if (!own?.chain) continue;
    try {
      await verifyChain(own.chain, {
        projectId,
        presenter: parsePublicKey(key),
        revoked: revokedTokenIds(config.paths, projectId),
      });
      return true;
    } catch {
      // Not a member by this chain.
    }
  }
  return false;
}

/** The receive side of push fan-out. */
export function pushRoute(config: AgentConfig, log: Logger): SwarmRoute {
  const queues = new Map<string, Promise<unknown>>();
  return {
    method: "POST",
    pattern: "/swarm/gitback/push/:project",
    maxBodyBytes: MAX_BUNDLE_BYTES,
    handler: async (ctx) => {
      const projectId = ctx.params.project;
      if (!/^[0-9a-f]{64}$/.test(projectId)) {
        throw new HttpError(400, "the project id must be 64 hex digits.");
      }
      if (!gitbackEnabledHere(config)) {
        throw new HttpError(
          403,
          `gitback is not enabled on ${config.hostname}.`,
        );
      }
      const verified = await verifyChainHeader(
        config,
        ctx.headers[CHAIN_HEADER],
        projectId,
      );
      if (ctx.body.length === 0) {
        throw new HttpError(400, "the body must be a git bundle.");
      }
      const scope = ctx.headers[SCOPE_HEADER] === "members-only"
        ? "members-only"
        : "swarm-wide";
      if (
        scope === "members-only" &&
        !(await hasLocalMember(config, projectId, verified))
      ) {
        throw new HttpError(
          403,
          `${projectId} is members-only and no puddle on ${config.hostname} is a member.`,
        );
      }
      // One ingest per project at a time, so concurrent pushes cannot race.
      const previous = queues.get(projectId) ?? Promise.resolve();
      const run = previous.catch(() => {}).then(async () => {
        const existed = exists(bareRepoPath(config.paths, projectId));
        const repo = await ensureBareRepo(config.paths, projectId);
        try {
          const changed = await ingestBundle(repo, ctx.body);
          await repairHead(repo, await listRefs(repo));
          recordProjectMeta(config, {
            projectId,
            handle: verified.handle,
            scope,
          });
          return changed;
        } catch (error) {
          // A refused first bundle leaves no empty repository behind.
          if (!existed) {
            await Deno.remove(repo, { recursive: true }).catch(() => {});
          }
          throw error;
        }
      });
      queues.set(projectId, run);
      try {
        const changed = await run;
        log.info("bundle ingested", {
          project: projectId,
          peer: ctx.peer.subject,
          bytes: ctx.body.length,
          refs_changed: changed,
        });
        return { status: 200, json: { accepted: true, refs_changed: changed } };
      } catch (error) {
        if (error instanceof MissingPrerequisites) {
          throw new HttpError(409, error.message);
        }
        if (error instanceof BundleError) {
          // The peer learns what was wrong; only the log has local detail.
          log.warn("bundle refused", {
            project: projectId,
            peer: ctx.peer.subject,
            error: error.detail ?? error.message,
          });
          throw new HttpError(400, error.message);
        }
        log.error("bundle ingest failed", {
          project: projectId,
          peer: ctx.peer.subject,
          error: (error as Error).message,
        });
        throw new HttpError(500, "internal error while storing the bundle.");
      } finally {
        if (queues.get(projectId) === run) queues.delete(projectId);
      }
    },
  };
}

/**
 * `GET /swarm/gitback/bundle/<project_id>`: a full bundle of a held project,
 * for DR catch-up. The caller presents a chain for the project, exactly as
 * a push does.
 */
export function bundleRoute(config: AgentConfig): SwarmRoute {
  return {
    method: "GET",
    pattern: "/swarm/gitback/bundle/:project",
    maxBodyBytes: 0,
    handler: async (ctx) => {
      const projectId = ctx.params.project;
      if (!/^[0-9a-f]{64}$/.test(projectId)) {
        throw new HttpError(400, "the project id must be 64 hex digits.");
      }
      await verifyChainHeader(config, ctx.headers[CHAIN_HEADER], projectId);
      const repo = bareRepoPath(config.paths, projectId);
      if (!exists(repo)) {
        throw new HttpError(
          404,
          `${config.hostname} holds no bare repository for ${projectId}.`,
        );
      }
      const bundle = await createBundle(repo);
      if (!bundle) {
        throw new HttpError(
          404,
          `the repository of ${projectId} has no refs yet.`,
        );
      }
      return {
        status: 200,
        body: bundle.bytes,
        // The scope recorded here, so the fetching envoy records the same.
        headers: { [SCOPE_HEADER]: scopeOf(config, projectId) },
      };
    },
  };
}
