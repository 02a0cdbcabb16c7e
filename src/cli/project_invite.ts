/**
 * `vigo swarm gitback project invite <project_id> --puddle <fp> --role …`:
 * mint a token for another puddle and print the invitation they join with.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { parsePublicKey } from "../crypto/ed25519.ts";
import {
  readDelegations,
  readTokens,
  resolveProject,
} from "../gitback/project.ts";
import { issueInvitation } from "../gitback/invitation.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import { parseVerbArgs } from "./args.ts";
import { refuseTombstoned } from "./project_tombstone.ts";
import { UsageError } from "./errors.ts";

const USAGE =
  "vigo swarm gitback project invite <project_id> --puddle <fp> --role admin|member [--expires <Nd>]";

/** `--expires <N>d` as Unix seconds from `now`; null without the flag. */
function parseExpiry(value: string | undefined, now: number): number | null {
  if (value === undefined) return null;
  const match = /^(\d{1,5})d?$/.exec(value.trim());
  if (!match || Number(match[1]) === 0) {
    throw new UsageError(
      `--expires takes a number of days like 30d, not ${
        JSON.stringify(value)
      }.`,
    );
  }
  return now + Number(match[1]) * 86_400;
}

/** Runs `vigo swarm gitback project invite`. */
export async function projectInvite(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    {
      puddle: { type: "string" },
      // The seed's name for --puddle, still accepted.
      fleet: { type: "string" },
      role: { type: "string" },
      expires: { type: "string" },
    },
    USAGE,
    1,
  );
  const fp = (values.puddle ?? values.fleet) as string | undefined;
  if (!positionals[0] || !fp || !values.role) {
    throw new UsageError(
      "invite needs a project, --puddle and --role.",
      `usage: ${USAGE}`,
    );
  }
  const role = values.role as string;
  if (role !== "admin" && role !== "member") {
    throw new UsageError(
      `--role must be admin or member, not ${JSON.stringify(role)}.`,
    );
  }
  let subject: Uint8Array;
  try {
    subject = parsePublicKey(fp);
  } catch {
    throw new UsageError(
      `--puddle must be ed25519:<64 hex> or 64 hex, as \`vigo swarm puddle pubkey\` prints.`,
    );
  }
  const now = Math.floor(Date.now() / 1000);
  const expires = parseExpiry(values.expires as string | undefined, now);
  const paths = userPaths();
  const project = resolveProject(paths.gitbackDir, positionals[0]);
  await refuseTombstoned(project, "it takes no new members");
  const { chain } = readTokens(paths.gitbackDir, project.project_id);
  const delegations = readDelegations(paths.gitbackDir, project.project_id);
  const signer = await sessionSigner(paths.sessionSocket);
  try {
    const { invitation, tokenId, member } = await issueInvitation(
      paths.gitbackDir,
      signer,
      { project, chain, delegations },
      { subject, role, expires, now },
    );
    console.log(JSON.stringify(invitation, null, 2));
    console.error(
      `Invitation for ${member} as ${role} on ${project.handle} (token ${tokenId}).`,
    );
    console.error(
      "Send the JSON above to the recipient by any channel; they run:",
    );
    console.error(
      `  vigo swarm gitback project join ${project.project_id} --invitation <file>`,
    );
    return 0;
  } finally {
    signer.close();
  }
}
