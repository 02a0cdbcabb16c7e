/**
 * `POST /swarm/gitback/push/<project_id>`: a peer delivers a bundle after a
 * push. Everything the headers can tell (project id, gitback enabled, the
 * `X-Vigo-Chain` header verifying for the project in the URL, membership
 * for members-only projects, the peer's share of concurrent deliveries) is
 * checked before any of the body is read; the body then streams into a
 * private spool file under a per-request cap and a quota shared by every
 * delivery, and is ingested with git's fsck. Ingests of one project run one
 * at a time; a first bundle builds the repository, with its recorded handle
 * and scope, in a staging directory installed only once it is complete.
 *
 * @module
 */

import { decodeJsonBase64, encodeJsonBase64 } from "../platform/encoding.ts";
import { exists } from "../platform/fs.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { managedHomes } from "../envoy/user_homes.ts";
import { readUserProject } from "./user_state.ts";
import { bindingStatementOf, boundKeyOf } from "./puddle_bindings.ts";
import {
  type ChainVerifier,
  type VerifiedChain,
  verifyChain,
} from "../gitback/tokens.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import {
  BundleError,
  ingestBundleFile,
  MissingPrerequisites,
} from "../gitback/bundle.ts";
import {
  bareRepoPath,
  createStagingRepo,
  ingestTempDir,
  installStagedRepo,
  listRefs,
  repairHead,
  writeRepoMeta,
} from "../gitback/repo.ts";
import { type AgentConfig, gitbackEnabledHere } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import {
  HttpError,
  SpoolQuota,
  type SwarmRoute,
} from "../swarm/swarm_server.ts";
import {
  CHAIN_HEADER,
  DELEGATIONS_HEADER,
  encodeStatesHeader,
  MAX_CHAIN_HEADER_BYTES,
  MAX_STATES_HEADER_BYTES,
  MAX_STATES_PER_DELIVERY,
  REFS_HEADER,
  SCOPE_HEADER,
  scopeHeaderOf,
} from "./fanout.ts";
import {
  readRefStates,
  type VerifiedRefState,
  verifyRefState,
} from "../gitback/ref_state.ts";
import {
  type ApplyOutcome,
  applyRefStates,
  RefStateIncomplete,
  RefStateRefused,
} from "../gitback/ref_apply.ts";
import { withProjectLock } from "./project_lock.ts";
import { MEMBER_HEADER, requireMemberBinding } from "./member_proof.ts";
import { readProjectMeta, recordProjectMeta } from "./announce.ts";
import {
  checkScopeStatement,
  decodeScopeHeader,
  DEFAULT_SCOPE,
  type Scope,
  type ScopeStatementWire,
} from "../gitback/scope_statement.ts";
import { createBundle } from "../gitback/bundle.ts";
import { readPushChain } from "../gitback/delegations.ts";
import {
  delegationsToSend,
  storedDelegations,
  verifyChainWithDelegations,
} from "./delegation_store.ts";
import { isTombstoned, tombstoneRefusal } from "./tombstone_store.ts";

/** Largest bundle a peer may deliver. */
export const MAX_BUNDLE_BYTES = 1024 * 1024 * 1024;

/** Bytes that deliveries being received may hold on disk at once. */
export const INGEST_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;

/** Deliveries one peer (certificate subject) may have in progress at once. */
export const MAX_DELIVERIES_PER_PEER = 2;

/** Limits of the push route; tests make them small. */
export interface PushRouteLimits {
  /** Largest body ({@link MAX_BUNDLE_BYTES}). */
  maxBundleBytes?: number;
  /** Bytes spooled at once across deliveries ({@link INGEST_QUOTA_BYTES}). */
  quotaBytes?: number;
  /** Concurrent deliveries per peer ({@link MAX_DELIVERIES_PER_PEER}). */
  perPeer?: number;
}

/**
 * The chain a request presents for `projectId` and its subject's binding to
 * the requesting envoy (member_proof.ts): a chain proves nothing without
 * it. Throws an {@link HttpError} (401/403) when either does not hold.
 */
export async function verifyMemberRequest(
  config: AgentConfig,
  ctx: {
    headers: Record<string, string | undefined>;
    peer: { subject: string };
  },
  projectId: string,
  log?: Logger,
  options: ChainHeaderOptions = {},
): Promise<VerifiedChain> {
  const verified = await verifyChainHeader(
    config,
    ctx.headers[CHAIN_HEADER],
    projectId,
    log,
    options,
  );
  requireMemberBinding(
    ctx.headers[MEMBER_HEADER],
    verified.leaf.body.subject,
    ctx.peer.subject,
  );
  return verified;
}

/** The `:project` of a route's path; 400 unless it is 64 hex digits. */
export function projectParam(params: Record<string, string>): string {
  const projectId = params.project;
  if (!/^[0-9a-f]{64}$/.test(projectId ?? "")) {
    throw new HttpError(400, "the project id must be 64 hex digits.");
  }
  return projectId;
}

/** Options of {@link verifyChainHeader}. */
export interface ChainHeaderOptions {
  /**
   * Verify the chain of a tombstoned project too (its envelopes and its
   * tombstone still travel); by default a tombstoned project is refused
   * with the sentence naming its successor.
   */
  allowTombstoned?: boolean;
}

/**
 * Parses and verifies the chain header for `projectId`: `{chain,
 * delegations}` (or a bare chain), the delegations merged with those
 * recorded here (delegation_store.ts). A project this envoy holds a
 * tombstone of is refused (403) before the chain is looked at, unless
 * `options.allowTombstoned`.
 */
export async function verifyChainHeader(
  config: AgentConfig,
  header: string | undefined,
  projectId: string,
  log?: Logger,
  options: ChainHeaderOptions = {},
): Promise<VerifiedChain> {
  if (!options.allowTombstoned) {
    const refusal = tombstoneRefusal(config.paths, projectId);
    if (refusal) throw new HttpError(403, refusal);
  }
  if (!header || header.length > MAX_CHAIN_HEADER_BYTES) {
    throw new HttpError(
      401,
      `the ${CHAIN_HEADER} header is missing or too large.`,
    );
  }
  let value: unknown;
  try {
    value = decodeJsonBase64(header);
  } catch {
    throw new HttpError(400, `the ${CHAIN_HEADER} header is not base64 JSON.`);
  }
  const { chain, delegations } = readPushChain(value);
  try {
    return await verifyChainWithDelegations(
      config.paths,
      chain,
      delegations,
      {
        projectId,
        revoked: revokedTokenIds(config.paths, projectId),
      },
      log,
    );
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
 * the current founder (a retired founder key is no member), or presents a
 * chain of their own that verifies for the project.
 */
export async function hasLocalMember(
  config: AgentConfig,
  projectId: string,
  verified: VerifiedChain,
): Promise<boolean> {
  const subjects = new Set([
    verified.leaf.body.subject,
    formatPublicKey(verified.currentFounder),
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
        delegations: storedDelegations(config.paths, projectId),
      });
      return true;
    } catch {
      // Not a member by this chain.
    }
  }
  return false;
}

/**
 * Parses and verifies the signed ref states of {@link REFS_HEADER} for
 * `projectId`: at most {@link MAX_STATES_PER_DELIVERY}, each signed by its
 * signer under a chain that verifies for the project with the delegations
 * recorded here, merged with `offered` ones when an answer brought some.
 */
export async function verifyStatesHeader(
  config: AgentConfig,
  header: string | undefined,
  projectId: string,
  offered?: unknown,
  log?: Logger,
): Promise<VerifiedRefState[]> {
  if (
    !header ||
    header.length > MAX_STATES_HEADER_BYTES
  ) {
    throw new HttpError(
      401,
      `the ${REFS_HEADER} header (signed ref states) is missing or too large.`,
    );
  }
  let wires: unknown;
  try {
    wires = decodeJsonBase64(header);
  } catch {
    throw new HttpError(400, `the ${REFS_HEADER} header is not base64 JSON.`);
  }
  if (
    !Array.isArray(wires) || wires.length === 0 ||
    wires.length > MAX_STATES_PER_DELIVERY
  ) {
    throw new HttpError(
      400,
      `the ${REFS_HEADER} header must list 1 to ${MAX_STATES_PER_DELIVERY} signed ref states.`,
    );
  }
  const revoked = revokedTokenIds(config.paths, projectId);
  const tombstoned = isTombstoned(config.paths, projectId);
  const verify: ChainVerifier = (chain, options) =>
    verifyChainWithDelegations(config.paths, chain, offered, options, log);
  const states: VerifiedRefState[] = [];
  for (const wire of wires) {
    try {
      states.push(
        await verifyRefState(wire, {
          projectId,
          revoked,
          tombstoned,
          verifyChain: verify,
        }),
      );
    } catch (error) {
      throw new HttpError(
        403,
        `a signed ref state does not verify: ${(error as Error).message}`,
      );
    }
  }
  return states;
}

/**
 * The scope a delivery of `projectId` is judged by, with the statement it
 * comes from: the founder's statement recorded here when there is one
 * (the first verified here stays), else the one in the {@link SCOPE_HEADER}
 * value `header`, once it verifies for the project. With neither, the
 * project is members-only: a plain `swarm-wide`, a statement signed by
 * anyone but the founder, or none at all proves nothing.
 */
export function deliveredScope(
  config: AgentConfig,
  projectId: string,
  header: string | null | undefined,
): { scope: Scope; statement: ScopeStatementWire | null } {
  const recorded = readProjectMeta(config, projectId);
  if (recorded.statement) {
    return { scope: recorded.scope, statement: recorded.statement };
  }
  const delivered = checkScopeStatement(decodeScopeHeader(header), projectId);
  return delivered
    ? { scope: delivered.body.scope, statement: delivered.wire }
    : { scope: DEFAULT_SCOPE, statement: null };
}

/** The receive side of push fan-out. */
export function pushRoute(
  config: AgentConfig,
  log: Logger,
  limits: PushRouteLimits = {},
): SwarmRoute {
  const spool = {
    dir: ingestTempDir(config.paths),
    quota: new SpoolQuota(limits.quotaBytes ?? INGEST_QUOTA_BYTES),
  };
  const perPeer = limits.perPeer ?? MAX_DELIVERIES_PER_PEER;
  const active = new Map<string, number>();
  return {
    method: "POST",
    pattern: "/swarm/gitback/push/:project",
    maxBodyBytes: limits.maxBundleBytes ?? MAX_BUNDLE_BYTES,
    // Headers first: nothing of the body is read until they pass.
    streamBody: true,
    // A full bundle of up to 1 GiB, checked by index-pack: as long as the
    // sender waits (fan-out allows 120 s).
    timeoutMs: 120_000,
    handler: async (ctx) => {
      const projectId = projectParam(ctx.params);
      if (!gitbackEnabledHere(config)) {
        throw new HttpError(
          403,
          `gitback is not enabled on ${config.hostname}.`,
        );
      }
      const verified = await verifyMemberRequest(config, ctx, projectId, log);
      const states = await verifyStatesHeader(
        config,
        ctx.headers[REFS_HEADER],
        projectId,
        undefined,
        log,
      );
      const { scope, statement } = deliveredScope(
        config,
        projectId,
        ctx.headers[SCOPE_HEADER],
      );
      if (
        scope === "members-only" &&
        !(await hasLocalMember(config, projectId, verified))
      ) {
        throw new HttpError(
          403,
          statement
            ? `${projectId} is members-only and no puddle on ${config.hostname} is a member.`
            : `${projectId} has no scope statement signed by its founder, so it is members-only, and no puddle on ${config.hostname} is a member.`,
        );
      }
      const peer = ctx.peer.subject;
      const running = active.get(peer) ?? 0;
      if (running >= perPeer) {
        throw new HttpError(
          429,
          `${peer} already has ${running} deliveries in progress on ${config.hostname}; send this one after them.`,
        );
      }
      active.set(peer, running + 1);
      try {
        const body = await ctx.spoolBody(spool);
        const meta = { handle: verified.handle, scope, statement };
        // One writer per project at a time (pushes, deliveries, catch-up).
        const outcome = await withProjectLock(
          projectId,
          () =>
            ingestDelivery(
              config,
              projectId,
              body.bytes > 0 ? body.path : null,
              states,
              meta,
            ),
        );
        log.info("delivery applied", {
          project: projectId,
          peer,
          bytes: body.bytes,
          refs_changed: outcome.changed,
          seq: outcome.current?.body.seq,
          lost: outcome.lost.length > 0 ? outcome.lost.join(" ") : undefined,
        });
        return {
          status: 200,
          json: { accepted: true, refs_changed: outcome.changed },
        };
      } catch (error) {
        if (error instanceof HttpError) throw error;
        if (
          error instanceof MissingPrerequisites ||
          error instanceof RefStateIncomplete
        ) {
          throw new HttpError(409, error.message);
        }
        if (error instanceof RefStateRefused) {
          log.warn("ref state refused", {
            project: projectId,
            peer,
            error: error.message,
          });
          throw new HttpError(403, error.message);
        }
        if (error instanceof BundleError) {
          // The peer learns what was wrong; only the log has local detail.
          log.warn("bundle refused", {
            project: projectId,
            peer,
            error: error.detail ?? error.message,
          });
          throw new HttpError(400, error.message);
        }
        log.error("bundle ingest failed", {
          project: projectId,
          peer,
          error: (error as Error).message,
        });
        throw new HttpError(500, "internal error while storing the bundle.");
      } finally {
        const left = (active.get(peer) ?? 1) - 1;
        if (left > 0) active.set(peer, left);
        else active.delete(peer);
      }
    },
  };
}

/**
 * Ingests a spooled bundle. Into an existing repository directly (git
 * writes objects before it moves refs); otherwise into a staging
 * repository that gets the project's handle and the founder's scope
 * statement (verified by the caller) recorded inside it before it is
 * installed, so no crash leaves a repository whose scope is unknown, and a
 * refused first bundle leaves no repository at all.
 */
export async function ingestDelivery(
  config: AgentConfig,
  projectId: string,
  file: string | null,
  states: VerifiedRefState[],
  meta: {
    handle: string;
    scope: Scope;
    statement: ScopeStatementWire | null;
  },
): Promise<ApplyOutcome> {
  const repo = bareRepoPath(config.paths, projectId);
  if (exists(repo)) {
    if (file) await ingestBundleFile(repo, file, { objectsOnly: true });
    const outcome = await applyRefStates(repo, states);
    await repairHead(repo, await listRefs(repo));
    recordProjectMeta(config, { projectId, ...meta });
    return outcome;
  }
  const staging = await createStagingRepo(config.paths, projectId);
  try {
    writeRepoMeta(staging, {
      handle: meta.handle,
      scope: meta.scope,
      scope_statement: meta.statement,
    });
    if (file) await ingestBundleFile(staging, file, { objectsOnly: true });
    const outcome = await applyRefStates(staging, states);
    await repairHead(staging, await listRefs(staging));
    // A rename, unless a first push made the repository meanwhile.
    const installed = await installStagedRepo(config.paths, projectId, staging);
    recordProjectMeta(config, { projectId, ...meta });
    await repairHead(installed, await listRefs(installed));
    return outcome;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/** Most members one answer of the members route lists. */
export const MAX_MEMBERS_LISTED = 16;

/**
 * `GET /swarm/gitback/members/<project_id>`: the local members of a
 * project, each as `{chain, binding}` (their chain and their binding to
 * this envoy), with the founder's `delegations` recorded here, so a sender
 * can tell, before it sends anything of a members-only project, that a
 * member lives here. The asker presents a chain and its member's binding
 * to the asking envoy, as for a push.
 */
export function membersRoute(config: AgentConfig, log?: Logger): SwarmRoute {
  return {
    method: "GET",
    pattern: "/swarm/gitback/members/:project",
    maxBodyBytes: 0,
    handler: async (ctx) => {
      const projectId = projectParam(ctx.params);
      await verifyMemberRequest(config, ctx, projectId, log);
      const revoked = revokedTokenIds(config.paths, projectId);
      const delegations = storedDelegations(config.paths, projectId);
      const members: { chain: unknown[]; binding: unknown }[] = [];
      for (const managed of managedHomes(config)) {
        if (members.length >= MAX_MEMBERS_LISTED) break;
        const bound = bindingStatementOf(config.paths, managed.uid);
        if (!bound) continue;
        const chain = readUserProject(managed, projectId, { chain: true })
          ?.chain;
        if (!chain) continue;
        try {
          await verifyChain(chain, {
            projectId,
            presenter: parsePublicKey(bound.pubkey),
            revoked,
            delegations,
          });
          members.push({ chain, binding: bound.statement });
        } catch {
          // Not a member by this chain.
        }
      }
      return { status: 200, json: { members, delegations } };
    },
  };
}

/**
 * `GET /swarm/gitback/bundle/<project_id>`: a full bundle of a held project,
 * for DR catch-up. The caller presents a chain for the project, exactly as
 * a push does; the answer carries the delegations recorded here, with which
 * its signed ref states verify.
 */
export function bundleRoute(config: AgentConfig, log?: Logger): SwarmRoute {
  return {
    method: "GET",
    pattern: "/swarm/gitback/bundle/:project",
    maxBodyBytes: 0,
    handler: async (ctx) => {
      const projectId = projectParam(ctx.params);
      await verifyMemberRequest(config, ctx, projectId, log);
      const repo = bareRepoPath(config.paths, projectId);
      if (!exists(repo)) {
        throw new HttpError(
          404,
          `${config.hostname} holds no bare repository for ${projectId}.`,
        );
      }
      const current = readRefStates(repo).current;
      const bundle = current
        ? await createBundle(repo, ingestTempDir(config.paths))
        : null;
      const scopeHeader = scopeHeaderOf(config, projectId);
      const delegations = delegationsToSend(config.paths, projectId);
      if (!bundle || !current) {
        throw new HttpError(
          404,
          `the repository of ${projectId} has no signed refs yet.`,
        );
      }
      return {
        status: 200,
        body: bundle.bytes,
        headers: {
          // The founder's statement recorded here, which the fetching
          // envoy verifies; without it, the project is members-only there.
          ...(scopeHeader ? { [SCOPE_HEADER]: scopeHeader } : {}),
          // The refs the bundle's objects are for, as their pusher signed them.
          [REFS_HEADER]: encodeStatesHeader([current]),
          ...(delegations.length > 0
            ? { [DELEGATIONS_HEADER]: encodeJsonBase64(delegations) }
            : {}),
        },
      };
    },
  };
}
