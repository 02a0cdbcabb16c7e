/**
 * Adoption of projects where a local puddle is a *member*: a freshly paired
 * envoy has no copy of the member's token chain, so the agent asks the
 * peers announcing a project for chains whose last subject is that puddle's
 * key. Chains are capability statements that work only with the key they
 * name, so handing them out reveals nothing usable. A chain that verifies
 * for the project, presented by that key, is written into the user's state
 * by a child running as the user, with the founder's scope statement that
 * peer holds, once it verified (never the announced scope), and the
 * founder's delegations the chain verified with.
 * Only chains the member accepted (joined with) are handed out, and only
 * by an envoy where that member proved to hold the key, so an admin cannot
 * push membership onto someone. A peer that had no chain for a user is
 * asked again only after a few catch-up periods, so users who are not
 * members cost little. A project the user dropped here (`left.json`) is not
 * adopted again until they join it again, and a chain through a revoked or
 * left token is neither handed out nor taken.
 *
 * @module
 */

import { runSelfAs } from "../platform/run_as.ts";
import { parsePublicKey } from "../crypto/ed25519.ts";
import { decodeToken, type VerifiedChain } from "../gitback/tokens.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import type { AgentConfig } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import { heldRecord, type PeerIndex } from "./announce.ts";
import { readPolicy } from "../envoy/policy.ts";
import { ADOPT_VERB } from "../gitback/adopt.ts";
import { HttpError, type SwarmRoute } from "../swarm/swarm_server.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "../swarm/swarm_client.ts";
import { type ManagedHome, managedHomes } from "../envoy/user_homes.ts";
import {
  holdsProjectDir,
  readUserProject,
  userLeftProjects,
} from "./user_state.ts";
import { boundKeyOf } from "./puddle_bindings.ts";
import {
  delegationsToSend,
  verifyChainWithDelegations,
} from "./delegation_store.ts";
import {
  MEMBER_HEADER,
  memberHeaderFor,
  requireMemberBinding,
} from "./member_proof.ts";

/** The subject that asks only whether a project is held (catchup.ts). */
export const NO_SUBJECT = "0".repeat(64);
import { scopeOf } from "./fanout.ts";
import { checkScopeStatement } from "../gitback/scope_statement.ts";
import {
  boundedAll,
  PEER_CONCURRENCY,
  PEER_DEADLINE_MS,
  peerBackoff,
} from "../swarm/peer_work.ts";

/** Catch-up periods before a peer that had no chain for a user is asked again. */
const RETRY_AFTER_TICKS = 5;
/** `<uid>:<project>:<host>` → when that peer last had no chain for that user. */
const misses = new Map<string, number>();

/**
 * Every accepted chain held here whose last subject is `subject`: the
 * `tokens.json` of a local user who proved to hold that very key (so the
 * puddle accepted the invitation by joining). Invitations an admin issued
 * (`issued.json`) are never handed out: nobody is made a member of a
 * project on their other envoys without having joined it somewhere.
 */
function chainsFor(
  config: AgentConfig,
  projectId: string,
  subject: string,
): unknown[][] {
  const found: unknown[][] = [];
  let revoked: Set<string> | undefined;
  for (const home of managedHomes(config)) {
    if (boundKeyOf(config.paths, home.uid) !== subject) continue;
    const chain = readUserProject(home, projectId, { chain: true })?.chain;
    if (!chain) continue;
    try {
      const links = chain.map(decodeToken);
      if (links[links.length - 1].body.subject !== subject) continue;
      // A chain through a revoked or left token is dead: not handed out.
      revoked ??= revokedTokenIds(config.paths, projectId);
      if (links.some((link) => revoked!.has(link.id))) continue;
      found.push(chain);
    } catch {
      // Not a chain.
    }
  }
  return found;
}

/**
 * `GET /swarm/gitback/chains/<project_id>/<subject hex>`. Besides the
 * chains, `delegations` are the founder's delegations recorded here (with
 * which the chains verify), `scope_statement` is the founder's scope
 * statement recorded here
 * (or null; `scope` is what it says, else `members-only`), and `held` says
 * whether this envoy holds a bare repository of the project
 * (`{"handle","scope","scope_statement"}` as recorded here, else null),
 * whatever the subject: catch-up asks it to confirm announcements over
 * mutual TLS. Askers verify the statement themselves.
 */
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
      // Chains go only to an envoy where their subject lives (unlocked
      // there); the all-zero subject asks only whether a project is held.
      if (subject !== NO_SUBJECT) {
        requireMemberBinding(
          ctx.headers[MEMBER_HEADER],
          `ed25519:${subject}`,
          ctx.peer.subject,
        );
      }
      const held = heldRecord(config, project);
      return {
        status: 200,
        json: {
          chains: chainsFor(config, project, `ed25519:${subject}`).slice(0, 16),
          delegations: delegationsToSend(config.paths, project),
          scope: held?.scope ?? scopeOf(config, project),
          scope_statement: held?.scope_statement ?? null,
          held,
        },
      };
    },
  };
}

/** Chain requests one catch-up tick makes, at most. */
export const MAX_CHAIN_REQUESTS_PER_TICK = 64;

interface Wanted {
  managed: ManagedHome;
  pubkey: string;
  projectId: string;
  /** Announcing hosts, in the order heard. */
  hosts: string[];
}

/**
 * One pass: adopt, for every local puddle, announced projects it is a
 * member of. Each (user, project) asks its announcing hosts one after
 * another; different ones run {@link PEER_CONCURRENCY} at a time, each
 * request within {@link PEER_DEADLINE_MS}, at most
 * {@link MAX_CHAIN_REQUESTS_PER_TICK} requests per pass, and hosts that
 * failed are skipped while backed off.
 */
export async function adoptMemberships(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): Promise<number> {
  const announced = index.all();
  if (announced.length === 0) return 0;
  const backoff = peerBackoff(index, config.reactors.catchupSeconds * 1000);
  const retryMs = RETRY_AFTER_TICKS * config.reactors.catchupSeconds * 1000;
  const wanted: Wanted[] = [];
  for (const managed of managedHomes(config)) {
    const { user, uid } = managed;
    if (uid !== 0 && !readPolicy(config.paths, user)?.gitback) continue;
    // Only a key this user proved to hold, never identity.pub alone.
    const pubkey = boundKeyOf(config.paths, uid);
    if (!pubkey) continue;
    // Projects the user dropped here stay dropped until they join again;
    // an unreadable record stops adoption for them altogether.
    const left = userLeftProjects(managed);
    if (!left) continue;
    const byProject = new Map<string, Wanted>();
    for (const { host, projectId } of announced) {
      if (left.has(projectId)) continue;
      const asked = `${uid}:${projectId}:${host}`;
      const missedAt = misses.get(asked);
      if (missedAt !== undefined && Date.now() - missedAt < retryMs) continue;
      let entry = byProject.get(projectId);
      if (!entry) {
        if (holdsProjectDir(managed, projectId)) continue;
        byProject.set(
          projectId,
          entry = { managed, pubkey, projectId, hosts: [] },
        );
      }
      entry.hosts.push(host);
    }
    wanted.push(...byProject.values());
  }
  // Forgotten misses go: the map never outgrows what is announced.
  for (const [asked, at] of misses) {
    if (Date.now() - at >= retryMs) misses.delete(asked);
  }
  let budget = MAX_CHAIN_REQUESTS_PER_TICK;
  let adopted = 0;
  const tls = wanted.length > 0 ? readSwarmTls(config) : null;
  await boundedAll(wanted, PEER_CONCURRENCY, async (want) => {
    const { managed, pubkey, projectId } = want;
    const { user, uid, home } = managed;
    // Peers hand chains only to an envoy where their subject unlocked.
    const memberHeader = memberHeaderFor(config, pubkey, uid);
    if (!memberHeader) return;
    for (const host of want.hosts) {
      if (!backoff.ready(host)) continue;
      if (budget <= 0) return;
      budget--;
      const asked = `${uid}:${projectId}:${host}`;
      let chain: unknown[] | undefined;
      let verified: VerifiedChain | undefined;
      let statement: unknown = null;
      try {
        const response = await swarmRequest(
          tls!,
          swarmUrl(
            config,
            host,
            `/swarm/gitback/chains/${projectId}/${
              pubkey.slice("ed25519:".length)
            }`,
          ),
          {
            timeoutMs: PEER_DEADLINE_MS,
            peer: host,
            headers: memberHeader ? { [MEMBER_HEADER]: memberHeader } : {},
          },
        );
        if (response.status >= 500) {
          backoff.failed(host);
          continue;
        }
        backoff.succeeded(host);
        if (response.status !== 200) continue;
        const answer = response.json<
          {
            chains?: unknown[][];
            delegations?: unknown;
            scope_statement?: unknown;
          }
        >();
        // The founder's statement, if the holder has one that verifies;
        // the holder's word on the scope alone is not taken.
        statement = checkScopeStatement(answer.scope_statement, projectId)
          ?.wire ?? null;
        const revoked = revokedTokenIds(config.paths, projectId);
        for (const candidate of answer.chains ?? []) {
          try {
            // The holder's delegations, merged with ours, first seen winning.
            verified = await verifyChainWithDelegations(
              config.paths,
              candidate,
              answer.delegations,
              { projectId, presenter: parsePublicKey(pubkey), revoked },
              log,
            );
            chain = candidate;
            break;
          } catch {
            // Not usable; try the next.
          }
        }
      } catch {
        backoff.failed(host);
        continue;
      }
      if (!chain || !verified) {
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
          scope_statement: statement,
          // Exactly the delegations the chain verified with.
          delegations: verified.founderPath.delegations.map((d) => d.wire),
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
      return;
    }
  });
  return adopted;
}
