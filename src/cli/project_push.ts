/**
 * `vigo swarm gitback project push [<handle>]`: push a work tree to its
 * project through the `swarm` remote, pointing the remote at the named
 * project first.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { exists } from "../platform/fs.ts";
import { formatProjectUrl, parseProjectUrl } from "../gitback/project_id.ts";
import { listProjects, resolveProject } from "../gitback/project.ts";
import { decodeTombstone } from "../gitback/tombstone.ts";
import { askAgentStatus } from "../gitback/envoy_status.ts";
import {
  ensureSwarmRemote,
  pushToSwarm,
  swarmRemoteUrl,
  workTreeTop,
} from "../gitback/swarm_remote.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError } from "./errors.ts";

const USAGE = "vigo swarm gitback project push [<handle>] [--repo <path>]";

/**
 * The URL of the project that succeeds the one `url` names, when that one
 * is tombstoned with a successor (by the founder's statement held here, or
 * as the agent reports it); else null.
 */
async function successorOf(
  gitbackDir: string,
  url: string,
  socket: string,
): Promise<string | null> {
  let target;
  try {
    target = parseProjectUrl(url);
  } catch {
    return null;
  }
  if (!("id" in target)) return null;
  const id = target.id;
  const mine = listProjects(gitbackDir).find((p) => p.project_id === id);
  let successor = mine?.tombstone
    ? decodeTombstone(mine.tombstone).body.successor
    : null;
  if (!successor) {
    const here = (await askAgentStatus(socket))?.projects.find((p) =>
      p.project_id === id
    );
    successor = here?.successor ?? null;
  }
  return successor ? formatProjectUrl(successor, target.handle) : null;
}

/** Runs `vigo swarm gitback project push`. */
export async function projectPush(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    { repo: { type: "string" } },
    USAGE,
    1,
  );
  const paths = userPaths();
  const repo = (values.repo as string | undefined) ?? Deno.cwd();
  const top = await workTreeTop(repo);
  if (top === null) {
    throw new CliError(
      `${repo} is not inside a git work tree.`,
      "run it from the repository, or pass --repo <path>.",
    );
  }
  const socket = `${systemPaths().varRun}/gitback.sock`;
  if (!exists(socket)) {
    throw new CliError(
      `the gitback agent socket ${socket} is absent.`,
      "start the agent (`vigo agent`) and retry.",
    );
  }
  if (positionals[0]) {
    const project = resolveProject(paths.gitbackDir, positionals[0]);
    const url = formatProjectUrl(project.project_id, project.handle);
    const remote = await ensureSwarmRemote(top, url, true);
    if (remote !== "kept") console.log(`Remote 'swarm' ${remote} → ${url}`);
  } else {
    const current = await swarmRemoteUrl(top);
    if (current === null) {
      throw new CliError(
        "this repository has no `swarm` remote.",
        "name the project: `vigo swarm gitback project push <handle>`.",
      );
    }
    // A remote at a re-founded project follows it to its successor.
    const successor = await successorOf(paths.gitbackDir, current, socket);
    if (successor) {
      await ensureSwarmRemote(top, successor, true);
      console.log(`Remote 'swarm' repointed → ${successor} (re-founded)`);
    }
  }
  await pushToSwarm(top);
  console.log(`✓ Pushed ${top} to the swarm.`);
  return 0;
}
