/**
 * `vigo swarm gitback …`: envoy-wide posture, wiping local state, and the
 * `project` verbs.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { exists } from "../platform/fs.ts";
import { listUsers } from "../platform/users.ts";
import { askAgentStatus, collectEnvoyStatus } from "../gitback/envoy_status.ts";
import { diskUsage, projectsDir } from "../gitback/repo.ts";
import { listProjects } from "../gitback/project.ts";
import { pendingQueues } from "../gitback/pending.ts";
import { readPublicKey } from "../puddle/identity.ts";
import { ADOPT_VERB, adoptMembership } from "../gitback/adopt.ts";
import { LEFT_FILE, LEFT_LOCK, recordLeft } from "../gitback/left.ts";
import { loadAgentConfig } from "../envoy/config.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";
import { formatBytes } from "../platform/units.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { requireFeature } from "./policy_gate.ts";
import { PROJECT_GROUP, projectErrorToCli } from "./gitback_project.ts";

const USAGE = `vigo swarm gitback <verb>

verbs:
  status                 envoy-wide posture (asks the agent; partial without it)
  purge --yes            wipe your ~/.vigo-gitback (as root: also the bare repos);
                         left.json keeps the ids, so nothing adopts them again
  gc-orphans [--yes]     (root) bare repos no local user holds any more
  show <project>         (root) the fleet's view of a project, from the fleet
                         server: envoys, in sync / behind / diverged, members
  project <verb> …       found, invite, join, list, leave, revoke (\`project help\`)`;

async function status(args: string[]): Promise<number> {
  parseVerbArgs(
    args,
    { json: { type: "boolean" } },
    "vigo swarm gitback status",
  );
  const paths = systemPaths();
  const socket = `${paths.varRun}/gitback.sock`;
  let view = await askAgentStatus(socket);
  const partial = view === null;
  view ??= await collectEnvoyStatus(
    paths,
    listProjects(userPaths().gitbackDir),
    Deno.uid() === 0,
  );
  console.log("gitback status");
  console.log(`  base:        ${view.base}`);
  const withRepo = view.projects.filter((p) => p.bare_repo).length;
  console.log(
    `  projects:    ${
      view.projects.length === 0
        ? "none"
        : `${view.projects.length} (${withRepo} with a local bare repo)`
    }`,
  );
  console.log(`  bare repos:  ${formatBytes(view.bare_bytes)} on disk`);
  console.log(
    `  envelopes:   ${view.revokes} revoke(s), ${view.leaves} leave(s) stored`,
  );
  const width = Math.max(8, ...view.projects.map((p) => p.handle.length));
  for (const p of view.projects) {
    const detail = p.bare_repo
      ? `${p.refs} ref(s), ${formatBytes(p.bytes)}`
      : "no bare repo yet (awaiting first push or DR catch-up)";
    console.log(
      `  ${p.handle.padEnd(width)}  ${p.scope.padEnd(12)}  ${detail}`,
    );
  }
  console.log(
    `  helper daemon: socket ${
      exists(socket) ? "present" : "absent"
    } (${socket})`,
  );
  if (partial) {
    console.log(
      "  partial data: the agent did not answer, so this is a local scan of your own state" +
        (Deno.uid() === 0
          ? ""
          : " without bare-repo facts (run as root, or start the agent)"),
    );
  }
  return 0;
}

/** The entries of `dir`, or none when it does not exist. */
function entriesOf(dir: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(dir)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function purge(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { yes: { type: "boolean" } },
    "vigo swarm gitback purge --yes",
  );
  const gitbackDir = userPaths().gitbackDir;
  // The record of dropped projects stays (see gitback/left.ts): it is what
  // keeps adoption from bringing purged projects back.
  const kept = new Set([LEFT_FILE, LEFT_LOCK]);
  const userEntries = entriesOf(gitbackDir).filter((e) => !kept.has(e.name));
  const projectIds = userEntries
    .filter((e) => e.isDirectory && /^[0-9a-f]{64}$/.test(e.name))
    .map((e) => e.name);
  const bareDir = Deno.uid() === 0 ? projectsDir(systemPaths()) : null;
  const present = [
    ...(userEntries.length > 0 ? [gitbackDir] : []),
    ...(bareDir !== null && exists(bareDir) ? [bareDir] : []),
  ];
  const pendingNote = projectIds.some((id) =>
    pendingQueues(gitbackDir, id).length > 0
  );
  if (!values.yes) {
    console.log(present.length ? "would remove:" : "nothing to remove.");
    for (const dir of present) console.log(`  ${dir}`);
    if (present.length) console.log("re-run with --yes to remove them.");
    return 0;
  }
  // Recorded first: whatever happens next, nothing adopts them here again
  // until the user joins (or founds) them again.
  await recordLeft(gitbackDir, projectIds);
  if (userEntries.length > 0) {
    for (const entry of userEntries) {
      Deno.removeSync(`${gitbackDir}/${entry.name}`, { recursive: true });
    }
    if (entriesOf(gitbackDir).every((e) => e.name === LEFT_LOCK)) {
      Deno.removeSync(gitbackDir, { recursive: true });
      console.log(`removed ${gitbackDir}`);
    } else {
      console.log(
        `removed ${gitbackDir}/* but ${LEFT_FILE}, which lists the projects dropped here so that nothing adopts them again until you join them again`,
      );
    }
  }
  if (bareDir !== null && exists(bareDir)) {
    Deno.removeSync(bareDir, { recursive: true });
    console.log(`removed ${bareDir}`);
  }
  if (pendingNote) {
    console.log(
      "note: queued leave/revoke envelopes were removed before the agent swept them; peers never saw them.",
    );
  }
  return 0;
}

function gcOrphans(args: string[]): number {
  const { values } = parseVerbArgs(
    args,
    { yes: { type: "boolean" } },
    "vigo swarm gitback gc-orphans [--yes]",
  );
  if (Deno.uid() !== 0) {
    throw new CliError(
      "gc-orphans reads and deletes root-owned bare repositories and must run as root.",
      "run `sudo vigo swarm gitback gc-orphans`.",
    );
  }
  const paths = systemPaths();
  const homes = new Set(listUsers().map((u) => u.home));
  try {
    for (const home of Object.values(loadAgentConfig(paths).homes)) {
      homes.add(home);
    }
  } catch {
    // No agent configuration: passwd homes only.
  }
  // Homes Deno will not let us look into (/dev, /proc) hold no projects.
  const holds = (home: string, id: string) => {
    try {
      return exists(`${home}/.vigo-gitback/${id}`);
    } catch {
      return false;
    }
  };
  const held = (id: string) => [...homes].some((home) => holds(home, id));
  const dir = projectsDir(paths);
  const orphans: {
    id: string;
    path: string;
    bytes: number;
    mtime: Date | null;
  }[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) {
      const match = /^([0-9a-f]{64})\.git$/.exec(entry.name);
      if (!match || held(match[1])) continue;
      const path = `${dir}/${entry.name}`;
      orphans.push({
        id: match[1],
        path,
        bytes: diskUsage(path),
        mtime: Deno.statSync(path).mtime,
      });
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (orphans.length === 0) {
    console.log(`no orphan bare repos under ${dir}/.`);
    return 0;
  }
  console.log(
    `${orphans.length} orphan bare repo(s) under ${dir}/ (no user in /etc/passwd holds the project):`,
  );
  for (const o of orphans) {
    const days = o.mtime
      ? Math.floor((Date.now() - o.mtime.getTime()) / 86_400_000)
      : 0;
    console.log(
      `  ${o.id.slice(0, 5)}…  ${
        formatBytes(o.bytes)
      }  last-modified ${days}d ago  ${o.path}`,
    );
  }
  if (!values.yes) {
    console.log(
      "dry-run — nothing deleted. Re-run with --yes to remove these bare repos.",
    );
    return 0;
  }
  for (const o of orphans) Deno.removeSync(o.path, { recursive: true });
  console.log(`removed ${orphans.length} bare repo(s).`);
  return 0;
}

/**
 * Hidden verb run by the agent as the user: writes the state of a project
 * this user's puddle is a member of, from a chain on standard input that
 * must verify for the project with this user's key as its last subject,
 * and the founder's scope statement, kept when it verifies.
 */
async function adoptFromStdin(args: string[]): Promise<number> {
  const projectId = args[0];
  if (!projectId || !/^[0-9a-f]{64}$/.test(projectId)) {
    throw new UsageError("the project id must be 64 hex digits.");
  }
  const paths = userPaths();
  let input:
    | { chain?: unknown; scope_statement?: unknown; delegations?: unknown }
    | null;
  try {
    input = JSON.parse(await new Response(Deno.stdin.readable).text());
  } catch {
    throw new CliError(
      "standard input is not JSON; this verb is run by the agent with {chain, scope_statement, delegations}.",
    );
  }
  await adoptMembership(
    paths.gitbackDir,
    projectId,
    readPublicKey(paths.puddleDir),
    input,
  );
  return 0;
}

/** `vigo swarm gitback`. */
export const GITBACK_GROUP: VerbGroup = {
  command: "vigo swarm gitback",
  noun: "gitback verb",
  usage: USAGE,
  verbs: {
    status,
    purge,
    "gc-orphans": gcOrphans,
    show: async (args) => await (await import("./gitback_show.ts")).show(args),
    project: PROJECT_GROUP,
  },
  hidden: {
    [ADOPT_VERB]: (args) => {
      // The one hidden verb that keeps the gate: the agent runs it only for
      // users with gitback, and nobody without gitback writes project state.
      requireFeature("gitback");
      return adoptFromStdin(args);
    },
  },
  gate: () => requireFeature("gitback"),
  mapError: projectErrorToCli,
};

/** Runs `vigo swarm gitback …`. */
export async function runGitback(args: string[]): Promise<number> {
  return await dispatch(GITBACK_GROUP, args);
}
