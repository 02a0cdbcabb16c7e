/**
 * Bare repositories on an envoy, and the git subprocesses that work on them.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { exists, writeTextAtomic } from "../platform/fs.ts";
import {
  checkScopeStatement,
  DEFAULT_SCOPE,
  type Scope,
  type ScopeStatementWire,
} from "./scope_statement.ts";

/** Root of all gitback state on an envoy. */
export function gitbackBase(paths: SystemPaths): string {
  return `${paths.varLib}/swarm/gitback`;
}

/** Directory holding the bare repositories (root, 0700). */
export function projectsDir(paths: SystemPaths): string {
  return `${gitbackBase(paths)}/projects`;
}

/** The bare repository of `projectId`. */
export function bareRepoPath(paths: SystemPaths, projectId: string): string {
  return `${projectsDir(paths)}/${projectId}.git`;
}

/** Directory of stored envelopes of one kind for a project. */
export function envelopesDir(
  paths: SystemPaths,
  projectId: string,
  kind: "revokes" | "leaves",
): string {
  return `${gitbackBase(paths)}/envelopes/${projectId}/${kind}`;
}

/**
 * Where an envoy keeps a project's tombstone: the founder's signed
 * statement itself (tombstone.ts), which agent/tombstone_store.ts writes
 * and verifies again whenever it is read.
 */
export function tombstonePath(paths: SystemPaths, projectId: string): string {
  return `${gitbackBase(paths)}/tombstones/${projectId}`;
}

/** Runs git and returns its stdout; throws with git's stderr on failure. */
export async function git(args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { GIT_TERMINAL_PROMPT: "0" },
  }).output();
  if (!out.success) {
    throw new Error(
      `git ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Runs git with `input` on its standard input (a string, or a file from an
 * offset, streamed); returns its status and output, never throws for git.
 */
export async function gitWithInput(
  args: string[],
  input: string | { path: string; offset: number },
  env: Record<string, string> = {},
): Promise<{ success: boolean; stdout: string; stderr: string }> {
  const child = new Deno.Command("git", {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { GIT_TERMINAL_PROMPT: "0", ...env },
  }).spawn();
  const feed = (async () => {
    try {
      if (typeof input === "string") {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(input));
        await writer.close();
        return;
      }
      const file = await Deno.open(input.path, { read: true });
      try {
        await file.seek(input.offset, Deno.SeekMode.Start);
      } catch (error) {
        file.close();
        throw error;
      }
      // The stream closes the file when it is done or cancelled.
      await file.readable.pipeTo(child.stdin);
    } catch {
      // git stopped reading; its exit status and stderr say why.
      await child.stdin.close().catch(() => {});
    }
  })();
  const out = await child.output();
  await feed;
  const decoder = new TextDecoder();
  return {
    success: out.success,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr).trim(),
  };
}

/**
 * Walks every object `tips` need, stopping at what `repo`'s refs already
 * reach (`git rev-list --objects --stdin --not --all`): it fails when one is
 * missing or unconnected. `env` points git at a quarantine, if any.
 */
export async function walkNewObjects(
  repo: string,
  tips: string[],
  env: Record<string, string> = {},
): Promise<{ success: boolean; stdout: string; stderr: string }> {
  return await gitWithInput(
    [
      "-C",
      repo,
      "rev-list",
      "--objects",
      "--quiet",
      "--stdin",
      "--not",
      "--all",
    ],
    tips.map((t) => `${t}\n`).join(""),
    env,
  );
}

function ensureProjectsDir(paths: SystemPaths): string {
  const dir = projectsDir(paths);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(dir, 0o700);
  return dir;
}

async function initBareRepo(path: string): Promise<void> {
  await git(["init", "--quiet", "--bare", path]);
  await git(["-C", path, "config", "receive.fsckObjects", "true"]);
  Deno.chmodSync(path, 0o700);
}

/** Creates the bare repository if missing (root-only directories, 0700). */
export async function ensureBareRepo(
  paths: SystemPaths,
  projectId: string,
): Promise<string> {
  ensureProjectsDir(paths);
  const repo = bareRepoPath(paths, projectId);
  if (!exists(repo)) {
    const temp = `${repo}.init-${crypto.randomUUID()}`;
    await initBareRepo(temp);
    try {
      Deno.renameSync(temp, repo);
    } catch (error) {
      // Another push created it first.
      Deno.removeSync(temp, { recursive: true });
      if (!exists(repo)) throw error;
    }
  }
  return repo;
}

const STAGING_PREFIX = ".staging-";

/**
 * A fresh bare repository beside the real ones, for a first push: it
 * becomes the project's repository only once the push succeeded
 * ({@link installStagedRepo}); otherwise it is removed. Its name never
 * matches a project, so nothing announces or serves it meanwhile.
 */
export async function createStagingRepo(
  paths: SystemPaths,
  projectId: string,
): Promise<string> {
  const dir = ensureProjectsDir(paths);
  const staging =
    `${dir}/${STAGING_PREFIX}${projectId}-${crypto.randomUUID()}.git`;
  await initBareRepo(staging);
  return staging;
}

/**
 * Makes a staging repository the project's repository. When the project
 * got one meanwhile (a replica arrived), the staged refs are fetched into
 * it instead. The staging repository is gone afterwards.
 */
export async function installStagedRepo(
  paths: SystemPaths,
  projectId: string,
  staging: string,
): Promise<string> {
  const repo = bareRepoPath(paths, projectId);
  try {
    if (!exists(repo)) {
      try {
        Deno.renameSync(staging, repo);
        return repo;
      } catch (error) {
        if (!exists(repo)) throw error;
      }
    }
    await git(["-C", repo, "fetch", "--quiet", staging, "+refs/*:refs/*"]);
    return repo;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/** Removes staging and half-created repositories a crash left behind. */
export function removeStaleStaging(paths: SystemPaths): number {
  let removed = 0;
  try {
    for (const entry of Deno.readDirSync(projectsDir(paths))) {
      if (
        entry.name.startsWith(STAGING_PREFIX) ||
        /\.init-[0-9a-f-]+$/.test(entry.name)
      ) {
        Deno.removeSync(`${projectsDir(paths)}/${entry.name}`, {
          recursive: true,
        });
        removed++;
      }
    }
  } catch {
    // No projects directory yet.
  }
  return removed;
}

/** `refname → object id` for every ref of a repository. */
export async function listRefs(repo: string): Promise<Map<string, string>> {
  const text = await git([
    "-C",
    repo,
    "for-each-ref",
    "--format=%(objectname) %(refname)",
  ]);
  const refs = new Map<string, string>();
  for (const line of text.split("\n")) {
    const space = line.indexOf(" ");
    if (space > 0) refs.set(line.slice(space + 1), line.slice(0, space));
  }
  return refs;
}

/** Bytes used on disk under `dir`. */
export function diskUsage(dir: string): number {
  let total = 0;
  const walk = (path: string) => {
    for (const entry of Deno.readDirSync(path)) {
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory) walk(child);
      else if (entry.isFile) total += Deno.statSync(child).size;
    }
  };
  try {
    walk(dir);
  } catch {
    // Unreadable parts count as nothing.
  }
  return total;
}

/**
 * Points HEAD of a bare repository at an existing branch when it names one
 * that does not exist (a fresh repository's default), so clones check out
 * what was pushed: `main` or `master` when present, else the first branch.
 */
export async function repairHead(
  repo: string,
  refs: Map<string, string>,
): Promise<void> {
  const head = (await git(["-C", repo, "symbolic-ref", "HEAD"])).trim();
  if (refs.has(head)) return;
  const branches = [...refs.keys()].filter((r) => r.startsWith("refs/heads/"))
    .sort();
  const pick =
    ["refs/heads/main", "refs/heads/master"].find((r) => refs.has(r)) ??
      branches[0];
  if (pick) await git(["-C", repo, "symbolic-ref", "HEAD", pick]);
}

/**
 * Private directory (root, 0700) where bodies delivered by peers are
 * spooled before ingest; emptied when the agent starts.
 */
export function ingestTempDir(paths: SystemPaths): string {
  return `${gitbackBase(paths)}/tmp`;
}

/**
 * Empties {@link ingestTempDir} (a crash may have left bodies there) and
 * creates it afresh, 0700. Returns how many entries were removed.
 */
export function resetIngestTempDir(paths: SystemPaths): number {
  const dir = ingestTempDir(paths);
  let removed = 0;
  try {
    const info = Deno.lstatSync(dir);
    if (info.isDirectory) {
      for (const _ of Deno.readDirSync(dir)) removed++;
    } else {
      removed = 1;
    }
    // A symbolic link is removed itself, never followed.
    Deno.removeSync(dir, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  Deno.mkdirSync(gitbackBase(paths), { recursive: true, mode: 0o755 });
  Deno.mkdirSync(dir, { mode: 0o700 });
  Deno.chmodSync(dir, 0o700);
  return removed;
}

/**
 * A project's handle and scope, as recorded with its repository. The scope
 * is what the founder's statement says (scope_statement.ts); a record
 * without a statement that verifies is `members-only`, whatever its
 * `scope` field says.
 */
export interface RepoMeta {
  handle: string;
  scope: Scope;
  /** The founder's statement; only a verified one is ever written. */
  scope_statement?: ScopeStatementWire | null;
}

/** The record of handle and scope kept inside a bare repository. */
export function repoMetaPath(repo: string): string {
  return `${repo}/vigo-meta.json`;
}

/**
 * Records `meta` inside `repo` (0600, written atomically): the handle, the
 * founder's statement and, for people reading the file, the scope it
 * states. Written into a staging repository before it is installed, the
 * record lands together with the repository: no crash leaves one without
 * the other. Callers pass only statements they verified; readers verify
 * again.
 */
export function writeRepoMeta(repo: string, meta: RepoMeta): void {
  const statement = meta.scope_statement ?? null;
  writeTextAtomic(
    repoMetaPath(repo),
    JSON.stringify({
      handle: meta.handle,
      scope: statement ? meta.scope : "members-only",
      scope_statement: statement,
    }) + "\n",
    0o600,
  );
}

/** The project id a bare repository is named by, or null. */
function projectIdOfRepo(repo: string): string | null {
  return /(?:^|\/)([0-9a-f]{64})\.git\/?$/.exec(repo)?.[1] ?? null;
}

/**
 * The record inside `repo` with its statement re-verified for `projectId`
 * (by default the id the repository is named by): `scope` is what a
 * verified statement says, else `members-only`, and `scope_statement` is
 * the verified statement or null. Null when there is no readable record.
 */
export function readRepoMetaRecord(
  repo: string,
  projectId: string | null = projectIdOfRepo(repo),
): Required<RepoMeta> | null {
  try {
    const info = Deno.lstatSync(repoMetaPath(repo));
    if (!info.isFile || info.size > 8192) return null;
    const meta = JSON.parse(Deno.readTextFileSync(repoMetaPath(repo)));
    if (typeof meta?.handle !== "string") return null;
    const statement = projectId
      ? checkScopeStatement(meta.scope_statement, projectId)
      : null;
    return {
      handle: statement?.body.handle ?? meta.handle,
      scope: statement?.body.scope ?? DEFAULT_SCOPE,
      scope_statement: statement?.wire ?? null,
    };
  } catch {
    return null;
  }
}

/**
 * The handle and scope recorded inside `repo`, or null when there is no
 * readable record. The scope is the verified statement's, else
 * `members-only` (see {@link readRepoMetaRecord}).
 */
export function readRepoMeta(repo: string): RepoMeta | null {
  const record = readRepoMetaRecord(repo);
  return record ? { handle: record.handle, scope: record.scope } : null;
}
