/**
 * DR catch-up: a project a local user holds state for, but with no bare
 * repository on this envoy (freshly joined, adopted at unlock, missed every
 * push), is pulled as a full bundle from a peer that announces it. One
 * repository per tick. The tick also refreshes the world-readable cache of
 * announcements that `puddle unlock` reads to adopt projects.
 *
 * @module
 */

import { encodeBase64 } from "../platform/encoding.ts";
import { exists } from "../platform/fs.ts";
import { BundleError, ingestBundle } from "../gitback/bundle.ts";
import {
  bareRepoPath,
  ensureBareRepo,
  listRefs,
  repairHead,
} from "../gitback/repo.ts";
import type { AgentConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import {
  type PeerIndex,
  recordProjectMeta,
  writeAnnouncedCache,
} from "./announce.ts";
import { CHAIN_HEADER, retryPendingFanOut, SCOPE_HEADER } from "./fanout.ts";
import { adoptMemberships } from "./member_adopt.ts";
import { startReactor } from "./reactor.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "./swarm_client.ts";
import { managedHomes } from "./user_homes.ts";
import { readUserProject, userProjectIds } from "./user_state.ts";

interface Missing {
  projectId: string;
  handle: string;
  scope: string;
  chain: unknown[];
}

/** Local projects without a bare repository, with a chain to ask with. */
function missingProjects(config: AgentConfig): Missing[] {
  const missing: Missing[] = [];
  for (const home of managedHomes(config)) {
    for (const projectId of userProjectIds(home)) {
      if (exists(bareRepoPath(config.paths, projectId))) continue;
      const project = readUserProject(home, projectId, { chain: true });
      if (!project?.chain) continue;
      missing.push({
        projectId,
        handle: project.handle,
        scope: project.scope,
        chain: project.chain,
      });
    }
  }
  return missing;
}

/** One catch-up pass; returns the project pulled, if any. */
export async function catchUpOnce(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): Promise<string | null> {
  writeAnnouncedCache(config, index);
  await retryPendingFanOut(config, log, index);
  await adoptMemberships(config, log, index);
  for (const project of missingProjects(config)) {
    const holders = index.holders(project.projectId);
    if (holders.length === 0) continue;
    const tls = readSwarmTls(config);
    for (const holder of holders) {
      try {
        const response = await swarmRequest(
          tls,
          swarmUrl(
            config,
            holder.host,
            `/swarm/gitback/bundle/${project.projectId}`,
          ),
          {
            headers: {
              [CHAIN_HEADER]: encodeBase64(
                new TextEncoder().encode(JSON.stringify(project.chain)),
              ),
            },
            timeoutMs: 120_000,
            maxResponseBytes: 1024 * 1024 * 1024,
          },
        );
        if (response.status !== 200) {
          log.warn("catch-up refused", {
            project: project.projectId,
            peer: holder.host,
            status: response.status,
          });
          continue;
        }
        const repo = await ensureBareRepo(config.paths, project.projectId);
        try {
          const changed = await ingestBundle(repo, response.body);
          await repairHead(repo, await listRefs(repo));
          // The holder's recorded scope, over mutual TLS, outranks the
          // user's local copy (which unlock may have taken from an
          // unauthenticated announcement).
          const held = response.headers.get(SCOPE_HEADER);
          recordProjectMeta(config, {
            ...project,
            scope: held === "members-only" || held === "swarm-wide"
              ? held
              : project.scope,
          });
          log.info("catch-up pulled", {
            project: project.projectId,
            peer: holder.host,
            bytes: response.body.length,
            refs: changed,
          });
          return project.projectId;
        } catch (error) {
          await Deno.remove(repo, { recursive: true }).catch(() => {});
          throw error;
        }
      } catch (error) {
        log.warn("catch-up failed", {
          project: project.projectId,
          peer: holder.host,
          error: error instanceof BundleError
            ? error.detail
            : (error as Error).message,
        });
      }
    }
    // One repository per tick, whether or not it worked.
    return null;
  }
  return null;
}

/** Runs {@link catchUpOnce} every `reactors.catchup_s`. */
export function startCatchUp(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): { stop(): void } {
  return startReactor(
    "catch-up",
    config.reactors.catchupSeconds,
    log,
    () => catchUpOnce(config, log, index),
  );
}
