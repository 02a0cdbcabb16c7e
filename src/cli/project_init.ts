/**
 * `vigo swarm gitback project init <handle>`: found a project and, from a
 * git work tree, point its `swarm` remote at it and publish.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { exists } from "../platform/fs.ts";
import { formatProjectUrl, validateHandle } from "../gitback/project_id.ts";
import { projectDir } from "../gitback/project.ts";
import { foundProject } from "../gitback/new_project.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import {
  ensureSwarmRemote,
  pushToSwarm,
  workTreeTop,
} from "../gitback/swarm_remote.ts";
import { readNameClaim } from "../puddle/names.ts";
import { parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";

const USAGE =
  "vigo swarm gitback project init <handle> [--scope swarm-wide|members-only] [--repo <path>] [--no-push]";

/** Runs `vigo swarm gitback project init`. */
export async function projectInit(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    {
      scope: { type: "string" },
      repo: { type: "string" },
      "no-push": { type: "boolean" },
    },
    USAGE,
    1,
  );
  const handle = positionals[0];
  if (!handle) throw new UsageError("init needs a handle.", `usage: ${USAGE}`);
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
  try {
    const project = await foundProject(paths.gitbackDir, signer, {
      handle,
      scope,
    });
    const url = formatProjectUrl(project.project_id, handle);
    console.log(`✓ Founded project ${handle}`);
    // The friendly form first when this puddle goes by a name; the
    // canonical one, which needs no name map, beneath.
    const claim = readNameClaim(paths.puddleDir);
    if (claim && claim.key === project.founder) {
      console.log(`  Name:    gitback://${claim.name}/${handle}`);
    }
    console.log(`  URL:     ${url}`);
    console.log(`  Founder: ${project.founder}`);
    console.log(`  Scope:   ${scope}`);
    console.log(
      `  State:   ${projectDir(paths.gitbackDir, project.project_id)}/`,
    );
    if (values["no-push"]) {
      console.log(
        `Registered only. Publish later with \`vigo swarm gitback project push ${handle}\`.`,
      );
      return 0;
    }
    return await publish(
      (values.repo as string | undefined) ?? Deno.cwd(),
      handle,
      url,
    );
  } finally {
    signer.close();
  }
}

/**
 * Points the `swarm` remote of the work tree at `repo` to the new project
 * and pushes, when there is a work tree, an agent, and no `swarm` remote
 * pointing elsewhere; otherwise says the project is registered only.
 */
async function publish(
  repo: string,
  handle: string,
  url: string,
): Promise<number> {
  const top = await workTreeTop(repo);
  if (top === null) {
    console.log(
      `Not in a git work tree; registered only. Publish with \`vigo swarm gitback project push ${handle} --repo <path>\`.`,
    );
    return 0;
  }
  if (!exists(`${systemPaths().varRun}/gitback.sock`)) {
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
}
