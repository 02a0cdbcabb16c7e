/**
 * The limits of project recovery on a real fleet. Dan founds `team` on
 * envoy-a and Ann, another puddle, joins it on envoy-b.
 *
 * When Dan's envoy is gone, Ann carries the project on under a new id her
 * key founds (`reanchor`), with every ref of the old one, and keeps the old
 * project's state. And each recovery verb (`reanchor`, `re-found`,
 * `rejoin`) refuses a wrong confirmation, the wrong caller, a move that
 * would keep the id, an invitation for another project or another puddle,
 * and a project not held, writing nothing in the user's `~/.vigo-gitback`.
 */

import assert from "node:assert/strict";
import { type Envoy, stopAgent } from "../scripts/fleet.ts";
import { VIGO, vigo, withGitback } from "./support/cli.ts";
import {
  formatPublicKey,
  generateSeed,
  parsePublicKey,
} from "../src/crypto/ed25519.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";
import { projectId } from "../src/gitback/project_id.ts";
import { type CommandResult, runCommand } from "../src/platform/process.ts";
import {
  foundProject,
  foundWhileUnlocked,
  initAndUnlockPuddle,
  invite,
  inviteAndJoin,
  puddleKey,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { forEachRef } from "./support/envoy_files.ts";
import { gitIn } from "./support/git.ts";
import { waitUntil } from "./support/wait.ts";

const DAN = "dan's passphrase";
const ANN = "ann's passphrase";

/** `envoy`'s refs of the project, refs/gitback/ left out, or a note. */
async function refsOn(envoy: Envoy, id: string): Promise<string> {
  const refs = await forEachRef(envoy, id);
  if (refs === null) return `(no repository of ${id} on ${envoy.name})`;
  return refs.split("\n").filter((line) =>
    line !== "" && !line.split(" ")[1].startsWith("refs/gitback/")
  ).join("\n");
}

/**
 * Every directory, symlink and regular file (with its bytes) under `root`,
 * by path relative to it; an absent `root` is empty.
 */
function snapshot(root: string): Map<string, string> {
  const seen = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      const name = `${rel}${entry.name}`;
      if (entry.isDirectory) {
        seen.set(`${name}/`, "dir");
        walk(path, `${name}/`);
      } else if (entry.isSymlink) {
        seen.set(name, `symlink ${Deno.readLinkSync(path)}`);
      } else if (entry.isFile) {
        const bytes = Deno.readFileSync(path);
        seen.set(name, `file ${Array.from(bytes).join(",")}`);
      } else {
        seen.set(name, "other");
      }
    }
  };
  walk(root, "");
  return seen;
}

fleetTest(
  "reanchor: a surviving member carries the project on under a new id with every ref, when the founder's puddle is gone",
  { prefix: "vigo-reanchor-", envoys: 2 },
  async ({ dir, fleet }) => {
    const [a, b] = fleet.envoys;
    const withGit = withGitback(dir);
    const oldId = await foundProject(a, dir, "team", DAN);
    await initAndUnlockPuddle(b, ANN);
    await inviteAndJoin(a, b, "team", oldId, dir);
    await waitUntil(
      "envoy-b to hold team's repository as envoy-a does",
      async () => await refsOn(b, oldId) === await refsOn(a, oldId),
    );

    // Ann works on envoy-b: a commit, a branch and an annotated tag.
    const clone = `${dir}/clone-b`;
    await gitIn(withGit(b.env), dir)(
      "clone",
      "--quiet",
      `gitback://${oldId}/team`,
      clone,
    );
    const git = gitIn(withGit(b.env), clone);
    await git("commit", "--quiet", "--allow-empty", "-m", "Ann's work");
    await git("branch", "topic");
    await git("commit", "--quiet", "--allow-empty", "-m", "more");
    await git("tag", "-a", "-m", "Ann's release", "v1");
    await git("push", "--quiet", "origin", "--all");
    await git("push", "--quiet", "origin", "--tags");
    const tag = await git("rev-parse", "refs/tags/v1");
    const oldRefs = await refsOn(b, oldId);
    assert.match(oldRefs, new RegExp(`^${tag} refs/tags/v1$`, "m"));
    assert.match(oldRefs, /^[0-9a-f]{40} refs\/heads\/topic$/m);
    await waitUntil(
      `envoy-a's refs to equal envoy-b's:\n${oldRefs}`,
      async () => await refsOn(a, oldId) === oldRefs,
    );

    // The founder is gone.
    await stopAgent(fleet, a);

    const out = await runCommand(VIGO, {
      args: [
        "swarm",
        "gitback",
        "project",
        "reanchor",
        "team",
        "--confirm",
        "team",
      ],
      env: withGit(b.env),
      clearEnv: true,
      cwd: dir,
    });
    assert.equal(out.code, 0, `${out.stdout}\n${out.stderr}`);
    const newId = /Re-anchored team as ([0-9a-f]{64})/.exec(out.stdout)?.[1];
    assert.ok(newId, out.stdout);
    assert.equal(
      newId,
      await projectId(parsePublicKey(await puddleKey(b)), "team"),
    );
    assert.notEqual(newId, oldId);

    // Every ref of the old project, and nothing else, under the new id.
    await waitUntil(
      `envoy-b's repository of ${newId} to list:\n${oldRefs}`,
      async () => await refsOn(b, newId) === oldRefs,
    );

    // The private mirror the refs went through is gone.
    assert.deepEqual(
      [...Deno.readDirSync(`${b.home}/.vigo-gitback`)].filter((e) =>
        e.name.startsWith(".migrate-")
      ),
      [],
    );

    // The old project stays with Ann as it was.
    const old = JSON.parse(
      Deno.readTextFileSync(`${b.home}/.vigo-gitback/${oldId}/project.json`),
    );
    assert.equal(old.project_id, oldId);
    assert.equal(old.handle, "team");
    assert.equal(old.tombstoned_at, null);

    // Ann clones the new URL and has her tag.
    const fresh = `${dir}/clone-new`;
    await gitIn(withGit(b.env), dir)(
      "clone",
      "--quiet",
      `gitback://${newId}/team`,
      fresh,
    );
    const inFresh = gitIn(withGit(b.env), fresh);
    assert.equal(await inFresh("tag", "--list"), "v1");
    assert.equal(await inFresh("rev-parse", "refs/tags/v1"), tag);
    assert.equal(
      await inFresh("rev-parse", "refs/remotes/origin/topic"),
      await git("rev-parse", "refs/heads/topic"),
    );
  },
);

fleetTest(
  "recovery verbs refuse bad input and write nothing",
  { prefix: "vigo-recovery-limits-", envoys: 2 },
  async ({ dir, fleet, t }) => {
    const [a, b] = fleet.envoys;
    const withGit = withGitback(dir);
    const teamId = await foundProject(a, dir, "team", DAN);
    await initAndUnlockPuddle(b, ANN);
    const annKey = await inviteAndJoin(a, b, "team", teamId, dir);

    // Dan founds a second project, which Ann is invited to but never joins,
    // and invites a key that is neither Dan's nor Ann's to team.
    await foundWhileUnlocked(a, dir, "other");
    const forOther = `${dir}/invite-other.json`;
    Deno.writeTextFileSync(forOther, await invite(a, "other", annKey));
    const stranger = formatPublicKey(seedSigner(generateSeed()).publicKey);
    const forStranger = `${dir}/invite-stranger.json`;
    Deno.writeTextFileSync(forStranger, await invite(a, "team", stranger));

    const project = (envoy: Envoy, args: string[]): Promise<CommandResult> =>
      runCommand(VIGO, {
        args: ["swarm", "gitback", "project", ...args],
        env: withGit(envoy.env),
        clearEnv: true,
        cwd: dir,
      });
    /** `args` on `envoy` fail with `code` and `reason`, writing nothing. */
    const refused = async (
      envoy: Envoy,
      args: string[],
      code: number,
      reason: RegExp,
    ) => {
      const state = `${envoy.home}/.vigo-gitback`;
      const before = snapshot(state);
      assert.ok(before.size > 0, `${state} is empty`);
      const out = await project(envoy, args);
      assert.equal(out.code, code, `${out.stdout}\n${out.stderr}`);
      assert.match(out.stderr, reason);
      assert.deepEqual(snapshot(state), before, `${args.join(" ")} wrote`);
    };

    await t.step("reanchor with the wrong confirmation", async () => {
      await refused(
        b,
        ["reanchor", "team", "--confirm", "wrong"],
        1,
        /is not the handle team; nothing was changed/,
      );
    });

    await t.step("reanchor without --confirm and no terminal", async () => {
      await refused(
        b,
        ["reanchor", "team"],
        1,
        /without a terminal, pass --confirm team/,
      );
    });

    await t.step("reanchor without a project", async () => {
      await refused(b, ["reanchor"], 2, /reanchor needs a project/);
    });

    await t.step("re-found by a member who is not the founder", async () => {
      await refused(
        b,
        ["re-found", "team", "--force", "--confirm", "team"],
        1,
        /only the current founder/,
      );
    });

    await t.step("reanchor by the founder", async () => {
      await refused(
        a,
        ["reanchor", "team", "--confirm", "team"],
        1,
        /you are the founder/,
      );
    });

    await t.step(
      "re-found with the key the project was founded with",
      async () => {
        await refused(
          a,
          ["re-found", "team", "--force", "--confirm", "team"],
          1,
          /rotate the key first|its new id would be the same/,
        );
      },
    );

    await t.step(
      "re-found below the delegation cap without --force",
      async () => {
        const founding = await puddleKey(a);
        const rekey = await vigo(
          a.env,
          ["swarm", "puddle", "rekey-pair"],
          `${DAN}\n`,
        );
        assert.equal(rekey.code, 0, rekey.stderr);
        assert.notEqual(await puddleKey(a), founding);
        await refused(
          a,
          ["re-found", "team", "--confirm", "team"],
          1,
          /--force/,
        );
      },
    );

    await t.step("rejoin with an invitation for another project", async () => {
      await refused(
        b,
        ["rejoin", "team", "--invitation", forOther],
        1,
        /is for project/,
      );
    });

    await t.step("rejoin with an invitation for another puddle", async () => {
      await refused(
        b,
        ["rejoin", "team", "--invitation", forStranger],
        1,
        /does not verify/,
      );
    });

    await t.step("rejoin of a project not held here", async () => {
      await refused(
        b,
        ["rejoin", "other", "--invitation", forOther],
        1,
        /do not hold project/,
      );
    });
  },
);
