/**
 * `vigo swarm gitback project revoke <project_id> --token-id <hex>`: sign
 * the revocation of a token this user holds or issued here, and queue it
 * for the agent's sweep.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { shortId } from "./format.ts";
import {
  readDelegations,
  readIssued,
  readTokens,
  resolveProject,
} from "../gitback/project.ts";
import { decodeToken } from "../gitback/tokens.ts";
import { mintRevocation } from "../gitback/envelopes.ts";
import { appendPending } from "../gitback/pending.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import { parseVerbArgs } from "./args.ts";
import { refuseTombstoned } from "./project_tombstone.ts";
import { CliError, UsageError } from "./errors.ts";

const USAGE =
  "vigo swarm gitback project revoke <project_id> --token-id <hex> [--reason <text>]";

/** Runs `vigo swarm gitback project revoke`. */
export async function projectRevoke(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    {
      "token-id": { type: "string" },
      reason: { type: "string" },
    },
    USAGE,
    1,
  );
  const tokenId = values["token-id"] as string | undefined;
  if (!positionals[0] || !tokenId) {
    throw new UsageError(
      "revoke needs a project and --token-id.",
      `usage: ${USAGE}`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(tokenId)) {
    throw new UsageError("--token-id must be 64 lowercase hex digits.");
  }
  const paths = userPaths();
  const project = resolveProject(paths.gitbackDir, positionals[0]);
  await refuseTombstoned(project, "nothing is revoked on it");
  // The chain to revoke: this user's own, or one they issued here.
  const candidates = [
    readTokens(paths.gitbackDir, project.project_id).chain,
    ...readIssued(paths.gitbackDir, project.project_id),
  ];
  const chain = candidates.find((c) =>
    decodeToken(c[c.length - 1]).id === tokenId
  );
  if (!chain) {
    throw new CliError(
      `this envoy has no record of token ${
        shortId(tokenId)
      } in ${project.handle}.`,
      "revoke from the envoy where it was issued; `vigo swarm gitback project status` lists tokens issued here.",
    );
  }
  const signer = await sessionSigner(paths.sessionSocket);
  let envelope: unknown;
  try {
    envelope = await mintRevocation(signer, {
      projectId: project.project_id,
      delegations: readDelegations(paths.gitbackDir, project.project_id),
      chain: chain as never,
      reason: (values.reason as string | undefined) ?? "",
    });
  } catch (error) {
    throw new CliError(
      `cannot revoke: ${(error as Error).message.replace(/\.$/, "")}.`,
    );
  } finally {
    signer.close();
  }
  const queue = appendPending(
    paths.gitbackDir,
    project.project_id,
    "revoke.pending",
    envelope,
  );
  console.log(
    `✓ Revocation of ${tokenId} signed; it waits in ${queue} for the agent's sweep.`,
  );
  return 0;
}
