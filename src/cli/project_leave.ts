/**
 * `vigo swarm gitback project leave <project_id> [--purge] [--yes]`: sign a
 * LEAVE for this user's token, queue it for the agent's sweep, and drop the
 * project's local state.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { exists, removeIfExists } from "../platform/fs.ts";
import { shortId } from "./format.ts";
import {
  projectDir,
  readDelegations,
  readTokens,
  resolveProject,
} from "../gitback/project.ts";
import { decodeToken } from "../gitback/tokens.ts";
import { mintLeave } from "../gitback/envelopes.ts";
import { recordLeft } from "../gitback/left.ts";
import { appendPending } from "../gitback/pending.ts";
import { bareRepoPath } from "../gitback/repo.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

const USAGE = "vigo swarm gitback project leave <project_id> [--purge] [--yes]";

/** Asks `question` on the terminal unless `yes`; throws unless confirmed. */
function confirm(question: string, yes: boolean): void {
  if (yes) return;
  if (!Deno.stdin.isTerminal()) {
    throw new CliError(
      `${question} needs confirmation.`,
      "add --yes to confirm without a terminal.",
    );
  }
  const answer = prompt(`${question} [y/N]`);
  if (!answer || !/^y(es)?$/i.test(answer.trim())) {
    throw new CliError("cancelled; nothing was changed.");
  }
}

/** Runs `vigo swarm gitback project leave`. */
export async function projectLeave(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    {
      purge: { type: "boolean" },
      yes: { type: "boolean" },
    },
    USAGE,
    1,
  );
  if (!positionals[0]) {
    throw new UsageError("leave needs a project.", `usage: ${USAGE}`);
  }
  if (values.purge && Deno.uid() !== 0) {
    throw new CliError(
      "--purge removes the root-owned bare repository and needs root.",
      "run it with sudo, or leave without --purge.",
    );
  }
  const paths = userPaths();
  const project = resolveProject(paths.gitbackDir, positionals[0]);
  const { chain } = readTokens(paths.gitbackDir, project.project_id);
  const leaf = decodeToken(chain[chain.length - 1]);
  // A LEAVE revokes the leaver's token everywhere; the founder's is the
  // root of every member's chain.
  const founding = leaf.body.parent === null;
  const short = shortId(project.project_id);
  confirm(
    founding
      ? `You founded ${project.handle}: leaving revokes its root token, and with it every member's chain, on every envoy. Leave project ${project.handle} (${short})?`
      : `Leave project ${project.handle} (${short})?`,
    values.yes === true,
  );
  const signer = await sessionSigner(paths.sessionSocket);
  let envelope: unknown;
  try {
    envelope = await mintLeave(signer, {
      projectId: project.project_id,
      chain,
      tokenId: leaf.id,
      delegations: readDelegations(paths.gitbackDir, project.project_id),
    });
  } finally {
    signer.close();
  }
  const dir = projectDir(paths.gitbackDir, project.project_id);
  // Recorded before anything is removed: no adoption (unlock, the agent's)
  // brings the project back here, whether or not the agent swept the
  // LEAVE yet, until the user joins again.
  await recordLeft(paths.gitbackDir, [project.project_id]);
  const queue = appendPending(
    paths.gitbackDir,
    project.project_id,
    "leave.pending",
    envelope,
  );
  for (const name of ["project.json", "tokens.json", "issued.json"]) {
    removeIfExists(`${dir}/${name}`);
  }
  console.log(
    `✓ Left project ${project.handle}; the signed LEAVE waits in ${queue} for the agent's sweep.`,
  );
  console.log(
    `  Every envoy refuses token ${leaf.id} once the LEAVE reaches it, and this envoy adopts ${project.handle} again only after you join it again.`,
  );
  if (founding) {
    console.log(
      `  It was the project's root token: every member's chain of ${project.handle} stops verifying with it.`,
    );
  }
  if (values.purge) {
    const repo = bareRepoPath(systemPaths(), project.project_id);
    if (exists(repo)) {
      Deno.removeSync(repo, { recursive: true });
      console.log(`  removed ${repo}`);
    }
  }
  return 0;
}
