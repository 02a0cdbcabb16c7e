/**
 * Steps many fleet tests take: making and unlocking a puddle, founding a
 * project on an envoy, inviting and joining another puddle, pairing an
 * envoy, and waiting for an agent's periodic work to have run.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Envoy } from "../../scripts/fleet.ts";
import { runCommand } from "../../src/platform/process.ts";
import { VIGO, vigo, withGitback } from "./cli.ts";
import { announcedCache } from "./envoy_files.ts";
import { waitUntil } from "./wait.ts";

/**
 * The fleet's user makes a new puddle on `envoy` with passphrase `pass` and
 * unlocks it there.
 */
export async function initAndUnlockPuddle(
  envoy: Envoy,
  pass: string,
): Promise<void> {
  for (
    const [verb, stdin] of [
      ["init", `${pass}\n${pass}\n`],
      ["unlock", `${pass}\n`],
    ]
  ) {
    const out = await vigo(envoy.env, ["swarm", "puddle", verb], stdin);
    assert.equal(out.code, 0, out.stderr);
  }
}

/**
 * The puddle unlocked on `envoy` founds `handle` from a one-commit
 * repository in `<dir>/<handle>/work` (`project init <handle> …extra`);
 * returns the project id.
 */
export async function foundWhileUnlocked(
  envoy: Envoy,
  dir: string,
  handle: string,
  extra: string[] = [],
): Promise<string> {
  const work = `${dir}/${handle}/work`;
  Deno.mkdirSync(work, { recursive: true });
  const withGit = withGitback(`${dir}/${handle}`);
  for (
    const args of [
      ["init", "--quiet", "-b", "main"],
      ["commit", "--quiet", "--allow-empty", "-m", "one"],
    ]
  ) {
    await runCommand("git", {
      args,
      env: withGit(envoy.env),
      clearEnv: true,
      cwd: work,
    });
  }
  const founded = await runCommand(VIGO, {
    args: ["swarm", "gitback", "project", "init", handle, ...extra],
    env: withGit(envoy.env),
    clearEnv: true,
    cwd: work,
  });
  assert.equal(founded.code, 0, founded.stderr);
  return /gitback:\/\/([0-9a-f]{64})\//.exec(founded.stdout)![1];
}

/**
 * The fleet's user makes a puddle on `envoy`, unlocks it and founds
 * `handle` from a one-commit repository in `<dir>/<handle>/work`
 * (`project init <handle> …extra`); returns the project id.
 */
export async function foundProject(
  envoy: Envoy,
  dir: string,
  handle: string,
  pass: string,
  extra: string[] = [],
): Promise<string> {
  await initAndUnlockPuddle(envoy, pass);
  return await foundWhileUnlocked(envoy, dir, handle, extra);
}

/** The public key of the puddle on `envoy` (`ed25519:…`). */
export async function puddleKey(envoy: Envoy): Promise<string> {
  return (await vigo(envoy.env, ["swarm", "puddle", "pubkey"])).stdout.trim();
}

/**
 * The unlocked puddle on `admin` invites the puddle `puddle` to `handle`
 * with `role`; returns the invitation.
 */
export async function invite(
  admin: Envoy,
  handle: string,
  puddle: string,
  role = "member",
): Promise<string> {
  const out = await vigo(admin.env, [
    "swarm",
    "gitback",
    "project",
    "invite",
    handle,
    "--puddle",
    puddle,
    "--role",
    role,
  ]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout;
}

/**
 * The puddle on `admin` invites the (unlocked) puddle on `member` to
 * `handle` as a member, and that puddle joins `projectId` with the
 * invitation, kept in `<dir>/invite.json`; returns the member's key.
 */
export async function inviteAndJoin(
  admin: Envoy,
  member: Envoy,
  handle: string,
  projectId: string,
  dir: string,
): Promise<string> {
  const key = await puddleKey(member);
  Deno.writeTextFileSync(
    `${dir}/invite.json`,
    await invite(admin, handle, key),
  );
  const join = await vigo(member.env, [
    "swarm",
    "gitback",
    "project",
    "join",
    projectId,
    "--invitation",
    `${dir}/invite.json`,
  ]);
  assert.equal(join.code, 0, join.stderr);
  return key;
}

/**
 * The puddle on `from` pairs envoy `to` (`puddle pair` there, `puddle join
 * --from` here, with passphrase `pass`), then unlocks it on `to`, as a
 * user does after any join. The session outlives the command: its parent
 * is the test process.
 */
export async function pairPuddle(
  from: Envoy,
  to: Envoy,
  pass: string,
): Promise<void> {
  const pair = await vigo(from.env, ["swarm", "puddle", "pair"]);
  const code = /pairing code: (\d{4}-\d{4})/.exec(pair.stdout)![1];
  const joined = await vigo(
    to.env,
    ["swarm", "puddle", "join", "--from", from.name],
    `${code}\n${pass}\n`,
  );
  assert.equal(joined.code, 0, joined.stderr);
  const unlock = await vigo(to.env, ["swarm", "puddle", "unlock"], `${pass}\n`);
  assert.equal(unlock.code, 0, unlock.stderr);
}

/** Waits until the file at `path` has been rewritten `times` times. */
export async function rewrites(path: string, times: number) {
  const mtime = () => {
    try {
      return Deno.statSync(path).mtime?.getTime() ?? 0;
    } catch {
      return 0;
    }
  };
  for (let i = 0; i < times; i++) {
    const before = mtime();
    await waitUntil(`${path} to be rewritten`, () => mtime() !== before);
  }
}

/**
 * Waits until `envoy` has confirmed that a peer holds `projectId` (it is in
 * the announcement cache), then for `passes` more whole catch-up passes.
 * Each pass rewrites the cache first, so every pass counted ran its member
 * adoption after the project was known.
 */
export async function catchUpPassesAfter(
  envoy: Envoy,
  projectId: string,
  passes: number,
): Promise<void> {
  const cache = announcedCache(envoy);
  await waitUntil(`${envoy.name} to confirm ${projectId}`, () => {
    try {
      return Deno.readTextFileSync(cache).includes(projectId);
    } catch {
      return false;
    }
  });
  await rewrites(cache, passes);
}
