/**
 * DR catch-up: a project a local user holds state for, but with no bare
 * repository on this envoy (freshly joined, adopted at unlock, missed every
 * push), is pulled as a full bundle from a peer that announces it. One
 * repository per tick. The tick also refreshes the world-readable cache
 * that `puddle unlock` reads to adopt projects: the announced projects that
 * their hosts confirmed holding when asked over mutual TLS.
 *
 * @module
 */

import { decodeJsonBase64 } from "../platform/encoding.ts";
import { exists } from "../platform/fs.ts";
import { BundleError, ingestBundle } from "../gitback/bundle.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import { decodeToken } from "../gitback/tokens.ts";
import {
  bareRepoPath,
  createStagingRepo,
  ingestTempDir,
  installStagedRepo,
  listRefs,
  repairHead,
  writeRepoMeta,
} from "../gitback/repo.ts";
import type { AgentConfig } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import {
  type ConfirmedProject,
  isAnnouncedHandle,
  type PeerIndex,
  recordProjectMeta,
  writeAnnouncedCache,
} from "./announce.ts";
import {
  CHAIN_HEADER,
  chainHeaderFor,
  DELEGATIONS_HEADER,
  MAX_CHAIN_HEADER_BYTES,
  REFS_HEADER,
  retryPendingFanOut,
  SCOPE_HEADER,
} from "./fanout.ts";
import { verifyChainWithDelegations } from "./delegation_store.ts";
import { verifyStatesHeader } from "./push_route.ts";
import { isTombstoned } from "./tombstone_store.ts";
import {
  checkScopeStatement,
  decodeScopeHeader,
  DEFAULT_SCOPE,
  type Scope,
  scopeFromStatement,
  type ScopeStatementWire,
} from "../gitback/scope_statement.ts";
import { applyRefStates } from "../gitback/ref_apply.ts";
import { adoptMemberships, NO_SUBJECT } from "./member_adopt.ts";
import { MEMBER_HEADER, memberHeaderFor } from "./member_proof.ts";
import {
  boundedAll,
  PEER_CONCURRENCY,
  PEER_DEADLINE_MS,
  type PeerBackoff,
  peerBackoff,
} from "../swarm/peer_work.ts";
import { startReactor } from "../swarm/reactor.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "../swarm/swarm_client.ts";
import { managedHomes } from "../envoy/user_homes.ts";
import { readUserProject, userProjectIds } from "./user_state.ts";

interface Missing {
  projectId: string;
  handle: string;
  /** The user's copy of the founder's scope statement, verified, if any. */
  statement: ScopeStatementWire | null;
  chain: unknown[];
  /** The user's copy of the founder's delegations (verified before use). */
  delegations: unknown[];
  /** The user's binding to this envoy, which holders ask for. */
  memberHeader: string;
}

/**
 * Local projects without a bare repository, with a chain to ask with. A
 * chain through a revoked or left token fetches nothing: a user who left
 * never brings a repository back here; nor does a tombstoned project,
 * which every holder refuses.
 */
function missingProjects(config: AgentConfig): Missing[] {
  const missing: Missing[] = [];
  for (const home of managedHomes(config)) {
    for (const projectId of userProjectIds(home)) {
      if (
        exists(bareRepoPath(config.paths, projectId)) ||
        isTombstoned(config.paths, projectId)
      ) continue;
      const project = readUserProject(home, projectId, {
        chain: true,
        delegations: true,
      });
      if (!project?.chain || throughRevoked(config, projectId, project.chain)) {
        continue;
      }
      // Holders serve only an envoy where the chain's subject unlocked.
      let memberHeader: string | null = null;
      try {
        const leaf = decodeToken(project.chain[project.chain.length - 1]);
        memberHeader = memberHeaderFor(config, leaf.body.subject, home.uid);
      } catch {
        // Not a chain: nothing to ask with.
      }
      if (!memberHeader) continue;
      missing.push({
        projectId,
        handle: project.handle,
        statement: project.scopeStatement,
        chain: project.chain,
        delegations: project.delegations ?? [],
        memberHeader,
      });
    }
  }
  return missing;
}

/** True when `chain` names a token this envoy knows revoked or left. */
function throughRevoked(
  config: AgentConfig,
  projectId: string,
  chain: unknown[],
): boolean {
  try {
    const revoked = revokedTokenIds(config.paths, projectId);
    return chain.some((link) => revoked.has(decodeToken(link).id));
  } catch {
    // Not a chain, or no telling: not asked with.
    return true;
  }
}

/** Confirmations of announced projects asked per tick, at most. */
export const MAX_CONFIRMATIONS_PER_TICK = 64;
/** Catch-up periods a host's answer about a project it holds is kept. */
const CONFIRMED_FOR_TICKS = 10;
/** Catch-up periods a host's "not held here" is kept. */
const REFUTED_FOR_TICKS = 2;
/** The subject asked for when only `held` matters: it names no key. */

interface Confirmation {
  held: {
    handle: string;
    scope: Scope;
    statement: ScopeStatementWire | null;
  } | null;
  at: number;
}

/** Per agent (its peer index): `<host>\n<project>` → that host's answer. */
const confirmations = new WeakMap<PeerIndex, Map<string, Confirmation>>();

/**
 * Asks announcing hosts, over mutual TLS, whether they hold what they
 * announce, and writes `gitback-announced.json` with the projects they
 * confirmed: the handle the host recorded, and the founder's scope
 * statement it holds once verified here (`scope` is what that says, else
 * `members-only`; no datagram and no unsigned answer sets it). Answers are kept
 * for a few periods; at most {@link MAX_CONFIRMATIONS_PER_TICK} questions
 * per tick, {@link PEER_CONCURRENCY} at a time, within
 * {@link PEER_DEADLINE_MS} each, never to a host that is backed off.
 */
export async function refreshAnnouncedCache(
  config: AgentConfig,
  index: PeerIndex,
  backoff: PeerBackoff,
): Promise<ConfirmedProject[]> {
  const periodMs = config.reactors.catchupSeconds * 1000;
  let known = confirmations.get(index);
  if (!known) confirmations.set(index, known = new Map());
  const now = Date.now();
  const announced = index.all(now);
  const current = new Set(announced.map((a) => `${a.host}\n${a.projectId}`));
  for (const key of known.keys()) if (!current.has(key)) known.delete(key);
  const expired = (c: Confirmation | undefined) =>
    !c ||
    now - c.at >= periodMs * (c.held ? CONFIRMED_FOR_TICKS : REFUTED_FOR_TICKS);
  // Never asked first, then the oldest answers.
  const due = announced
    .filter((a) =>
      expired(known.get(`${a.host}\n${a.projectId}`)) && backoff.ready(a.host)
    )
    .sort((x, y) =>
      (known.get(`${x.host}\n${x.projectId}`)?.at ?? -1) -
      (known.get(`${y.host}\n${y.projectId}`)?.at ?? -1)
    )
    .slice(0, MAX_CONFIRMATIONS_PER_TICK);
  const tls = due.length > 0 ? readSwarmTls(config) : null;
  await boundedAll(due, PEER_CONCURRENCY, async ({ host, projectId }) => {
    if (!backoff.ready(host)) return;
    const key = `${host}\n${projectId}`;
    try {
      const response = await swarmRequest(
        tls!,
        swarmUrl(
          config,
          host,
          `/swarm/gitback/chains/${projectId}/${NO_SUBJECT}`,
        ),
        { timeoutMs: PEER_DEADLINE_MS, peer: host },
      );
      if (response.status >= 500) {
        backoff.failed(host);
        return;
      }
      backoff.succeeded(host);
      let held: Confirmation["held"] = null;
      if (response.status === 200) {
        const answer = response.json<{ held?: unknown }>().held as
          | { handle?: unknown; scope_statement?: unknown }
          | null
          | undefined;
        if (isAnnouncedHandle(answer?.handle)) {
          const statement = checkScopeStatement(
            answer.scope_statement,
            projectId,
          );
          held = {
            handle: statement?.body.handle ?? answer.handle,
            scope: statement?.body.scope ?? DEFAULT_SCOPE,
            statement: statement?.wire ?? null,
          };
        }
      }
      known.set(key, { held, at: Date.now() });
    } catch {
      backoff.failed(host);
    }
  });
  const confirmed: ConfirmedProject[] = [];
  for (const { host, projectId } of announced) {
    const c = known.get(`${host}\n${projectId}`);
    if (!c?.held || expired(c)) continue;
    confirmed.push({
      project_id: projectId,
      handle: c.held.handle,
      scope: c.held.scope,
      scope_statement: c.held.statement,
      host,
      confirmed_at: new Date(c.at).toISOString(),
    });
  }
  confirmed.sort((x, y) =>
    x.project_id.localeCompare(y.project_id) || x.host.localeCompare(y.host)
  );
  writeAnnouncedCache(config, confirmed);
  return confirmed;
}

/**
 * Pulls the first missing project that a ready holder announces, asking its
 * holders one at a time: each must send its answer's headers within
 * {@link PEER_DEADLINE_MS} (the bundle itself may take up to 120 s), and a
 * holder that failed is backed off.
 */
async function pullMissing(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
  backoff: PeerBackoff,
): Promise<string | null> {
  for (const project of missingProjects(config)) {
    const holders = index.holders(project.projectId)
      .filter((holder) => backoff.ready(holder.host));
    if (holders.length === 0) continue;
    const tls = readSwarmTls(config);
    // The user's delegations are learned here once their chain verifies
    // with them; holders get the ones recorded here.
    await verifyChainWithDelegations(
      config.paths,
      project.chain,
      project.delegations,
      {
        projectId: project.projectId,
        revoked: revokedTokenIds(config.paths, project.projectId),
      },
      log,
    ).catch(() => {
      // The holder judges the chain with what it knows.
    });
    const chainHeader = chainHeaderFor(
      config,
      project.projectId,
      project.chain,
    );
    for (const holder of holders) {
      try {
        let response;
        try {
          response = await swarmRequest(
            tls,
            swarmUrl(
              config,
              holder.host,
              `/swarm/gitback/bundle/${project.projectId}`,
            ),
            {
              headers: {
                [CHAIN_HEADER]: chainHeader,
                [MEMBER_HEADER]: project.memberHeader,
              },
              headersTimeoutMs: PEER_DEADLINE_MS,
              timeoutMs: 120_000,
              maxResponseBytes: 1024 * 1024 * 1024,
              peer: holder.host,
            },
          );
        } catch (error) {
          backoff.failed(holder.host);
          throw error;
        }
        if (response.status >= 500) backoff.failed(holder.host);
        else backoff.succeeded(holder.host);
        if (response.status !== 200) {
          log.warn("catch-up refused", {
            project: project.projectId,
            peer: holder.host,
            status: response.status,
          });
          continue;
        }
        // The scope is the founder's statement: the holder's, once it
        // verifies here, else the user's own copy, verified; with neither
        // the project is members-only here.
        const statement = checkScopeStatement(
          decodeScopeHeader(response.headers.get(SCOPE_HEADER)),
          project.projectId,
        )?.wire ?? project.statement;
        const scope = scopeFromStatement(statement, project.projectId);
        // A staging repository that carries its scope becomes the project's
        // only once the bundle is in: no crash leaves a half replica.
        const staging = await createStagingRepo(
          config.paths,
          project.projectId,
        );
        let changed: number;
        try {
          writeRepoMeta(staging, {
            handle: project.handle,
            scope,
            scope_statement: statement,
          });
          const tempDir = ingestTempDir(config.paths);
          Deno.mkdirSync(tempDir, { recursive: true, mode: 0o700 });
          const states = await verifyStatesHeader(
            config,
            response.headers.get(REFS_HEADER) ?? undefined,
            project.projectId,
            offeredDelegations(response.headers.get(DELEGATIONS_HEADER)),
            log,
          );
          await ingestBundle(staging, response.body, {
            tempDir,
            objectsOnly: true,
          });
          changed = (await applyRefStates(staging, states)).changed;
        } catch (error) {
          await Deno.remove(staging, { recursive: true }).catch(() => {});
          throw error;
        }
        const repo = await installStagedRepo(
          config.paths,
          project.projectId,
          staging,
        );
        await repairHead(repo, await listRefs(repo));
        recordProjectMeta(config, { ...project, scope, statement });
        log.info("catch-up pulled", {
          project: project.projectId,
          peer: holder.host,
          bytes: response.body.length,
          refs: changed,
        });
        return project.projectId;
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

/**
 * The delegations a holder's answer offers ({@link DELEGATIONS_HEADER}):
 * none when absent; anything unreadable is passed on for the verifier to
 * refuse.
 */
function offeredDelegations(header: string | null): unknown {
  if (!header) return [];
  if (header.length > MAX_CHAIN_HEADER_BYTES) return null;
  try {
    return decodeJsonBase64(header);
  } catch {
    return null;
  }
}

/** Retries of undelivered pushes under way, per agent (its peer index). */
const retrying = new WeakSet<PeerIndex>();

/**
 * One catch-up pass; returns the project pulled, if any. Its parts run side
 * by side, so a peer that never answers costs the pass one deadline, not
 * one per part: the announced cache, member adoption and the pull. Retries
 * of undelivered pushes run in the background, one batch at a time, so
 * their longer deadlines never hold the pass up.
 */
export async function catchUpOnce(
  config: AgentConfig,
  log: Logger,
  index: PeerIndex,
): Promise<string | null> {
  const backoff = peerBackoff(index, config.reactors.catchupSeconds * 1000);
  if (!retrying.has(index)) {
    retrying.add(index);
    retryPendingFanOut(config, log, index)
      .catch((error) =>
        log.warn("fan-out retry failed", { error: (error as Error).message })
      )
      .finally(() => retrying.delete(index));
  }
  const [, , pulled] = await Promise.all([
    refreshAnnouncedCache(config, index, backoff).catch((error) => {
      log.warn("announced cache not refreshed", {
        error: (error as Error).message,
      });
    }),
    adoptMemberships(config, log, index).catch((error) => {
      log.warn("member adoption failed", { error: (error as Error).message });
    }),
    pullMissing(config, log, index, backoff),
  ]);
  return pulled;
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
