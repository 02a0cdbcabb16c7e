/**
 * A `git-remote-gitback` whose user locks their puddle at the worst moment
 * of a push: after receive-pack has moved the envoy's refs and the agent
 * has offered the new ref state, before the state is signed. It is the real
 * remote helper, except that its first attempt to sign a ref state first
 * records the repository's refs (`VIGO_TEST_SNAPSHOT_REPO` into
 * `VIGO_TEST_SNAPSHOT_FILE`, when set) and then runs `vigo swarm puddle
 * lock`, which returns once the session helper is gone. The signature can
 * then not be made, as for a user who locked (or whose session timed out)
 * right then.
 *
 * Run by the `git-remote-gitback` script {@link withUnsignedPushHelper}
 * puts on PATH.
 *
 * @module
 */

import { SessionClient } from "../../src/puddle/session/client.ts";
import { runRemoteHelper } from "../../src/gitback/remote_helper.ts";
import { REPO, VIGO } from "./cli.ts";
import { GIT_IDENTITY } from "./git.ts";

/**
 * Puts a `git-remote-gitback` running this module in `<dir>/bin` and
 * returns a function that puts it first on an environment's PATH, with a
 * git identity.
 */
export function withUnsignedPushHelper(
  dir: string,
): (env: Record<string, string>) => Record<string, string> {
  const bin = `${dir}/bin`;
  Deno.mkdirSync(bin, { recursive: true });
  Deno.writeTextFileSync(
    `${bin}/git-remote-gitback`,
    `#!/bin/sh\nexec "${REPO}/scripts/deno" run --quiet --no-prompt --config="${REPO}/deno.json" --allow-all "${
      new URL(import.meta.url).pathname
    }" "$@"\n`,
    { mode: 0o755 },
  );
  return (env) => ({
    ...env,
    PATH: `${bin}:${env.PATH}`,
    ...GIT_IDENTITY,
  });
}

async function snapshotThenLock(): Promise<void> {
  const repo = Deno.env.get("VIGO_TEST_SNAPSHOT_REPO");
  const file = Deno.env.get("VIGO_TEST_SNAPSHOT_FILE");
  if (repo && file) {
    // git runs its remote helpers with GIT_DIR set (to the pusher's clone).
    const env = Deno.env.toObject();
    delete env.GIT_DIR;
    const refs = await new Deno.Command("git", {
      args: [
        "-C",
        repo,
        "for-each-ref",
        "--format=%(objectname) %(refname)",
      ],
      env,
      clearEnv: true,
      stdout: "piped",
    }).output();
    if (!refs.success) throw new Error(`git for-each-ref in ${repo} failed`);
    Deno.writeFileSync(file, refs.stdout);
  }
  const lock = await new Deno.Command(VIGO, {
    args: ["swarm", "puddle", "lock"],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!lock.success) throw new Error("vigo swarm puddle lock failed");
}

if (import.meta.main) {
  const sign = SessionClient.prototype.sign;
  let locked = false;
  SessionClient.prototype.sign = async function (context, payload) {
    if (context === "vigo-swarm/v1/gitback-refs" && !locked) {
      locked = true;
      await snapshotThenLock();
    }
    return await sign.call(this, context, payload);
  };
  Deno.exit(await runRemoteHelper(Deno.args));
}
