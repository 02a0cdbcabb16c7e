/**
 * Root-side storage of verified envelopes, shared by the sweep (envelopes
 * users queue) and gossip (envelopes peers send).
 *
 * The store is bounded: per project and kind at most a fixed number of
 * envelopes, and per signer fewer still (see the `MAX_*` constants), so a
 * flood of valid envelopes from one key, or from many keys one admin
 * minted, fills a known amount of disk and no more. Envelopes past their
 * retention ({@link reapEnvelopes}) are removed and not taken back.
 *
 * "The founder" here is any key of the project's founder path: the genesis
 * key and each key a delegation handed the project to, retired or not. The
 * founder's budget exists so that admins filling the project's cap never
 * stop the founder revoking; what the founder revoked under a key since
 * retired was revoked with founder authority and stays on that budget, and
 * a retired key signs no new revocation that verifies (envelopes.ts), so it
 * cannot spend it.
 *
 * @module
 */

import { writeTextAtomic } from "../platform/fs.ts";
import type { SystemPaths } from "../platform/paths.ts";
import { decodeDelegation } from "../gitback/delegations.ts";
import type { ChainVerifier } from "../gitback/tokens.ts";
import {
  leaveRetainedUntil,
  revocationRetainedUntil,
  storedEnvelopeInfo,
  verifyLeave,
  verifyRevocation,
} from "../gitback/envelopes.ts";
import { envelopesDir } from "../gitback/repo.ts";
import type { AgentConfig } from "../envoy/config.ts";
import {
  storedDelegations,
  verifyChainWithDelegations,
} from "./delegation_store.ts";
import type { Logger } from "../platform/log.ts";

/** The two kinds of envelope. */
export type EnvelopeKind = "revokes" | "leaves";

/** LEAVEs kept per project. */
export const MAX_LEAVES_PER_PROJECT = 256;
/** LEAVEs kept per project from one subject. */
export const MAX_LEAVES_PER_SIGNER = 4;
/** REVOKEs kept per project from signers other than the founder. */
export const MAX_REVOKES_PER_PROJECT = 512;
/** REVOKEs kept per project from one signer other than the founder. */
export const MAX_REVOKES_PER_SIGNER = 64;
/**
 * REVOKEs kept per project from its founder, who has a budget of their own
 * so that admins filling the project's cap can never stop the founder from
 * revoking them.
 */
export const MAX_FOUNDER_REVOKES = 512;

/** An envelope that verified but is refused because a cap is reached. */
export class EnvelopeCapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeCapError";
  }
}

interface Entry {
  signer: string;
  founder: boolean;
}

/** Per directory: stored name → who signed it. Rebuilt from disk as needed. */
const indexes = new Map<string, Map<string, Entry>>();

/** Names (ids, without `.json`) of the envelopes stored in `dir`. */
function listNames(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && /^[0-9a-f]{64}\.json$/.test(e.name))
      .map((e) => e.name.slice(0, -5));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/**
 * The keys the recorded delegations handed `projectId` to; with the genesis
 * key (each envelope's chain root) they are its founder keys. The record is
 * root's own and was verified when written.
 */
function delegatedKeys(paths: SystemPaths, projectId: string): Set<string> {
  try {
    return new Set(
      storedDelegations(paths, projectId).map((d) =>
        decodeDelegation(d).body.to
      ),
    );
  } catch {
    return new Set();
  }
}

/** The directory's index, brought in line with what is on disk. */
function indexOf(
  dir: string,
  kind: EnvelopeKind,
  founderKeys: () => Set<string>,
): Map<string, Entry> {
  let index = indexes.get(dir);
  if (!index) {
    index = new Map();
    indexes.set(dir, index);
  }
  const names = new Set(listNames(dir));
  for (const name of index.keys()) {
    if (!names.has(name)) index.delete(name);
  }
  for (const name of names) {
    if (index.has(name)) continue;
    try {
      const info = storedEnvelopeInfo(
        JSON.parse(Deno.readTextFileSync(`${dir}/${name}.json`)),
        kind,
      );
      index.set(name, {
        signer: info.signer,
        founder: info.signer === info.founder ||
          founderKeys().has(info.signer),
      });
    } catch {
      // Unreadable or of an old format: counts against the project only,
      // until the next reap removes it.
      index.set(name, { signer: "", founder: false });
    }
  }
  return index;
}

function checkCaps(
  index: Map<string, Entry>,
  projectId: string,
  kind: EnvelopeKind,
  signer: string,
  founder: boolean,
): void {
  let project = 0;
  let mine = 0;
  for (const entry of index.values()) {
    if (entry.signer === signer) mine++;
    if (kind === "leaves" || !entry.founder) project++;
  }
  const what = kind === "leaves" ? "LEAVEs" : "REVOKEs";
  const signerCap = kind === "leaves"
    ? MAX_LEAVES_PER_SIGNER
    : founder
    ? MAX_FOUNDER_REVOKES
    : MAX_REVOKES_PER_SIGNER;
  if (mine >= signerCap) {
    throw new EnvelopeCapError(
      `project ${projectId} already holds ${mine} ${what} signed by ${signer}, the most this envoy keeps from one signer; older ones are reaped after their retention.`,
    );
  }
  const projectCap = kind === "leaves"
    ? MAX_LEAVES_PER_PROJECT
    : founder
    ? Infinity
    : MAX_REVOKES_PER_PROJECT;
  if (project >= projectCap) {
    throw new EnvelopeCapError(
      `project ${projectId} already holds ${project} ${what}${
        kind === "revokes" ? " not signed by its founder" : ""
      }, the most this envoy keeps; older ones are reaped after their retention.`,
    );
  }
}

/**
 * Stores a verified envelope under `name` (idempotent): only its `body` and
 * `sig` are kept. Returns false when it was already stored; throws an
 * {@link EnvelopeCapError} when `signer` or the project is at its cap.
 */
export function storeEnvelope(
  config: AgentConfig,
  projectId: string,
  kind: EnvelopeKind,
  name: string,
  envelope: unknown,
  signer: { key: string; founder: boolean } = { key: "", founder: false },
): boolean {
  const dir = envelopesDir(config.paths, projectId, kind);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = `${dir}/${name}.json`;
  let keys: Set<string> | undefined;
  const index = indexOf(
    dir,
    kind,
    () => keys ??= delegatedKeys(config.paths, projectId),
  );
  if (index.has(name)) return false;
  checkCaps(index, projectId, kind, signer.key, signer.founder);
  const { body, sig } = envelope as { body: string; sig: string };
  writeTextAtomic(path, JSON.stringify({ body, sig }) + "\n", 0o644);
  index.set(name, { signer: signer.key, founder: signer.founder });
  return true;
}

/**
 * Verifies an envelope of `kind` for `projectId` (signature, project, the
 * chain it carries, through the founder's delegations recorded here merged
 * with `options.delegations` offered with it, and for revocations the
 * signer's authority) and stores it. Returns true when it was new, false
 * when it was already stored or is past its retention; throws when it does
 * not verify (a TokenError) or a cap is reached (an
 * {@link EnvelopeCapError}).
 */
export async function acceptEnvelope(
  config: AgentConfig,
  projectId: string,
  kind: EnvelopeKind,
  envelope: unknown,
  now: number = Math.floor(Date.now() / 1000),
  options: { delegations?: unknown; log?: Logger } = {},
): Promise<boolean> {
  const verifyChain: ChainVerifier = (chain, verifyOptions) =>
    verifyChainWithDelegations(
      config.paths,
      chain,
      options.delegations,
      verifyOptions,
      options.log,
    );
  if (kind === "revokes") {
    const verified = await verifyRevocation(envelope, {
      projectId,
      verifyChain,
    });
    const until = revocationRetainedUntil(verified.tokenExpires);
    if (until !== null && until <= now) return false;
    return storeEnvelope(config, projectId, kind, verified.tokenId, envelope, {
      key: verified.signer,
      founder: verified.founderPath.isFounder(verified.signer),
    });
  }
  const verified = await verifyLeave(envelope, { projectId, verifyChain });
  const until = leaveRetainedUntil(verified.tokenExpires);
  if (until !== null && until <= now) return false;
  return storeEnvelope(config, projectId, kind, verified.id, envelope, {
    key: verified.subject,
    founder: verified.founderPath.isFounder(verified.subject),
  });
}

/**
 * Removes the envelopes of `projectId` whose retention has passed (see
 * `revocationRetainedUntil` and `leaveRetainedUntil`), and any stored file
 * that is not a current envelope (a format-1 LEAVE, a damaged file).
 * Returns how many were removed.
 */
export function reapEnvelopes(
  paths: SystemPaths,
  projectId: string,
  now: number = Math.floor(Date.now() / 1000),
): number {
  let removed = 0;
  for (const kind of ["revokes", "leaves"] as const) {
    const dir = envelopesDir(paths, projectId, kind);
    for (const name of listNames(dir)) {
      const path = `${dir}/${name}.json`;
      let keep: boolean;
      try {
        const info = storedEnvelopeInfo(
          JSON.parse(Deno.readTextFileSync(path)),
          kind,
        );
        keep = info.retainedUntil === null || info.retainedUntil > now;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue;
        keep = false;
      }
      if (keep) continue;
      try {
        Deno.removeSync(path);
        removed++;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      indexes.get(dir)?.delete(name);
    }
  }
  return removed;
}

/**
 * File names (`<id>.json`) of the envelopes of `kind` stored for
 * `projectId`, sorted.
 */
export function storedNames(
  paths: SystemPaths,
  projectId: string,
  kind: EnvelopeKind,
): string[] {
  return listNames(envelopesDir(paths, projectId, kind)).map((n) => `${n}.json`)
    .sort();
}

/** Counts of stored envelopes for `projectId`, by kind. */
export function storedCount(
  paths: SystemPaths,
  projectId: string,
): Record<EnvelopeKind, number> {
  return {
    revokes: listNames(envelopesDir(paths, projectId, "revokes")).length,
    leaves: listNames(envelopesDir(paths, projectId, "leaves")).length,
  };
}
