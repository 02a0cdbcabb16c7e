/**
 * Steps many fleet tests take: founding a project on an envoy, and waiting
 * for an agent's periodic work to have run.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Envoy } from "../../scripts/fleet.ts";
import { runCommand } from "../../src/platform/process.ts";
import { VIGO, vigo, withGitback } from "./cli.ts";
import { waitUntil } from "./wait.ts";

/**
 * The fleet's user makes a puddle on `envoy`, unlocks it and founds
 * `handle` from a one-commit repository; returns the project id.
 */
export async function foundProject(
  envoy: Envoy,
  dir: string,
  handle: string,
  pass: string,
): Promise<string> {
  assert.equal(
    (await vigo(envoy.env, ["swarm", "puddle", "init"], `${pass}\n${pass}\n`))
      .code,
    0,
  );
  assert.equal(
    (await vigo(envoy.env, ["swarm", "puddle", "unlock"], `${pass}\n`)).code,
    0,
  );
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
    args: ["swarm", "gitback", "project", "init", handle],
    env: withGit(envoy.env),
    clearEnv: true,
    cwd: work,
  });
  assert.equal(founded.code, 0, founded.stderr);
  return /gitback:\/\/([0-9a-f]{64})\//.exec(founded.stdout)![1];
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
  const cache =
    `${envoy.root}/var/lib/vigo/swarm/gitback/gitback-announced.json`;
  await waitUntil(`${envoy.name} to confirm ${projectId}`, () => {
    try {
      return Deno.readTextFileSync(cache).includes(projectId);
    } catch {
      return false;
    }
  });
  await rewrites(cache, passes);
}
