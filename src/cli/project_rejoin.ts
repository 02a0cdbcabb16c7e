/**
 * `vigo swarm gitback project rejoin <project_id> [--invitation <file|->]`:
 * take up a fresh invitation for a project held here, after its founder
 * rotated their key.
 *
 * @module
 */

import { formatProjectUrl } from "../gitback/project_id.ts";
import { projectDir } from "../gitback/project.ts";
import { rejoinProject } from "../gitback/recovery.ts";
import { verifiedInvitationFrom } from "./project_join.ts";

const USAGE =
  "vigo swarm gitback project rejoin <project_id> [--invitation <file|->]";

/** Runs `vigo swarm gitback project rejoin`. */
export async function projectRejoin(args: string[]): Promise<number> {
  const { paths, me, invitation, verified } = await verifiedInvitationFrom(
    args,
    USAGE,
    "rejoin",
  );
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
