/**
 * The `swarm` remote of a user's work tree: finding the work tree, pointing
 * the remote at a project's `gitback://` URL, and pushing everything to it.
 *
 * @module
 */

import { git } from "./repo.ts";
import { ProjectError } from "./project.ts";

/** The remote name `project init` and `project push` manage. */
export const SWARM_REMOTE = "swarm";

/** What {@link ensureSwarmRemote} did to the remote. */
export type SwarmRemoteChange = "added" | "kept" | "repointed" | "elsewhere";

/** git's trimmed output, or null when git fails. */
async function gitOutput(args: string[], cwd: string): Promise<string | null> {
  try {
    return (await git(args, cwd)).trim();
  } catch {
    return null;
  }
}

/** The top of the work tree `repo` lies in, or null outside one. */
export async function workTreeTop(repo: string): Promise<string | null> {
  return await gitOutput(["-C", repo, "rev-parse", "--show-toplevel"], repo);
}

/** The URL of `repo`'s `swarm` remote, or null when it has none. */
export async function swarmRemoteUrl(repo: string): Promise<string | null> {
  return await gitOutput(
    ["-C", repo, "remote", "get-url", SWARM_REMOTE],
    repo,
  );
}

/**
 * Makes the `swarm` remote of `repo` point at `url`: added when missing,
 * re-pointed when `repoint`, otherwise left alone ("elsewhere"). Returns
 * what it did.
 */
export async function ensureSwarmRemote(
  repo: string,
  url: string,
  repoint: boolean,
): Promise<SwarmRemoteChange> {
  const current = await swarmRemoteUrl(repo);
  if (current === null) {
    await git(["-C", repo, "remote", "add", SWARM_REMOTE, url]);
    return "added";
  }
  if (current === url) return "kept";
  if (!repoint) return "elsewhere";
  await git(["-C", repo, "remote", "set-url", SWARM_REMOTE, url]);
  return "repointed";
}

/**
 * Pushes `--all` and `--tags` to the `swarm` remote. git's own output goes
 * straight to this process's stdout and stderr: it is the progress a
 * person watches, and what explains a failure.
 */
export async function pushToSwarm(repo: string): Promise<void> {
  for (const which of ["--all", "--tags"]) {
    const out = await new Deno.Command("git", {
      args: ["-C", repo, "push", SWARM_REMOTE, which],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!out.success) {
      throw new ProjectError(
        `git push swarm ${which} failed (see git's message above).`,
        "fix the cause and run `vigo swarm gitback project push` to retry.",
      );
    }
  }
}
