/**
 * Moving a project's history to a new project id (`re-found`,
 * `reanchor`): every ref of the old project is fetched and pushed to the
 * new one through git and the agent, as the user, like any clone and push.
 *
 * It goes through the user's own access rather than root copying one bare
 * repository into another, because replicas move refs only to states a
 * member signed: the first push to the new project is signed by the new
 * founder over every migrated ref, and fan-out carries it to every envoy.
 * Refs under `refs/gitback/` (kept lost tips) are the agent's own and stay
 * behind.
 *
 * @module
 */

import { ProjectError } from "./project.ts";

/** What a migration moved. */
export interface MigratedRefs {
  refs: string[];
}

async function git(
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new ProjectError(
      `git ${args[0]} failed: ${
        new TextDecoder().decode(out.stderr).trim().split("\n").pop()
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Fetches every ref of `fromUrl` into a private mirror under `workDir` and
 * pushes each one, except `refs/gitback/*`, to `toUrl`. The mirror is
 * removed afterwards, whatever happened.
 */
export async function migrateRefs(
  fromUrl: string,
  toUrl: string,
  workDir: string,
  env?: Record<string, string>,
): Promise<MigratedRefs> {
  Deno.mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const dir = Deno.makeTempDirSync({ dir: workDir, prefix: ".migrate-" });
  try {
    const mirror = `${dir}/repo.git`;
    await git(["clone", "--quiet", "--mirror", fromUrl, mirror], env);
    const refs = (await git([
      "-C",
      mirror,
      "for-each-ref",
      "--format=%(refname)",
    ], env)).split("\n").filter((ref) =>
      ref !== "" && !ref.startsWith("refs/gitback/")
    );
    if (refs.length === 0) {
      throw new ProjectError(
        `${fromUrl} has no refs to migrate; nothing was pushed.`,
      );
    }
    await git([
      "-C",
      mirror,
      "push",
      "--quiet",
      toUrl,
      ...refs.map((ref) => `${ref}:${ref}`),
    ], env);
    return { refs };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
