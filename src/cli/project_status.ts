/**
 * `vigo swarm gitback project status <project_id>`: one project as this
 * user holds it (chain, issued tokens, founder delegations, queued
 * envelopes) and, when the agent answers, as this envoy holds it.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { formatProjectUrl } from "../gitback/project_id.ts";
import {
  projectDir,
  readDelegations,
  readIssued,
  readTokens,
  resolveProject,
} from "../gitback/project.ts";
import { decodeToken, verifyChain } from "../gitback/tokens.ts";
import {
  decodeDelegation,
  DELEGATION_MAX_LEN,
  DELEGATION_WARN_LEN,
  type DelegationWire,
} from "../gitback/delegations.ts";
import { pendingQueues } from "../gitback/pending.ts";
import { askAgentStatus } from "../gitback/envoy_status.ts";
import { decodeTombstone } from "../gitback/tombstone.ts";
import { parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";

const USAGE = "vigo swarm gitback project status <project_id>";

/** Runs `vigo swarm gitback project status`. */
export async function projectStatus(args: string[]): Promise<number> {
  const { positionals } = parseVerbArgs(args, {}, USAGE, 1);
  if (!positionals[0]) {
    throw new UsageError("status needs a project.", `usage: ${USAGE}`);
  }
  const paths = userPaths();
  const project = resolveProject(paths.gitbackDir, positionals[0]);
  const dir = projectDir(paths.gitbackDir, project.project_id);
  console.log(`project ${project.handle}`);
  console.log(
    `  URL:         ${formatProjectUrl(project.project_id, project.handle)}`,
  );
  console.log(`  project_id:  ${project.project_id}`);
  console.log(`  founder:     ${project.founder}`);
  console.log(
    `  scope:       ${project.scope}${
      project.scope_statement
        ? " (signed by the founder)"
        : " (no statement signed by the founder: envoys treat it as members-only)"
    }`,
  );
  console.log(
    `  fan-out:     LAN announcements${
      project.cross_subnet_members.length
        ? ` + ${project.cross_subnet_members.join(", ")}`
        : ""
    }`,
  );
  console.log(`  members:     ${project.members.length}`);
  for (const member of project.members) console.log(`               ${member}`);
  let delegations: DelegationWire[] = [];
  try {
    delegations = readDelegations(paths.gitbackDir, project.project_id);
  } catch (error) {
    console.log(`  delegations: unreadable (${(error as Error).message})`);
  }
  try {
    const { chain } = readTokens(paths.gitbackDir, project.project_id);
    const verified = await verifyChain(chain, {
      projectId: project.project_id,
      delegations,
    });
    const leaf = verified.leaf.body;
    console.log(`  chain depth: ${chain.length}`);
    console.log(`  leaf:        ${verified.role}, subject ${leaf.subject}`);
    console.log(`  token id:    ${verified.leaf.id}`);
    console.log(
      `  issued:      ${new Date(leaf.not_before * 1000).toISOString()}`,
    );
    console.log(
      `  expires:     ${
        leaf.expires === null
          ? "never"
          : new Date(leaf.expires * 1000).toISOString()
      }`,
    );
  } catch (error) {
    console.log(`  tokens:      unusable (${(error as Error).message})`);
  }
  const issued = readIssued(paths.gitbackDir, project.project_id);
  if (issued.length > 0) {
    console.log(`  issued:      ${issued.length} token(s)`);
    for (const chain of issued) {
      const token = decodeToken(chain[chain.length - 1]);
      console.log(
        `               ${token.id}  ${token.body.role}  ${token.body.subject}`,
      );
    }
  }
  printDelegations(project.founder, delegations);
  const here = (await askAgentStatus(
    `${systemPaths().varRun}/gitback.sock`,
  ))?.projects.find((p) => p.project_id === project.project_id);
  // Tombstoned by the founder's signed statement, held here or by the agent.
  const successor = project.tombstone
    ? decodeTombstone(project.tombstone).body.successor
    : here?.successor ?? null;
  if (project.tombstone || here?.tombstoned) {
    console.log(
      `  TOMBSTONED:  ${
        project.tombstoned_at ? `since ${project.tombstoned_at}; ` : ""
      }${
        successor
          ? `re-founded as ${
            formatProjectUrl(successor, project.handle)
          }; drop this one`
          : "its founder re-founds it with `vigo swarm gitback project re-found`, or drop it"
      } with \`vigo swarm gitback project leave ${project.project_id}\``,
    );
  }
  if (here?.conflicted) {
    console.log(
      "  CONFLICTED:  this envoy was shown a second, validly signed delegation where it holds one; it keeps the first (see the agent's WARN lines)",
    );
  }
  if (here?.bare_repo) {
    console.log(
      `  envoy refs:  ${here.refs}${
        here.signed_seq === null ? "" : `, signed state ${here.signed_seq}`
      }`,
    );
    const lost = Object.entries(here.lost ?? {});
    if (lost.length > 0) {
      console.log(
        `  lost tips:   ${lost.length} (lost a conflict with another push; kept, not dropped)`,
      );
      for (const [ref, tip] of lost) {
        console.log(`               ${tip}  ${ref}`);
      }
    }
  }
  console.log(`  state:       ${dir}/`);
  const pending = pendingQueues(paths.gitbackDir, project.project_id);
  console.log(`  pending:     ${pending.length ? pending.join(", ") : "none"}`);
  return 0;
}

/** The founder delegations of a project, as `status` shows them. */
function printDelegations(
  genesis: string,
  delegations: readonly DelegationWire[],
): void {
  let current = genesis;
  try {
    current = delegations.length > 0
      ? decodeDelegation(delegations[delegations.length - 1]).body.to
      : genesis;
  } catch {
    // The chain line above already says the delegations do not verify.
  }
  console.log(
    `  delegations: ${delegations.length} hop(s) (chain anchors to genesis founder ${genesis})`,
  );
  console.log(`  founder now: ${current}`);
  if (delegations.length >= DELEGATION_MAX_LEN) {
    console.log(
      `  AT CAP:      ${DELEGATION_MAX_LEN} of ${DELEGATION_MAX_LEN} delegations; the founder cannot rotate again without re-founding the project`,
    );
  } else if (delegations.length >= DELEGATION_WARN_LEN) {
    console.log(
      `  warning:     ${delegations.length} of ${DELEGATION_MAX_LEN} delegations; plan a re-found before the cap`,
    );
  }
}
