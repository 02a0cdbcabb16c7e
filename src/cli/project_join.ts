/**
 * `vigo swarm gitback project join <project_id> [--invitation <file|->]`:
 * take up a project from an invitation an admin made for this puddle.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { readPublicKey } from "../puddle/identity.ts";
import { formatProjectUrl } from "../gitback/project_id.ts";
import { projectDir } from "../gitback/project.ts";
import {
  acceptInvitation,
  checkInvitationFor,
  parseInvitation,
  readInvitationText,
  verifyInvitation,
} from "../gitback/invitation.ts";
import { parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";

const USAGE =
  "vigo swarm gitback project join <project_id> [--invitation <file|->]";

/**
 * What `join` and `rejoin` start from: the arguments `<project_id>
 * [--invitation <file|->]`, the invitation read and checked to be for that
 * project, and its chain verified for this user's key.
 */
export async function verifiedInvitationFrom(
  args: string[],
  usage: string,
  verb: string,
) {
  const { values, positionals } = parseVerbArgs(
    args,
    { invitation: { type: "string" } },
    usage,
    1,
  );
  const expected = positionals[0];
  if (!expected) {
    throw new UsageError(
      `${verb} needs the project id the invitation is for.`,
      `usage: ${usage}`,
    );
  }
  const paths = userPaths();
  const me = readPublicKey(paths.puddleDir);
  const invitation = parseInvitation(
    await readInvitationText((values.invitation as string | undefined) ?? "-"),
  );
  checkInvitationFor(invitation, expected);
  const verified = await verifyInvitation(invitation, me);
  return { paths, me, invitation, verified };
}

/** Runs `vigo swarm gitback project join`. */
export async function projectJoin(args: string[]): Promise<number> {
  const { paths, me, invitation, verified } = await verifiedInvitationFrom(
    args,
    USAGE,
    "join",
  );
  const { project, scopeSigned } = await acceptInvitation(
    paths.gitbackDir,
    invitation,
    verified,
    me,
  );
  if (!scopeSigned) {
    console.error(
      "warning: the invitation carries no scope statement signed by the founder; envoys treat the project as members-only.",
    );
  }
  const url = formatProjectUrl(project.project_id, project.handle);
  console.log(`✓ Joined project ${project.handle} as ${verified.role}`);
  console.log(`  URL:   ${url}`);
  console.log(
    `  State: ${projectDir(paths.gitbackDir, project.project_id)}/`,
  );
  console.log(`next: git clone ${url}`);
  return 0;
}
