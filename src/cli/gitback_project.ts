/**
 * `vigo swarm gitback project …`: founding, inviting, joining, listing,
 * leaving and revoking, all on the calling user's state.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import {
  exists,
  readFileBounded,
  removeIfExists,
  writeTextAtomic,
} from "../platform/fs.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { readPublicKey } from "../puddle/identity.ts";
import {
  formatProjectUrl,
  projectId as computeProjectId,
  validateHandle,
} from "../gitback/project_id.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  verifyChain,
} from "../gitback/tokens.ts";
import { mintLeave, mintRevocation } from "../gitback/envelopes.ts";
import {
  listProjects,
  projectDir,
  readDelegations,
  readIssued,
  readTokens,
  recordIssued,
  resolveProject,
  type Scope,
  writeDelegations,
  writeProjectState,
} from "../gitback/project.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import {
  decodeDelegation,
  DELEGATION_MAX_LEN,
  DELEGATION_WARN_LEN,
  type DelegationWire,
} from "../gitback/delegations.ts";
import {
  checkScopeStatement,
  signScopeStatement,
} from "../gitback/scope_statement.ts";
import { clearLeft, recordLeft } from "../gitback/left.ts";
import { bareRepoPath, git } from "../gitback/repo.ts";
import { askAgentStatus } from "../gitback/envoy_status.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

const PROJECT_USAGE = `vigo swarm gitback project <verb>

verbs:
  init <handle> [--scope swarm-wide|members-only] [--repo <path>] [--no-push]
  push [<handle>] [--repo <path>]
  invite <project_id> --puddle <fp> --role admin|member [--expires <Nd>]
  join <project_id> [--invitation <file|->]
  leave <project_id> [--purge] [--yes]
  list [--json]
  status <project_id>
  revoke <project_id> --token-id <hex> [--reason <text>]

<project_id> is the 64-hex id or a unique handle prefix of a local project.`;

const SHORT = (id: string) => `${id.slice(0, 16)}…`;

/** An invitation, as `invite` prints it and `join` reads it. */
interface Invitation {
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
  chain: unknown[];
  delegations: unknown[];
}

function agentSocket(): string {
  return `${systemPaths().varRun}/gitback.sock`;
}

async function gitOk(args: string[], cwd: string): Promise<string | null> {
  try {
    return (await git(args, cwd)).trim();
  } catch {
    return null;
  }
}

/** Pushes `--all` and `--tags` to the `swarm` remote, showing git's output. */
async function pushToSwarm(repo: string): Promise<void> {
  for (const which of ["--all", "--tags"]) {
    const out = await new Deno.Command("git", {
      args: ["-C", repo, "push", "swarm", which],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!out.success) {
      throw new CliError(
        `git push swarm ${which} failed (see git's message above).`,
        "fix the cause and run `vigo swarm gitback project push` to retry.",
      );
    }
  }
}

/**
 * Makes the `swarm` remote of `repo` point at `url`: added when missing,
 * re-pointed when `repoint`, otherwise left alone. Returns what it did.
 */
async function ensureSwarmRemote(
  repo: string,
  url: string,
  repoint: boolean,
): Promise<"added" | "kept" | "repointed" | "elsewhere"> {
  const current = await gitOk(["-C", repo, "remote", "get-url", "swarm"], repo);
  if (current === null) {
    await git(["-C", repo, "remote", "add", "swarm", url]);
    return "added";
  }
  if (current === url) return "kept";
  if (!repoint) return "elsewhere";
  await git(["-C", repo, "remote", "set-url", "swarm", url]);
  return "repointed";
}

async function init(args: string[]): Promise<number> {
  const usage =
    "vigo swarm gitback project init <handle> [--scope swarm-wide|members-only] [--repo <path>] [--no-push]";
  const { values, positionals } = parseVerbArgs(
    args,
    {
      scope: { type: "string" },
      repo: { type: "string" },
      "no-push": { type: "boolean" },
    },
    usage,
    1,
  );
  const handle = positionals[0];
  if (!handle) throw new UsageError("init needs a handle.", `usage: ${usage}`);
  try {
    validateHandle(handle);
  } catch (error) {
    throw new UsageError(
      (error as Error).message,
      "use 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot.",
    );
  }
  const scope = (values.scope ?? "swarm-wide") as string;
  if (scope !== "swarm-wide" && scope !== "members-only") {
    throw new UsageError(
      `--scope must be swarm-wide or members-only, not ${
        JSON.stringify(scope)
      }.`,
    );
  }
  const paths = userPaths();
  const signer = await sessionSigner(paths.sessionSocket);
  let id: string;
  try {
    id = await computeProjectId(signer.publicKey, handle);
    if (exists(`${projectDir(paths.gitbackDir, id)}/project.json`)) {
      throw new CliError(
        `you already founded ${handle} (project ${
          SHORT(id)
        }); nothing was changed.`,
        "`vigo swarm gitback project push` publishes it again.",
      );
    }
    const token = await mintBootstrapToken(signer, handle);
    // The scope every envoy goes by: the founder's signed word, nothing else.
    const statement = await signScopeStatement(signer, {
      projectId: id,
      handle,
      scope,
    });
    const founder = formatPublicKey(signer.publicKey);
    writeProjectState(paths.gitbackDir, {
      version: 1,
      project_id: id,
      handle,
      founder,
      scope,
      scope_statement: statement,
      members: [founder],
      cross_subnet_members: [],
      created_at: new Date().toISOString(),
      tombstoned_at: null,
    }, { version: 1, chain: [token] });
    // Founding it again here undoes an earlier leave or purge.
    await clearLeft(paths.gitbackDir, id);
    const url = formatProjectUrl(id, handle);
    console.log(`✓ Founded project ${handle}`);
    console.log(`  URL:     ${url}`);
    console.log(`  Founder: ${founder}`);
    console.log(`  Scope:   ${scope}`);
    console.log(`  State:   ${projectDir(paths.gitbackDir, id)}/`);
    if (values["no-push"]) {
      console.log(
        `Registered only. Publish later with \`vigo swarm gitback project push ${handle}\`.`,
      );
      return 0;
    }
    const repo = (values.repo as string | undefined) ?? Deno.cwd();
    const top = await gitOk(["-C", repo, "rev-parse", "--show-toplevel"], repo);
    if (top === null) {
      console.log(
        `Not in a git work tree; registered only. Publish with \`vigo swarm gitback project push ${handle} --repo <path>\`.`,
      );
      return 0;
    }
    if (!exists(agentSocket())) {
      console.log(
        `The gitback agent socket is absent; registered only. Publish with \`vigo swarm gitback project push ${handle}\` once the agent runs.`,
      );
      return 0;
    }
    const name = top.slice(top.lastIndexOf("/") + 1);
    if (name !== handle) {
      console.error(
        `warning: handle ${handle} differs from the work tree's name ${name}.`,
      );
    }
    const remote = await ensureSwarmRemote(top, url, false);
    if (remote === "elsewhere") {
      console.log(
        `Remote 'swarm' already points elsewhere; registered only. Run \`vigo swarm gitback project push ${handle}\` to re-point it and publish.`,
      );
      return 0;
    }
    console.log(`  Remote 'swarm' → ${url}`);
    await pushToSwarm(top);
    console.log(
      `Published. \`vigo swarm gitback project status ${handle}\` shows it.`,
    );
    return 0;
  } finally {
    signer.close();
  }
}

async function push(args: string[]): Promise<number> {
  const usage = "vigo swarm gitback project push [<handle>] [--repo <path>]";
  const { values, positionals } = parseVerbArgs(
    args,
    { repo: { type: "string" } },
    usage,
    1,
  );
  const paths = userPaths();
  const repo = (values.repo as string | undefined) ?? Deno.cwd();
  const top = await gitOk(["-C", repo, "rev-parse", "--show-toplevel"], repo);
  if (top === null) {
    throw new CliError(
      `${repo} is not inside a git work tree.`,
      "run it from the repository, or pass --repo <path>.",
    );
  }
  if (!exists(agentSocket())) {
    throw new CliError(
      `the gitback agent socket ${agentSocket()} is absent.`,
      "start the agent (`vigo agent`) and retry.",
    );
  }
  if (positionals[0]) {
    const project = resolveProject(paths.gitbackDir, positionals[0]);
    const url = formatProjectUrl(project.project_id, project.handle);
    const remote = await ensureSwarmRemote(top, url, true);
    if (remote !== "kept") console.log(`Remote 'swarm' ${remote} → ${url}`);
  } else if (
    await gitOk(["-C", top, "remote", "get-url", "swarm"], top) === null
  ) {
    throw new CliError(
      "this repository has no `swarm` remote.",
      "name the project: `vigo swarm gitback project push <handle>`.",
    );
  }
  await pushToSwarm(top);
  console.log(`✓ Pushed ${top} to the swarm.`);
  return 0;
}

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

async function invite(args: string[]): Promise<number> {
  const usage =
    "vigo swarm gitback project invite <project_id> --puddle <fp> --role admin|member [--expires <Nd>]";
  const { values, positionals } = parseVerbArgs(
    args,
    {
      puddle: { type: "string" },
      fleet: { type: "string" },
      role: { type: "string" },
      expires: { type: "string" },
    },
    usage,
    1,
  );
  const fp = (values.puddle ?? values.fleet) as string | undefined;
  if (!positionals[0] || !fp || !values.role) {
    throw new UsageError(
      "invite needs a project, --puddle and --role.",
      `usage: ${usage}`,
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
  if (project.tombstoned_at) {
    throw new CliError(
      `project ${project.handle} is tombstoned; it takes no new members.`,
    );
  }
  const { chain } = readTokens(paths.gitbackDir, project.project_id);
  const delegations = readDelegations(paths.gitbackDir, project.project_id);
  const signer = await sessionSigner(paths.sessionSocket);
  try {
    const verified = await verifyChain(chain, {
      projectId: project.project_id,
      presenter: signer.publicKey,
      delegations,
    });
    if (verified.role !== "admin") {
      throw new CliError(
        `your token on ${project.handle} is a member token; only admins invite.`,
        "ask an admin of the project to invite this puddle.",
      );
    }
    const child = await mintChildToken(signer, verified.chain, {
      subject,
      role,
      expires,
      now,
    });
    const invitation: Invitation = {
      version: 1,
      project: {
        project_id: project.project_id,
        handle: project.handle,
        founder: project.founder,
        scope: project.scope,
        scope_statement: project.scope_statement ?? null,
        members: project.members,
      },
      chain: [...chain, child],
      delegations,
    };
    const member = formatPublicKey(subject);
    if (!project.members.includes(member)) {
      writeProjectState(paths.gitbackDir, {
        ...project,
        members: [...project.members, member],
      });
    }
    recordIssued(paths.gitbackDir, project.project_id, [...chain, child]);
    console.log(JSON.stringify(invitation, null, 2));
    console.error(
      `Invitation for ${member} as ${role} on ${project.handle} (token ${
        decodeToken(child).id
      }).`,
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

async function readInvitationText(source: string): Promise<string> {
  if (source === "-") {
    const bytes = new Uint8Array(
      await new Response(Deno.stdin.readable).arrayBuffer(),
    );
    if (bytes.length > 256 * 1024) {
      throw new CliError(
        "the invitation on standard input is larger than 256 KiB.",
      );
    }
    return new TextDecoder().decode(bytes);
  }
  try {
    return new TextDecoder().decode(readFileBounded(source, 256 * 1024));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`invitation file ${source} does not exist.`);
    }
    throw new CliError((error as Error).message);
  }
}

async function join(args: string[]): Promise<number> {
  const usage =
    "vigo swarm gitback project join <project_id> [--invitation <file|->]";
  const { values, positionals } = parseVerbArgs(
    args,
    { invitation: { type: "string" } },
    usage,
    1,
  );
  const expected = positionals[0];
  if (!expected) {
    throw new UsageError(
      "join needs the project id the invitation is for.",
      `usage: ${usage}`,
    );
  }
  const paths = userPaths();
  const me = readPublicKey(paths.puddleDir);
  const text = await readInvitationText(
    (values.invitation as string | undefined) ?? "-",
  );
  let invitation: Invitation;
  try {
    invitation = JSON.parse(text);
  } catch {
    throw new CliError(
      "the invitation is not valid JSON; nothing was changed.",
      "paste the whole JSON block `invite` printed.",
    );
  }
  const projectId = invitation?.project?.project_id;
  if (typeof projectId !== "string" || !Array.isArray(invitation.chain)) {
    throw new CliError(
      "the invitation has no project or chain; nothing was changed.",
    );
  }
  if (
    projectId !== expected &&
    !(invitation.project.handle ?? "").startsWith(expected)
  ) {
    throw new CliError(
      `this invitation is for project ${projectId}, not ${expected}; nothing was changed.`,
      "check that you pasted the right invitation.",
    );
  }
  let verified;
  try {
    verified = await verifyChain(invitation.chain, {
      projectId,
      presenter: me,
      delegations: Array.isArray(invitation.delegations)
        ? invitation.delegations
        : [],
    });
  } catch (error) {
    throw new CliError(
      `the invitation does not verify: ${
        (error as Error).message.replace(/\.$/, "")
      }; nothing was changed.`,
    );
  }
  if (exists(`${projectDir(paths.gitbackDir, projectId)}/project.json`)) {
    throw new CliError(
      `you already hold project ${verified.handle} (${
        SHORT(projectId)
      }); nothing was changed.`,
      "`vigo swarm gitback project status` shows it.",
    );
  }
  const founder = formatPublicKey(verified.founder);
  const members = Array.isArray(invitation.project.members)
    ? invitation.project.members.map(String)
    : [founder];
  const mine = formatPublicKey(me);
  // The scope is only what the founder signed; without a statement that
  // verifies, every envoy treats the project as members-only.
  const statement = checkScopeStatement(
    invitation.project.scope_statement,
    projectId,
  );
  if (!statement) {
    console.error(
      "warning: the invitation carries no scope statement signed by the founder; envoys treat the project as members-only.",
    );
  }
  writeProjectState(paths.gitbackDir, {
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
  }, { version: 1, chain: invitation.chain });
  writeDelegations(
    paths.gitbackDir,
    projectId,
    (invitation.delegations ?? []) as DelegationWire[],
  );
  // Joining again undoes an earlier leave or purge on this envoy.
  await clearLeft(paths.gitbackDir, projectId);
  const url = formatProjectUrl(projectId, verified.handle);
  console.log(`✓ Joined project ${verified.handle} as ${verified.role}`);
  console.log(`  URL:   ${url}`);
  console.log(`  State: ${projectDir(paths.gitbackDir, projectId)}/`);
  console.log(`next: git clone ${url}`);
  return 0;
}

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

function appendPending(dir: string, name: string, envelope: unknown) {
  const path = `${dir}/${name}`;
  let list: unknown[] = [];
  try {
    const value = JSON.parse(Deno.readTextFileSync(path));
    if (Array.isArray(value)) list = value;
  } catch {
    // None pending yet.
  }
  list.push(envelope);
  writeTextAtomic(path, JSON.stringify(list, null, 2) + "\n", 0o600);
}

async function leave(args: string[]): Promise<number> {
  const usage =
    "vigo swarm gitback project leave <project_id> [--purge] [--yes]";
  const { values, positionals } = parseVerbArgs(
    args,
    {
      purge: { type: "boolean" },
      yes: { type: "boolean" },
    },
    usage,
    1,
  );
  if (!positionals[0]) {
    throw new UsageError("leave needs a project.", `usage: ${usage}`);
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
  await confirm(
    founding
      ? `You founded ${project.handle}: leaving revokes its root token, and with it every member's chain, on every envoy. Leave project ${project.handle} (${
        SHORT(project.project_id)
      })?`
      : `Leave project ${project.handle} (${SHORT(project.project_id)})?`,
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
  appendPending(dir, "leave.pending", envelope);
  for (const name of ["project.json", "tokens.json", "issued.json"]) {
    removeIfExists(`${dir}/${name}`);
  }
  console.log(
    `✓ Left project ${project.handle}; the signed LEAVE waits in ${dir}/leave.pending for the agent's sweep.`,
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

function list(args: string[]): number {
  const { values } = parseVerbArgs(
    args,
    { json: { type: "boolean" } },
    "vigo swarm gitback project list [--json]",
  );
  const paths = userPaths();
  const projects = listProjects(paths.gitbackDir);
  if (values.json) {
    console.log(JSON.stringify(projects, null, 2));
    return 0;
  }
  if (projects.length === 0) {
    console.log(
      "no projects; found one with `vigo swarm gitback project init <handle>`.",
    );
    return 0;
  }
  const rows = projects.map((p) => {
    let tokens = 0;
    try {
      tokens = readTokens(paths.gitbackDir, p.project_id).chain.length;
    } catch {
      // Shown as 0.
    }
    return [
      p.handle,
      p.scope,
      String(p.members.length),
      String(tokens),
      SHORT(p.project_id),
    ];
  });
  const header = ["HANDLE", "SCOPE", "MEMBERS", "TOKENS", "PROJECT_ID"];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  for (const row of [header, ...rows]) {
    console.log(
      row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
        .join("  "),
    );
  }
  return 0;
}

async function status(args: string[]): Promise<number> {
  const { positionals } = parseVerbArgs(
    args,
    {},
    "vigo swarm gitback project status <project_id>",
    1,
  );
  if (!positionals[0]) {
    throw new UsageError(
      "status needs a project.",
      "usage: vigo swarm gitback project status <project_id>",
    );
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
  if (project.tombstoned_at) {
    console.log(
      `  TOMBSTONED:  since ${project.tombstoned_at}; drop it with \`vigo swarm gitback project leave ${project.handle}\``,
    );
  }
  const here = (await askAgentStatus(
    `${systemPaths().varRun}/gitback.sock`,
  ))?.projects.find((p) => p.project_id === project.project_id);
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
  const pending = ["leave.pending", "revoke.pending"].filter((n) =>
    exists(`${dir}/${n}`)
  );
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

async function revoke(args: string[]): Promise<number> {
  const usage =
    "vigo swarm gitback project revoke <project_id> --token-id <hex> [--reason <text>]";
  const { values, positionals } = parseVerbArgs(
    args,
    {
      "token-id": { type: "string" },
      reason: { type: "string" },
    },
    usage,
    1,
  );
  const tokenId = values["token-id"] as string | undefined;
  if (!positionals[0] || !tokenId) {
    throw new UsageError(
      "revoke needs a project and --token-id.",
      `usage: ${usage}`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(tokenId)) {
    throw new UsageError("--token-id must be 64 lowercase hex digits.");
  }
  const paths = userPaths();
  const project = resolveProject(paths.gitbackDir, positionals[0]);
  if (project.tombstoned_at) {
    throw new CliError(`project ${project.handle} is tombstoned.`);
  }
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
        SHORT(tokenId)
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
  const dir = projectDir(paths.gitbackDir, project.project_id);
  appendPending(dir, "revoke.pending", envelope);
  console.log(
    `✓ Revocation of ${tokenId} signed; it waits in ${dir}/revoke.pending for the agent's sweep.`,
  );
  return 0;
}

/** Runs `vigo swarm gitback project <verb>`. */
export async function runProject(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "init":
      return await init(rest);
    case "push":
      return await push(rest);
    case "invite":
      return await invite(rest);
    case "join":
      return await join(rest);
    case "leave":
      return await leave(rest);
    case "list":
      return list(rest);
    case "status":
      return await status(rest);
    case "revoke":
      return await revoke(rest);
    case undefined:
    case "help":
      console.log(PROJECT_USAGE);
      return verb === undefined ? 2 : 0;
    default:
      throw new UsageError(
        `unknown project verb ${JSON.stringify(verb)}.`,
        "run `vigo swarm gitback project help`.",
      );
  }
}
