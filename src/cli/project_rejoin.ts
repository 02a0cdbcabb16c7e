/**
 * `vigo swarm gitback project rejoin <project_id> [--invitation <file|->]`:
 * take up a fresh invitation for a project held here, after its founder
 * rotated their key.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { readPublicKey } from "../puddle/identity.ts";
import { formatProjectUrl } from "../gitback/project_id.ts";
import { projectDir } from "../gitback/project.ts";
import {
  checkInvitationFor,
  parseInvitation,
  readInvitationText,
  verifyInvitation,
} from "../gitback/invitation.ts";
import { rejoinProject } from "../gitback/recovery.ts";
import { parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";

const USAGE =
  "vigo swarm gitback project rejoin <project_id> [--invitation <file|->]";

/** Runs `vigo swarm gitback project rejoin`. */
export async function projectRejoin(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    { invitation: { type: "string" } },
    USAGE,
    1,
  );
  const expected = positionals[0];
  if (!expected) {
    throw new UsageError(
      "rejoin needs the project id the invitation is for.",
      `usage: ${USAGE}`,
    );
  }
  const paths = userPaths();
  const me = readPublicKey(paths.puddleDir);
  const invitation = parseInvitation(
    await readInvitationText((values.invitation as string | undefined) ?? "-"),
  );
  checkInvitationFor(invitation, expected);
  const verified = await verifyInvitation(invitation, me);
  const project = rejoinProject(paths.gitbackDir, invitation, verified, me);
  const hops = invitation.delegations.length;
  console.log(`✓ Re-joined project ${project.handle} (chain refreshed)`);
  console.log(
    `  URL:         ${formatProjectUrl(project.project_id, project.handle)}`,
  );
  console.log(`  Role:        ${verified.role}`);
  console.log(`  Members:     ${project.members.length}`);
  console.log(`  Scope:       ${project.scope}`);
  console.log(
    `  Delegations: ${hops} hop(s) (chain anchors to genesis founder ${project.founder})`,
  );
  console.log(
    `  State updated under ${
      projectDir(paths.gitbackDir, project.project_id)
    }/`,
  );
  return 0;
}
