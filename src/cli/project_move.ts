/**
 * What `re-found` and `reanchor` share: check, confirm by handle, found
 * the new project, migrate every ref, and print what became of both ids.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { readPublicKey } from "../puddle/identity.ts";
import { formatProjectUrl } from "../gitback/project_id.ts";
import { resolveProject } from "../gitback/project.ts";
import { moveProject, planMove } from "../gitback/recovery.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import { confirmHandle } from "./confirm_handle.ts";

/** Moves the project `arg` to a new id under the caller's key. */
export async function moveVerb(
  arg: string,
  options: { asFounder: boolean; force?: boolean; confirm?: string },
): Promise<number> {
  const paths = userPaths();
  const project = resolveProject(paths.gitbackDir, arg);
  const plan = await planMove(
    paths.gitbackDir,
    project,
    readPublicKey(paths.puddleDir),
    options,
  );
  const oldUrl = formatProjectUrl(project.project_id, project.handle);
  const newUrl = formatProjectUrl(plan.newId, project.handle);
  confirmHandle(project.handle, [
    `${options.asFounder ? "re-found" : "reanchor"} ${project.handle}:`,
    `  - a new project ${newUrl} founded by your key, with every ref of the old one`,
    options.asFounder
      ? `  - ${oldUrl} is tombstoned on every envoy: git there is refused and points to the new URL`
      : `  - ${oldUrl} is left as it is; drop it with \`vigo swarm gitback project leave\` once the new one is healthy`,
    "  - members are not carried over: invite them to the new project",
    "  - every clone must point its remote at the new URL (`vigo swarm gitback project push` re-points `swarm`)",
  ], options.confirm);
  const signer = await sessionSigner(paths.sessionSocket);
  let result;
  try {
    result = await moveProject(paths.gitbackDir, signer, plan);
  } finally {
    signer.close();
  }
  console.log(
    `✓ ${
      options.asFounder ? "Re-founded" : "Re-anchored"
    } ${project.handle} as ${result.project.project_id}`,
  );
  console.log(`  URL:      ${newUrl}`);
  console.log(`  refs:     ${result.refs.length} migrated`);
  console.log(
    result.tombstoned
      ? `  old:      ${oldUrl} tombstoned (the agent spreads it to every envoy)`
      : `  old:      ${oldUrl} left in place`,
  );
  console.log(
    `next: invite the members to the new project (\`vigo swarm gitback project invite ${project.handle}…\`)`,
  );
  return 0;
}
