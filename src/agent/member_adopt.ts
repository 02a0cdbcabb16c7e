/**
 * Adoption of projects where a local puddle is a *member*: a freshly paired
 * envoy has no copy of the member's token chain, so the agent asks the
 * peers announcing a project for chains whose last subject is that puddle's
 * key. Chains are capability statements that work only with the key they
 * name, so handing them out reveals nothing usable. A chain that verifies
 * for the project, presented by that key, is written into the user's state
 * by a child running as the user, with the scope that peer recorded for the
 * project (over mutual TLS, rather than the unauthenticated announcement).
 * A peer that had no chain for a user is asked again only after a few
 * catch-up periods, so users who are not members cost little.
 *
 * @module
 */

import { runSelfAs } from "../platform/run_as.ts";
import { parsePublicKey } from "../crypto/ed25519.ts";
import { decodeToken, verifyChain } from "../gitback/tokens.ts";
import type { AgentConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import type { PeerIndex } from "./announce.ts";
import { readPolicy } from "./policy.ts";
import { ADOPT_VERB } from "../gitback/adopt.ts";
import { HttpError, type SwarmRoute } from "./swarm_server.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "./swarm_client.ts";
import { managedHomes } from "./user_homes.ts";
import { holdsProjectDir, readUserProject } from "./user_state.ts";
import { boundKeyOf } from "./puddle_bindings.ts";
import { scopeOf } from "./fanout.ts";

/** Catch-up periods before a peer that had no chain for a user is asked again. */
const RETRY_AFTER_TICKS = 5;
/** `<uid>:<project>:<host>` → when that peer last had no chain for that user. */
const misses = new Map<string, number>();

/** Every chain held here (own or issued) whose last subject is `subject`. */
function chainsFor(
  config: AgentConfig,
  projectId: string,
  subject: string,
): unknown[][] {
  const found: unknown[][] = [];
  for (const home of managedHomes(config)) {
    const project = readUserProject(home, projectId, {
      chain: true,
      issued: true,
    });
    if (!project) continue;
    const candidates = [
      ...(project.chain ? [project.chain] : []),
      ...(project.issued ?? []),
    ];
    for (const chain of candidates) {
      try {
        if (decodeToken(chain[chain.length - 1]).body.subject === subject) {
          found.push(chain);
        }
      } catch {
        // Not a chain.
      }
    }
  }
  return found;
}

/** `GET /swarm/gitback/chains/<project_id>/<subject hex>`. */
export function chainsRoute(config: AgentConfig): SwarmRoute {
  return {
    method: "GET",
    pattern: "/swarm/gitback/chains/:project/:subject",
    maxBodyBytes: 0,
    handler: (ctx) => {
      const { project, subject } = ctx.params;
      if (!/^[0-9a-f]{64}$/.test(project) || !/^[0-9a-f]{64}$/.test(subject)) {
        throw new HttpError(400, "project and subject must be 64 hex digits.");
      }
      return {
        status: 200,
        json: {
          chains: chainsFor(config, project, `ed25519:${subject}`).slice(0, 16),
          scope: scopeOf(config, project),
        },
      };
    },
  };
}

/** One pass: adopt, for every local puddle, announced projects it is a member of. */
export async function adoptMemberships(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): Promise<number> {
  const announced = index.all();
  if (announced.length === 0) return 0;
  let adopted = 0;
  const tls = readSwarmTls(config);
  for (const managed of managedHomes(config)) {
    const { user, uid, home } = managed;
    if (uid !== 0 && !readPolicy(config.paths, user)?.gitback) continue;
    // Only a key this user proved to hold, never identity.pub alone.
    const pubkey = boundKeyOf(config.paths, uid);
    if (!pubkey) continue;
    for (const { host, projectId, scope } of announced) {
      if (holdsProjectDir(managed, projectId)) continue;
      const asked = `${uid}:${projectId}:${host}`;
      const missedAt = misses.get(asked);
      const retryMs = RETRY_AFTER_TICKS * config.reactors.catchupSeconds * 1000;
      if (missedAt !== undefined && Date.now() - missedAt < retryMs) continue;
      let chain: unknown[] | undefined;
      let heldScope: unknown;
      try {
        const response = await swarmRequest(
          tls,
          swarmUrl(
            config,
            host,
            `/swarm/gitback/chains/${projectId}/${
              pubkey.slice("ed25519:".length)
            }`,
          ),
          { timeoutMs: 10_000 },
        );
        if (response.status !== 200) continue;
        const answer = response.json<
          { chains?: unknown[][]; scope?: unknown }
        >();
        heldScope = answer.scope;
        for (const candidate of answer.chains ?? []) {
          try {
            await verifyChain(candidate, {
              projectId,
              presenter: parsePublicKey(pubkey),
            });
            chain = candidate;
            break;
          } catch {
            // Not usable; try the next.
          }
        }
      } catch {
        continue;
      }
      if (!chain) {
        misses.set(asked, Date.now());
        continue;
      }
      misses.delete(asked);
      const out = await runSelfAs(
        {
          uid,
          gid: uid === 0 ? 0 : (Deno.statSync(home).gid ?? uid),
          home,
        },
        ["swarm", "gitback", ADOPT_VERB, projectId],
        JSON.stringify({
          chain,
          // The holder's record, over mutual TLS; else what was announced.
          scope: heldScope === "members-only" || heldScope === "swarm-wide"
            ? heldScope
            : scope ?? "members-only",
        }),
      );
      if (out.code === 0) {
        adopted++;
        log.info("adopted membership", {
          user,
          project: projectId,
          from: host,
        });
      } else {
        log.warn("adoption failed", {
          user,
          project: projectId,
          error: out.stderr.trim().slice(0, 200),
        });
      }
    }
  }
  return adopted;
}
