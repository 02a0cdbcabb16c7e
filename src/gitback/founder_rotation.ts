/**
 * What a puddle key rotation does to the projects the retiring key founds:
 * for each, a delegation to the new key sealing every token the old key
 * issued for it, the members list rewritten old → new, and `tokens.json`
 * rebuilt as [bootstrap, the new key's admin token].
 *
 * The changes are planned (and signed) once, on the envoy that rotates,
 * and travel as {@link FounderUpdates}: applied there, and on every other
 * member envoy of the puddle when it rekeys. Applying is idempotent, so a
 * crash half way is finished by applying again.
 *
 * @module
 */

import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import type { Signer } from "../crypto/signed_object.ts";
import {
  decodeDelegation,
  DELEGATION_MAX_LEN,
  DELEGATION_WARN_LEN,
  type DelegationWire,
  signDelegation,
} from "./delegations.ts";
import {
  listProjects,
  type ProjectConfig,
  ProjectError,
  readDelegations,
  readIssued,
  readProject,
  readTokens,
  writeDelegations,
  writeProjectState,
} from "./project.ts";
import {
  decodeToken,
  mintSuccessorToken,
  type SignedToken,
  verifyChain,
} from "./tokens.ts";
import { exists } from "../platform/fs.ts";
import {
  checkTombstone,
  decodeTombstone,
  queueTombstone,
  signTombstone,
  type TombstoneWire,
} from "./tombstone.ts";

/** One project's changes. */
export interface FounderUpdate {
  project_id: string;
  /** The whole delegation list, the new one last. */
  delegations: DelegationWire[];
  /** The new founder's chain: [bootstrap, successor admin token]. */
  chain: SignedToken[];
}

/** The changes of one rotation to the projects its key founded. */
export interface FounderUpdates {
  version: 1;
  retired: string;
  successor: string;
  projects: FounderUpdate[];
  /**
   * Tombstones (tombstone.ts) the retiring key signed, as the founder, for
   * projects at the delegation cap (`--force-orphan-projects`).
   */
  tombstoned: TombstoneWire[];
}

/** What planning found worth telling the user. */
export interface FounderPlan {
  updates: FounderUpdates;
  /** Handles of projects whose chain reached the warning length. */
  warned: { handle: string; length: number }[];
  /** Handles of projects tombstoned at the cap. */
  orphaned: string[];
}

/** The founder a project has now, by its delegations. */
export function currentFounderOf(
  chain: readonly unknown[],
  delegations: readonly unknown[],
): string {
  if (delegations.length > 0) {
    return decodeDelegation(delegations[delegations.length - 1]).body.to;
  }
  return decodeToken(chain[0]).body.issuer;
}

/** Ids of every token `key` issued that this user's files show. */
function issuedBy(
  gitbackDir: string,
  projectId: string,
  key: string,
): Set<string> {
  const chains = [
    readTokens(gitbackDir, projectId).chain,
    ...readIssued(gitbackDir, projectId),
  ];
  const ids = new Set<string>();
  for (const chain of chains) {
    for (const wire of chain) {
      try {
        const token = decodeToken(wire);
        if (token.body.issuer === key) ids.add(token.id);
      } catch {
        // Not a token; it proves nothing and is sealed by nothing.
      }
    }
  }
  return ids;
}

/**
 * Plans and signs the rotation of every project `oldKey` currently founds
 * here. A project already at {@link DELEGATION_MAX_LEN} delegations makes
 * the whole plan fail, unless `forceOrphan`, which tombstones it instead.
 */
export async function planFounderRotation(
  gitbackDir: string,
  oldKey: Signer,
  newKey: Signer,
  options: { forceOrphan?: boolean; now?: number } = {},
): Promise<FounderPlan> {
  const retired = formatPublicKey(oldKey.publicKey);
  const successor = formatPublicKey(newKey.publicKey);
  const plan: FounderPlan = {
    updates: { version: 1, retired, successor, projects: [], tombstoned: [] },
    warned: [],
    orphaned: [],
  };
  const atCap: string[] = [];
  for (const project of listProjects(gitbackDir)) {
    if (project.tombstoned_at) continue;
    const id = project.project_id;
    let chain: unknown[];
    let delegations: DelegationWire[];
    try {
      chain = readTokens(gitbackDir, id).chain;
      delegations = readDelegations(gitbackDir, id);
      if (currentFounderOf(chain, delegations) !== retired) continue;
    } catch {
      continue; // Damaged state: `project status` reports it.
    }
    if (delegations.length >= DELEGATION_MAX_LEN) {
      atCap.push(project.handle);
      if (options.forceOrphan) {
        // Signed while the retiring key is still the founder: the agent
        // honours it and spreads it like any tombstone.
        plan.updates.tombstoned.push(
          await signTombstone(oldKey, {
            projectId: id,
            handle: project.handle,
            genesis: decodeToken(chain[0]).body.issuer,
            successor: null,
            delegations,
            now: options.now,
          }),
        );
      }
      plan.orphaned.push(project.handle);
      continue;
    }
    const previous = delegations.length > 0
      ? decodeDelegation(delegations[delegations.length - 1]).id
      : null;
    // At the first rotation this includes the bootstrap token, which the
    // genesis key issued; later keys seal what they issued themselves.
    const sealed = issuedBy(gitbackDir, id, retired);
    const delegation = await signDelegation(oldKey, {
      projectId: id,
      position: delegations.length + 1,
      previous,
      to: newKey.publicKey,
      sealed,
      now: options.now,
    });
    const bootstrap = decodeToken(chain[0]).wire;
    const newChain = [
      bootstrap,
      await mintSuccessorToken(newKey, bootstrap, { now: options.now }),
    ];
    const all = [...delegations, delegation];
    await verifyChain(newChain, {
      projectId: id,
      presenter: newKey.publicKey,
      delegations: all,
      now: options.now,
    });
    plan.updates.projects.push({
      project_id: id,
      delegations: all,
      chain: newChain,
    });
    if (all.length >= DELEGATION_WARN_LEN) {
      plan.warned.push({ handle: project.handle, length: all.length });
    }
  }
  if (atCap.length > 0 && !options.forceOrphan) {
    throw new ProjectError(
      `${atCap.join(", ")} already ${
        atCap.length === 1 ? "has" : "have"
      } ${DELEGATION_MAX_LEN} founder delegations, the most a project may have; nothing was changed.`,
      "re-found those projects under a new id first, or rekey with `--force-orphan-projects`, which tombstones them.",
    );
  }
  return plan;
}

/**
 * The changes that bring another envoy up to the founder state here, for
 * a fresh rekey code or a copy for an air-gapped envoy: every project whose
 * current founder is `key` after at least one delegation.
 */
export function currentFounderUpdates(
  gitbackDir: string,
  key: Uint8Array,
  retired: string,
): FounderUpdates {
  const successor = formatPublicKey(key);
  const updates: FounderUpdates = {
    version: 1,
    retired,
    successor,
    projects: [],
    tombstoned: [],
  };
  for (const project of listProjects(gitbackDir)) {
    const id = project.project_id;
    try {
      const delegations = readDelegations(gitbackDir, id);
      const chain = readTokens(gitbackDir, id).chain as SignedToken[];
      if (
        !project.tombstoned_at && delegations.length > 0 &&
        currentFounderOf(chain, delegations) === successor
      ) {
        updates.projects.push({ project_id: id, delegations, chain });
      }
    } catch {
      // Damaged state is not handed on.
    }
  }
  return updates;
}

/** Checks the shape of updates read from a file or a peer. */
export function parseFounderUpdates(value: unknown): FounderUpdates {
  const v = value as Partial<FounderUpdates> | null;
  const key = /^ed25519:[0-9a-f]{64}$/;
  if (
    v?.version !== 1 || typeof v.retired !== "string" ||
    !key.test(v.retired) || typeof v.successor !== "string" ||
    !key.test(v.successor) || !Array.isArray(v.projects) ||
    !Array.isArray(v.tombstoned) ||
    v.projects.some((p) =>
      typeof p?.project_id !== "string" ||
      !/^[0-9a-f]{64}$/.test(p.project_id) || !Array.isArray(p.delegations) ||
      !Array.isArray(p.chain)
    ) ||
    v.tombstoned.some((wire) => {
      try {
        decodeTombstone(wire);
        return false;
      } catch {
        return true;
      }
    })
  ) {
    throw new ProjectError("the rotation's project changes are malformed.");
  }
  return v as FounderUpdates;
}

/** What {@link applyFounderUpdates} did. */
export interface AppliedUpdates {
  updated: string[];
  tombstoned: string[];
  /** Projects whose changes did not verify, with why; left as they were. */
  refused: { handle: string; reason: string }[];
}

/**
 * Applies rotation changes to the projects this user holds here: each
 * project's new chain must verify through its delegations for the new key,
 * and delegations already held here must be a prefix of the new list
 * (first seen wins). Projects not held here are skipped.
 */
export async function applyFounderUpdates(
  gitbackDir: string,
  value: unknown,
): Promise<AppliedUpdates> {
  const updates = parseFounderUpdates(value);
  const result: AppliedUpdates = { updated: [], tombstoned: [], refused: [] };
  const held = (id: string) =>
    exists(`${gitbackDir}/${id}/project.json`)
      ? readProject(gitbackDir, id)
      : null;
  for (const update of updates.projects) {
    const project = held(update.project_id);
    if (!project) continue;
    try {
      const mine = readDelegations(gitbackDir, project.project_id);
      const ids = update.delegations.map((d) => decodeDelegation(d).id);
      mine.forEach((d, i) => {
        if (decodeDelegation(d).id !== ids[i]) {
          throw new ProjectError(
            `it holds a different delegation at position ${
              i + 1
            } (first seen wins)`,
          );
        }
      });
      await verifyChain(update.chain, {
        projectId: project.project_id,
        presenter: parsePublicKey(updates.successor),
        delegations: update.delegations,
      });
      writeDelegations(gitbackDir, project.project_id, update.delegations);
      writeProjectState(
        gitbackDir,
        withMember(project, updates.retired, updates.successor),
        { version: 1, chain: update.chain },
      );
      result.updated.push(project.handle);
    } catch (error) {
      result.refused.push({
        handle: project.handle,
        reason: (error as Error).message.replace(/\.$/, ""),
      });
    }
  }
  for (const wire of updates.tombstoned) {
    const id = decodeTombstone(wire).body.project_id;
    const project = held(id);
    if (!project || project.tombstone) continue;
    const tombstone = checkTombstone(wire, {
      projectId: id,
      delegations: readDelegations(gitbackDir, id),
    });
    if (!tombstone) {
      result.refused.push({
        handle: project.handle,
        reason: "its tombstone is not signed by its founder",
      });
      continue;
    }
    writeProjectState(gitbackDir, {
      ...project,
      tombstone: tombstone.wire,
      tombstoned_at: new Date(tombstone.body.at * 1000).toISOString(),
    });
    queueTombstone(gitbackDir, id, tombstone.wire);
    result.tombstoned.push(project.handle);
  }
  return result;
}

function withMember(
  project: ProjectConfig,
  retired: string,
  successor: string,
): ProjectConfig {
  const members = project.members.map((m) => m === retired ? successor : m);
  return { ...project, members: [...new Set(members)] };
}
