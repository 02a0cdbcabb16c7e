/**
 * The envoy's record of each project's founder delegations
 * (gitback/delegations.ts): `<gitback base>/delegations/<project_id>.json`,
 * 0600 in a 0700 directory, written atomically:
 * `{"version":1,"delegations":[<wire>…],"conflicts":[{"position","kept","offered","at"}…]}`.
 *
 * A chain verified without the delegations that exist still passes for a
 * deposed founder key, so every root-side verifier goes through
 * {@link verifyChainWithDelegations} (chains from peers or users, with the
 * delegations they offer; {@link verifyWithDelegations} for other signed
 * things, such as tombstones) or passes {@link storedDelegations} (what is
 * read here, nothing offered). First seen wins: an offer may extend the record,
 * once a chain verified with the extended list; an offer that differs at a
 * recorded position never replaces it, and, when it is validly signed
 * itself (the founder signed two different rotations), the conflict is
 * recorded for status and logged.
 *
 * @module
 */

import { parsePublicKey } from "../crypto/ed25519.ts";
import {
  ensurePrivateDir,
  exists,
  readFileBounded,
  writeTextAtomic,
} from "../platform/fs.ts";
import type { SystemPaths } from "../platform/paths.ts";
import {
  decodeDelegation,
  DELEGATION_MAX_LEN,
  DelegationError,
  type DelegationWire,
  type MergedDelegations,
  mergeDelegations,
  verifyDelegations,
} from "../gitback/delegations.ts";
import { projectId as computeProjectId } from "../gitback/project_id.ts";
import { gitbackBase } from "../gitback/repo.ts";
import {
  decodeToken,
  TokenError,
  type VerifiedChain,
  verifyChain,
  type VerifyOptions,
} from "../gitback/tokens.ts";
import type { Logger } from "../platform/log.ts";

/** Conflicts kept per project, newest last. */
export const MAX_CONFLICTS = 16;
/** Largest record read: five delegations of the largest size and room to spare. */
export const MAX_RECORD_BYTES = 256 * 1024;

/** An offer that differed from the recorded delegation at `position`. */
export interface DelegationConflict {
  position: number;
  /** Id of the delegation recorded (and kept) there. */
  kept: string;
  /** Id of the validly signed delegation offered there instead. */
  offered: string;
  /** When it was first offered, ISO 8601. */
  at: string;
}

/** The record of one project. */
export interface DelegationRecord {
  version: 1;
  delegations: DelegationWire[];
  conflicts: DelegationConflict[];
}

const PROJECT_ID = /^[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

function recordDir(paths: SystemPaths): string {
  return `${gitbackBase(paths)}/delegations`;
}

/** The record's path; the id is checked before any path is built. */
export function delegationRecordPath(
  paths: SystemPaths,
  projectId: string,
): string {
  if (typeof projectId !== "string" || !PROJECT_ID.test(projectId)) {
    throw new TokenError("malformed", "a project id must be 64 hex digits.");
  }
  return `${recordDir(paths)}/${projectId}.json`;
}

function isConflict(value: unknown): value is DelegationConflict {
  const c = value as Partial<DelegationConflict> | null;
  return typeof c === "object" && c !== null &&
    Number.isSafeInteger(c.position) && (c.position as number) >= 1 &&
    (c.position as number) <= DELEGATION_MAX_LEN &&
    typeof c.kept === "string" && HEX64.test(c.kept) &&
    typeof c.offered === "string" && HEX64.test(c.offered) &&
    typeof c.at === "string";
}

/**
 * Reads a record: empty when there is none. A damaged one fails closed
 * (verifying without the delegations would let a deposed key back in).
 */
function readRecord(path: string): DelegationRecord {
  if (!exists(path)) return { version: 1, delegations: [], conflicts: [] };
  const damaged = (why: string): never => {
    throw new TokenError(
      "bad-delegation",
      `${path} is not a delegation record this agent wrote (${why}); move it aside, and the agent learns the delegations again from the next peer or push that carries them.`,
    );
  };
  let value: Partial<DelegationRecord>;
  try {
    value = JSON.parse(
      new TextDecoder().decode(readFileBounded(path, MAX_RECORD_BYTES)),
    );
  } catch (error) {
    return damaged((error as Error).message);
  }
  if (
    typeof value !== "object" || value === null || value.version !== 1 ||
    !Array.isArray(value.delegations) ||
    value.delegations.length > DELEGATION_MAX_LEN
  ) {
    return damaged("no version 1 list of delegations");
  }
  try {
    value.delegations.forEach(decodeDelegation);
  } catch (error) {
    return damaged((error as Error).message);
  }
  return {
    version: 1,
    delegations: value.delegations,
    conflicts: Array.isArray(value.conflicts)
      ? value.conflicts.filter(isConflict).slice(-MAX_CONFLICTS)
      : [],
  };
}

function writeRecord(
  paths: SystemPaths,
  path: string,
  record: DelegationRecord,
): void {
  Deno.mkdirSync(gitbackBase(paths), { recursive: true, mode: 0o755 });
  ensurePrivateDir(recordDir(paths));
  writeTextAtomic(path, JSON.stringify(record, null, 2) + "\n", 0o600);
}

/**
 * The delegations recorded for `projectId`, first rotation first; none
 * when its founder never rotated (as far as this envoy knows). Throws a
 * {@link TokenError} when the record is damaged.
 */
export function storedDelegations(
  paths: SystemPaths,
  projectId: string,
): DelegationWire[] {
  return readRecord(delegationRecordPath(paths, projectId)).delegations;
}

/**
 * The delegations to send a peer with a chain of `projectId`: the recorded
 * ones, or none when the record cannot be read (the peer then goes by its
 * own record; only verifying must fail closed).
 */
export function delegationsToSend(
  paths: SystemPaths,
  projectId: string,
): DelegationWire[] {
  try {
    return storedDelegations(paths, projectId);
  } catch {
    return [];
  }
}

/** The conflicts recorded for `projectId`, oldest first. */
export function delegationConflicts(
  paths: SystemPaths,
  projectId: string,
): DelegationConflict[] {
  return readRecord(delegationRecordPath(paths, projectId)).conflicts;
}

/** Record writes of one project (by path) wait for each other. */
const tails = new Map<string, Promise<unknown>>();

async function serialized<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = tails.get(key) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(work);
  tails.set(key, run);
  try {
    return await run;
  } finally {
    if (tails.get(key) === run) tails.delete(key);
  }
}

function merge(
  stored: readonly DelegationWire[],
  offered: readonly unknown[],
): MergedDelegations {
  try {
    return mergeDelegations(stored, offered);
  } catch (error) {
    if (!(error instanceof DelegationError)) throw error;
    throw new TokenError("bad-delegation", error.message);
  }
}

/**
 * The genesis founder key of `chain`'s root token when, with its handle,
 * it makes `projectId`; null otherwise.
 */
async function genesisOfChain(
  chain: unknown,
  projectId: string,
): Promise<string | null> {
  try {
    const root = decodeToken((chain as unknown[])[0]).body;
    const genesis = parsePublicKey(root.issuer);
    return await computeProjectId(genesis, root.handle) === projectId
      ? root.issuer
      : null;
  } catch {
    return null;
  }
}

/**
 * True when `offered` is a delegation list that verifies on its own from
 * `genesis`, the project's genesis founder: only then is a difference a
 * conflict and not garbage.
 */
function validlySigned(
  offered: readonly unknown[],
  genesis: string | null,
  projectId: string,
): boolean {
  if (genesis === null) return false;
  try {
    verifyDelegations(offered, { projectId, genesis });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `verify` with the delegations recorded for `projectId` merged with
 * those `offered` (first seen wins; see the module doc), for anything
 * signed under a project's founder delegations: a token chain
 * ({@link verifyChainWithDelegations}) or a statement such as a tombstone.
 * An offer that extends the record is recorded once `verify` passed with
 * it; an offer that differs at a recorded position is recorded as a
 * conflict when it verifies on its own from `genesis()` (the project's
 * genesis founder key, or null when the signed thing names none that makes
 * the project id), and `verify` runs with the record. A malformed or
 * oversized offer is a {@link TokenError}; `verify`'s own errors pass
 * through. A refused offer changes nothing in the record.
 */
export async function verifyWithDelegations<T>(
  paths: SystemPaths,
  projectId: string,
  offered: unknown,
  genesis: () => Promise<string | null>,
  verify: (delegations: readonly DelegationWire[]) => Promise<T>,
  log?: Logger,
): Promise<T> {
  const path = delegationRecordPath(paths, projectId);
  if (offered === undefined) offered = [];
  if (!Array.isArray(offered) || offered.length > DELEGATION_MAX_LEN) {
    throw new TokenError(
      "bad-delegation",
      `delegations must be a list of at most ${DELEGATION_MAX_LEN}, first rotation first.`,
    );
  }
  const stored = readRecord(path).delegations;
  const first = merge(stored, offered);
  if (!first.conflict && !first.extended) return await verify(stored);
  // The record may change: one reader-writer per project at a time, and
  // the merge done again on what is recorded now.
  return await serialized(path, async () => {
    const record = readRecord(path);
    const merged = merge(record.delegations, offered as unknown[]);
    if (merged.conflict) {
      const { position, kept, offered: offeredId } = merged.conflict;
      const known = record.conflicts.some((c) =>
        c.position === position && c.kept === kept && c.offered === offeredId
      );
      if (
        !known &&
        validlySigned(offered as unknown[], await genesis(), projectId)
      ) {
        record.conflicts = [
          ...record.conflicts,
          { position, kept, offered: offeredId, at: new Date().toISOString() },
        ].slice(-MAX_CONFLICTS);
        writeRecord(paths, path, record);
        log?.warn("delegation conflict", {
          project: projectId,
          position,
          kept,
          offered: offeredId,
        });
      }
      return await verify(record.delegations);
    }
    const verified = await verify(merged.delegations);
    if (merged.extended) {
      writeRecord(paths, path, { ...record, delegations: merged.delegations });
      log?.info("delegations learned", {
        project: projectId,
        delegations: merged.delegations.length,
      });
    }
    return verified;
  });
}

/**
 * Verifies `chain` with the delegations recorded for `options.projectId`
 * merged with those `offered` (first seen wins; see the module doc).
 * Anything refused is a {@link TokenError}; a refused or malformed offer
 * changes nothing in the record.
 */
export async function verifyChainWithDelegations(
  paths: SystemPaths,
  chain: unknown,
  offered: unknown,
  options: VerifyOptions,
  log?: Logger,
): Promise<VerifiedChain> {
  return await verifyWithDelegations(
    paths,
    options.projectId,
    offered,
    () => genesisOfChain(chain, options.projectId),
    (delegations) => verifyChain(chain, { ...options, delegations }),
    log,
  );
}

/** What status shows of a project's delegations here. */
export interface DelegationSummary {
  /** How many delegations are recorded. */
  delegations: number;
  /** The last delegation's new founder key; null when none is recorded. */
  current_founder: string | null;
  /** True when the record holds conflicts. */
  conflicted: boolean;
}

/** The summary of `projectId`'s record; null when it cannot be read. */
export function delegationSummary(
  paths: SystemPaths,
  projectId: string,
): DelegationSummary | null {
  try {
    const record = readRecord(delegationRecordPath(paths, projectId));
    const last = record.delegations[record.delegations.length - 1];
    return {
      delegations: record.delegations.length,
      current_founder: last ? decodeDelegation(last).body.to : null,
      conflicted: record.conflicts.length > 0,
    };
  } catch {
    return null;
  }
}
