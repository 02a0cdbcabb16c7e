/**
 * Invitations: what an admin hands a new member so that they can hold a
 * project. One carries the project's description, the member's token chain
 * (the admin's chain plus the child minted for the member) and the
 * founder's delegations the chain verifies through. `project invite`
 * builds one, `project join` parses, verifies and accepts one.
 *
 * @module
 */

import { formatPublicKey } from "../crypto/ed25519.ts";
import type { Signer } from "../crypto/signed_object.ts";
import { exists, readFileBounded } from "../platform/fs.ts";
import type { DelegationWire } from "./delegations.ts";
import { clearLeft } from "./left.ts";
import {
  type ProjectConfig,
  projectDir,
  ProjectError,
  recordIssued,
  type Scope,
  writeDelegations,
  writeProjectState,
} from "./project.ts";
import { checkScopeStatement } from "./scope_statement.ts";
import {
  decodeToken,
  mintChildToken,
  type Role,
  type VerifiedChain,
  verifyChain,
} from "./tokens.ts";

/** A project id as messages show it (16 hex and `…`), like the CLI's. */
const shortId = (id: string) => `${id.slice(0, 16)}…`;

/** The largest invitation read, from a file or standard input. */
export const MAX_INVITATION_BYTES = 256 * 1024;

/** An invitation, as `invite` prints it and `join` reads it. */
export interface Invitation {
  version: 1;
  project: {
    project_id: string;
    handle: string;
    founder: string;
    scope: Scope;
    /** The founder's signed scope (scope_statement.ts), when known. */
    scope_statement?: unknown;
    members: string[];
  };
  /** The invited member's chain, root first; its leaf names the member. */
  chain: unknown[];
  /** The founder's delegations the chain verifies through. */
  delegations: unknown[];
}

/**
 * The invitation carrying `chain` (already ending in the member's token)
 * for `project`, with the delegations it verifies through.
 */
export function buildInvitation(
  project: ProjectConfig,
  chain: readonly unknown[],
  delegations: readonly DelegationWire[],
): Invitation {
  return {
    version: 1,
    project: {
      project_id: project.project_id,
      handle: project.handle,
      founder: project.founder,
      scope: project.scope,
      scope_statement: project.scope_statement ?? null,
      members: project.members,
    },
    chain: [...chain],
    delegations: [...delegations],
  };
}

/** What an admin holds of a project: its state, their chain, the delegations. */
export interface HeldProject {
  project: ProjectConfig;
  chain: unknown[];
  delegations: DelegationWire[];
}

/** What an invitation grants its member. */
export interface InvitationGrant {
  /** The member's puddle key. */
  subject: Uint8Array;
  role: Role;
  /** Unix seconds, or null for a token that does not expire. */
  expires: number | null;
  /** Unix seconds the child token is issued at. */
  now: number;
}

/** An invitation just issued, with what the admin's state now records. */
export interface IssuedInvitation {
  invitation: Invitation;
  /** The id of the member's new token. */
  tokenId: string;
  /** The member's key, `ed25519:<hex>`. */
  member: string;
}

/**
 * Mints the member's token under `signer`'s admin chain and builds their
 * invitation. The admin's state records the member (project.json) and the
 * chain issued (issued.json, so that it can be revoked and sealed later).
 */
export async function issueInvitation(
  gitbackDir: string,
  signer: Signer,
  held: HeldProject,
  grant: InvitationGrant,
): Promise<IssuedInvitation> {
  const { project, chain, delegations } = held;
  const verified = await verifyChain(chain, {
    projectId: project.project_id,
    presenter: signer.publicKey,
    delegations,
  });
  if (verified.role !== "admin") {
    throw new ProjectError(
      `your token on ${project.handle} is a member token; only admins invite.`,
      "ask an admin of the project to invite this puddle.",
    );
  }
  const child = await mintChildToken(signer, verified.chain, grant);
  const invitation = buildInvitation(project, [...chain, child], delegations);
  const member = formatPublicKey(grant.subject);
  if (!project.members.includes(member)) {
    writeProjectState(gitbackDir, {
      ...project,
      members: [...project.members, member],
    });
  }
  recordIssued(gitbackDir, project.project_id, [...chain, child]);
  return { invitation, tokenId: decodeToken(child).id, member };
}

/**
 * The text of an invitation from the file `source`, or from standard input
 * when `source` is `-`; at most {@link MAX_INVITATION_BYTES}.
 */
export async function readInvitationText(source: string): Promise<string> {
  if (source === "-") {
    const bytes = new Uint8Array(
      await new Response(Deno.stdin.readable).arrayBuffer(),
    );
    if (bytes.length > MAX_INVITATION_BYTES) {
      throw new ProjectError(
        "the invitation on standard input is larger than 256 KiB.",
      );
    }
    return new TextDecoder().decode(bytes);
  }
  try {
    return new TextDecoder().decode(
      readFileBounded(source, MAX_INVITATION_BYTES),
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ProjectError(`invitation file ${source} does not exist.`);
    }
    throw new ProjectError((error as Error).message);
  }
}

/**
 * Parses an invitation: JSON naming a project id and carrying a chain.
 * Proves nothing yet; {@link verifyInvitation} does.
 */
export function parseInvitation(text: string): Invitation {
  let invitation: Invitation;
  try {
    invitation = JSON.parse(text);
  } catch {
    throw new ProjectError(
      "the invitation is not valid JSON; nothing was changed.",
      "paste the whole JSON block `invite` printed.",
    );
  }
  if (
    typeof invitation?.project?.project_id !== "string" ||
    !Array.isArray(invitation.chain)
  ) {
    throw new ProjectError(
      "the invitation has no project or chain; nothing was changed.",
    );
  }
  // An invitation without delegations is one from a founder who never rotated.
  if (!Array.isArray(invitation.delegations)) invitation.delegations = [];
  return invitation;
}

/**
 * Refuses an invitation for another project than `expected`: a project id,
 * or a prefix of the project's handle.
 */
export function checkInvitationFor(
  invitation: Invitation,
  expected: string,
): void {
  const { project_id: projectId, handle } = invitation.project;
  if (
    projectId !== expected &&
    !(typeof handle === "string" && handle.startsWith(expected))
  ) {
    throw new ProjectError(
      `this invitation is for project ${projectId}, not ${expected}; nothing was changed.`,
      "check that you pasted the right invitation.",
    );
  }
}

/**
 * Verifies the invitation's chain for its project, through its
 * delegations, with `presenter` (the key joining) as the leaf's subject.
 */
export async function verifyInvitation(
  invitation: Invitation,
  presenter: Uint8Array,
): Promise<VerifiedChain> {
  try {
    return await verifyChain(invitation.chain, {
      projectId: invitation.project.project_id,
      presenter,
      delegations: invitation.delegations,
    });
  } catch (error) {
    throw new ProjectError(
      `the invitation does not verify: ${
        (error as Error).message.replace(/\.$/, "")
      }; nothing was changed.`,
    );
  }
}

/** A project taken from an invitation. */
export interface AcceptedInvitation {
  /** The `project.json` written. */
  project: ProjectConfig;
  /**
   * Whether the invitation carried a scope statement the founder signed;
   * without one, every envoy treats the project as members-only.
   */
  scopeSigned: boolean;
}

/**
 * Writes the state of the project a verified invitation grants `presenter`:
 * `project.json`, `tokens.json` with the invitation's chain, and its
 * delegations. Refuses a project this user already holds here; undoes an
 * earlier leave or purge of it.
 */
export async function acceptInvitation(
  gitbackDir: string,
  invitation: Invitation,
  verified: VerifiedChain,
  presenter: Uint8Array,
): Promise<AcceptedInvitation> {
  const projectId = invitation.project.project_id;
  if (exists(`${projectDir(gitbackDir, projectId)}/project.json`)) {
    throw new ProjectError(
      `you already hold project ${verified.handle} (${
        shortId(projectId)
      }); nothing was changed.`,
      "`vigo swarm gitback project status` shows it.",
    );
  }
  const founder = formatPublicKey(verified.founder);
  const members = Array.isArray(invitation.project.members)
    ? invitation.project.members.map(String)
    : [founder];
  const mine = formatPublicKey(presenter);
  // The scope is only what the founder signed; without a statement that
  // verifies, every envoy treats the project as members-only.
  const statement = checkScopeStatement(
    invitation.project.scope_statement,
    projectId,
  );
  const project: ProjectConfig = {
    version: 1,
    project_id: projectId,
    handle: verified.handle,
    founder,
    scope: statement?.body.scope ?? "members-only",
    scope_statement: statement?.wire ?? null,
    members: members.includes(mine) ? members : [...members, mine],
    cross_subnet_members: [],
    created_at: new Date().toISOString(),
    tombstoned_at: null,
  };
  writeProjectState(gitbackDir, project, {
    version: 1,
    chain: invitation.chain,
  });
  writeDelegations(
    gitbackDir,
    projectId,
    invitation.delegations as DelegationWire[],
  );
  // Joining again undoes an earlier leave or purge on this envoy.
  await clearLeft(gitbackDir, projectId);
  return { project, scopeSigned: statement !== null };
}
