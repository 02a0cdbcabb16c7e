/**
 * `vigo swarm gitback project re-invite-all [<project_id>]`: after a key
 * rotation, a fresh invitation for every member from another puddle of
 * every project the caller founds now.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { resolveProject } from "../gitback/project.ts";
import { reinviteAll } from "../gitback/recovery.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import { parseVerbArgs } from "./args.ts";

const USAGE = "vigo swarm gitback project re-invite-all [<project_id>]";

/** Runs `vigo swarm gitback project re-invite-all`. */
export async function projectReinviteAll(args: string[]): Promise<number> {
  const { positionals } = parseVerbArgs(args, {}, USAGE, 1);
  const paths = userPaths();
  const only = positionals[0]
    ? resolveProject(paths.gitbackDir, positionals[0])
    : undefined;
  const signer = await sessionSigner(paths.sessionSocket);
  let result;
  try {
    result = await reinviteAll(paths.gitbackDir, signer, only);
  } finally {
    signer.close();
  }
  // JSON blocks on stdout, one per recipient; everything else on stderr,
  // so that the blocks can be split into files by their header lines.
  for (const issued of result.invitations) {
    console.error(
      `─── re-invite for project '${issued.handle}' → ${issued.member} ───`,
    );
    console.log(JSON.stringify(issued.invitation, null, 2));
  }
  console.error(
    `✓ ${result.invitations.length} re-invite invitation(s) printed across founded multi-puddle project(s).`,
  );
  if (result.singlePuddle.length > 0) {
    console.error(
      `Skipped ${result.singlePuddle.length} single-puddle project(s) (no cross-puddle members): ${
        result.singlePuddle.join(", ")
      }`,
    );
  }
  if (result.tombstoned.length > 0) {
    console.error(
      `Skipped ${result.tombstoned.length} tombstoned project(s): ${
        result.tombstoned.join(", ")
      }`,
    );
  }
  if (result.invitations.length > 0) {
    console.error(
      "Communicate each JSON block out-of-band to the matching member puddle,",
    );
    console.error("then have them run:");
    console.error(
      "  vigo swarm gitback project rejoin <project_id> --invitation -",
    );
  }
  return 0;
}
