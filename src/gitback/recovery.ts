/**
 * Project recovery after a founder's key rotation or loss: fresh
 * invitations for every member from another puddle (`re-invite-all`), a
 * member taking one up in place (`rejoin`), and a project moved to a new id
 * by its current founder (`re-found`) or by a surviving member when the
 * founder is gone (`reanchor`).
 *
 * @module
 */

import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import type { Signer } from "../crypto/signed_object.ts";
import { exists } from "../platform/fs.ts";
import { DELEGATION_MAX_LEN, type DelegationWire } from "./delegations.ts";
import { currentFounderOf } from "./founder_rotation.ts";
import {
  type Invitation,
  type IssuedInvitation,
  issueInvitation,
} from "./invitation.ts";
import {
  listProjects,
  type ProjectConfig,
  projectDir,
  ProjectError,
  readDelegations,
  readIssued,
  readProject,
  readTokens,
  writeDelegations,
  writeProjectState,
} from "./project.ts";
import {
  formatProjectUrl,
  projectId as computeProjectId,
} from "./project_id.ts";
import { newProjectState } from "./new_project.ts";
import { checkScopeStatement } from "./scope_statement.ts";
import { queueTombstone, signTombstone } from "./tombstone.ts";
import { decodeToken, type Role, type VerifiedChain } from "./tokens.ts";
import { migrateRefs } from "./ref_migration.ts";

/** A project as this user holds it: state, chain and delegations. */
interface Held {
  project: ProjectConfig;
  chain: unknown[];
  delegations: DelegationWire[];
  /** The founder the delegations make current, `ed25519:<hex>`. */
  founder: string;
}

function held(gitbackDir: string, project: ProjectConfig): Held {
  const chain = readTokens(gitbackDir, project.project_id).chain;
  const delegations = readDelegations(gitbackDir, project.project_id);
  return {
    project,
    chain,
    delegations,
    founder: currentFounderOf(chain, delegations),
  };
}

/** What `re-invite-all` produced. */
export interface ReinviteResult {
  invitations: (IssuedInvitation & { handle: string })[];
  /** Founded projects with no member from another puddle. */
  singlePuddle: string[];
  /** Tombstoned projects, which take no new members. */
  tombstoned: string[];
}

/** The role `member` was last invited with here, else `member`. */
function lastRole(gitbackDir: string, projectId: string, member: string): Role {
  for (const chain of readIssued(gitbackDir, projectId).reverse()) {
    try {
      const leaf = decodeToken(chain[chain.length - 1]);
      if (leaf.body.subject === member) return leaf.body.role;
    } catch {
      // Not a chain: nothing to learn from it.
    }
  }
  return "member";
}

/**
 * A fresh invitation, under the founder's current chain and with the
 * project's delegations, for every member from another puddle of every
 * project `signer`'s key founds now (or only `only`). Projects whose only
 * member is the founder's own puddle, and tombstoned ones, are skipped.
 */
export async function reinviteAll(
  gitbackDir: string,
  signer: Signer,
  only?: ProjectConfig,
): Promise<ReinviteResult> {
  const me = formatPublicKey(signer.publicKey);
  const result: ReinviteResult = {
    invitations: [],
    singlePuddle: [],
    tombstoned: [],
  };
  const now = Math.floor(Date.now() / 1000);
  const projects = only ? [only] : listProjects(gitbackDir);
  let founded = 0;
  for (const project of projects) {
    const state = held(gitbackDir, project);
    if (state.founder !== me) continue;
    founded++;
    if (project.tombstoned_at) {
      result.tombstoned.push(project.handle);
      continue;
    }
    const others = project.members.filter((m) => m !== me);
    if (others.length === 0) {
      result.singlePuddle.push(project.handle);
      continue;
    }
    for (const member of others) {
      let subject: Uint8Array;
      try {
        subject = parsePublicKey(member);
      } catch {
        continue; // Not a key: nothing to invite.
      }
      // issueInvitation records what it issued; read the state afresh.
      const fresh = held(
        gitbackDir,
        readProject(gitbackDir, project.project_id),
      );
      const issued = await issueInvitation(gitbackDir, signer, fresh, {
        subject,
        role: lastRole(gitbackDir, project.project_id, member),
        expires: null,
        now,
      });
      result.invitations.push({ ...issued, handle: project.handle });
    }
  }
  if (founded === 0) {
    throw new ProjectError(
      only
        ? `you are not the current founder of ${only.handle}; only its founder re-invites.`
        : "you are not the current founder of any project here; nothing was issued.",
      "`vigo swarm gitback project status <project>` shows the founder now.",
    );
  }
  return result;
}

/**
 * Takes up a new invitation for a project this user already holds (after
 * its founder rotated): `tokens.json`, `delegations.json` (removed when the
 * invitation has none) and `project.json` are updated in place; pending
 * queues and the repository stay as they are.
 */
export function rejoinProject(
  gitbackDir: string,
  invitation: Invitation,
  verified: VerifiedChain,
  presenter: Uint8Array,
): ProjectConfig {
  const projectId = invitation.project.project_id;
  const dir = projectDir(gitbackDir, projectId);
  if (!exists(`${dir}/project.json`)) {
    throw new ProjectError(
      `you do not hold project ${verified.handle} here; nothing was changed.`,
      `\`vigo swarm gitback project join ${projectId} --invitation <file>\` takes up a first invitation.`,
    );
  }
  const current = readProject(gitbackDir, projectId);
  const mine = formatPublicKey(presenter);
  const members = Array.isArray(invitation.project.members)
    ? invitation.project.members.map(String)
    : current.members;
  const statement = checkScopeStatement(
    invitation.project.scope_statement,
    projectId,
  );
  const project: ProjectConfig = {
    ...current,
    members: members.includes(mine) ? members : [...members, mine],
    ...(statement
      ? { scope: statement.body.scope, scope_statement: statement.wire }
      : {}),
  };
  writeDelegations(
    gitbackDir,
    projectId,
    invitation.delegations as DelegationWire[],
  );
  writeProjectState(gitbackDir, project, {
    version: 1,
    chain: invitation.chain,
  });
  return project;
}

/** A project about to move to a new id, and the id. */
export interface MovePlan {
  old: ProjectConfig;
  oldDelegations: DelegationWire[];
  newId: string;
  /** Whether the caller is the old project's current founder. */
  founder: boolean;
}

/**
 * Checks a move of `project` to the id `signer`'s key makes with its
 * handle. `re-found` (`asFounder`) needs the caller to be the current
 * founder, a chain at the cap or a tombstone unless `force`, and a key
 * rotated since founding (else the ids collide); `reanchor` needs the
 * caller not to be the founder. Both need the new id free here.
 */
export async function planMove(
  gitbackDir: string,
  project: ProjectConfig,
  key: Uint8Array,
  options: { asFounder: boolean; force?: boolean },
): Promise<MovePlan> {
  const state = held(gitbackDir, project);
  const me = formatPublicKey(key);
  const founder = state.founder === me;
  const newId = await computeProjectId(key, project.handle);
  if (options.asFounder) {
    if (!founder) {
      throw new ProjectError(
        `only the current founder of ${project.handle} (${state.founder}) re-founds it; nothing was changed.`,
        "a member carries on without the founder with `vigo swarm gitback project reanchor`.",
      );
    }
    if (newId === project.project_id) {
      throw new ProjectError(
        `your key is the one ${project.handle} was founded with, so its new id would be the same; nothing was changed.`,
        "rotate the key first (`vigo swarm puddle rekey-pair`), then re-found.",
      );
    }
    const atCap = state.delegations.length >= DELEGATION_MAX_LEN;
    if (!atCap && !project.tombstoned_at && !options.force) {
      throw new ProjectError(
        `${project.handle} has ${state.delegations.length} of ${DELEGATION_MAX_LEN} founder delegations and is not tombstoned; nothing was changed.`,
        "re-found it anyway with --force.",
      );
    }
  } else if (founder) {
    throw new ProjectError(
      `you are the founder of ${project.handle}; reanchor is for members carrying on without the founder. Nothing was changed.`,
      "the founder moves a project with `vigo swarm gitback project re-found`.",
    );
  }
  if (exists(`${projectDir(gitbackDir, newId)}/project.json`)) {
    throw new ProjectError(
      `project ${newId} (${project.handle} founded by your key) already exists here; nothing was changed.`,
      "`vigo swarm gitback project status` shows it.",
    );
  }
  return {
    old: project,
    oldDelegations: state.delegations,
    newId,
    founder,
  };
}

/** What a move did. */
export interface MoveResult {
  project: ProjectConfig;
  refs: string[];
  tombstoned: boolean;
}

/**
 * Founds the new project under `signer`'s key (same handle and scope),
 * copies every ref into it through git (ref_migration.ts), and, for a
 * re-found, tombstones the old project naming the new one as its
 * successor: the tombstone is queued for the agent, which spreads it.
 */
export async function moveProject(
  gitbackDir: string,
  signer: Signer,
  plan: MovePlan,
  env?: Record<string, string>,
): Promise<MoveResult> {
  const { project, tokens } = await newProjectState(signer, {
    handle: plan.old.handle,
    scope: plan.old.scope,
  });
  writeProjectState(gitbackDir, project, tokens);
  let refs: string[];
  try {
    ({ refs } = await migrateRefs(
      formatProjectUrl(plan.old.project_id, plan.old.handle),
      formatProjectUrl(project.project_id, project.handle),
      gitbackDir,
      env,
    ));
  } catch (error) {
    // Nothing reached the agent: the new state goes, so a retry starts
    // afresh, and the old project is untouched.
    Deno.removeSync(projectDir(gitbackDir, project.project_id), {
      recursive: true,
    });
    throw error;
  }
  if (!plan.founder) return { project, refs, tombstoned: false };
  const chain = readTokens(gitbackDir, plan.old.project_id).chain;
  const tombstone = await signTombstone(signer, {
    projectId: plan.old.project_id,
    handle: plan.old.handle,
    genesis: decodeToken(chain[0]).body.issuer,
    successor: project.project_id,
    delegations: plan.oldDelegations,
  });
  queueTombstone(gitbackDir, plan.old.project_id, tombstone);
  writeProjectState(gitbackDir, {
    ...plan.old,
    tombstone,
    tombstoned_at: new Date().toISOString(),
  });
  return { project, refs, tombstoned: true };
}
