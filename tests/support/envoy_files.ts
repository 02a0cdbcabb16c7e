/**
 * Where an envoy of a local fleet keeps things, read the way its agent
 * would: its fleet TLS files, gitback's root-side directory, a project's
 * bare repository and what that repository holds.
 *
 * @module
 */

import type { Envoy } from "../../scripts/fleet.ts";
import type { SwarmTls } from "../../src/swarm/swarm_client.ts";
import { runCommand } from "../../src/platform/process.ts";
import { GIT_ENV } from "./git.ts";

/**
 * `envoy`'s real fleet certificate, key and CA, as an enrolled peer
 * presents them to another envoy.
 */
export function tlsOf(envoy: Envoy): SwarmTls {
  const etc = `${envoy.root}/etc/vigo`;
  return {
    caPem: Deno.readTextFileSync(`${etc}/ca.crt`),
    certPem: Deno.readTextFileSync(`${etc}/tls.crt`),
    keyPem: Deno.readTextFileSync(`${etc}/tls.key`),
  };
}

/** gitback's root-side directory on `envoy` (repositories, meta, spool). */
export function gitbackDir(envoy: Envoy): string {
  return `${envoy.root}/var/lib/vigo/swarm/gitback`;
}

/** `envoy`'s bare repository of `projectId` (there or not). */
export function repoOf(envoy: Envoy, projectId: string): string {
  return `${gitbackDir(envoy)}/projects/${projectId}.git`;
}

/** `envoy`'s cache of the projects its peers were confirmed to hold. */
export function announcedCache(envoy: Envoy): string {
  return `${gitbackDir(envoy)}/gitback-announced.json`;
}

/**
 * `git for-each-ref --format=<format>` in `envoy`'s repository of
 * `projectId`, one line a ref as git prints it; null when it has none.
 */
export async function forEachRef(
  envoy: Envoy,
  projectId: string,
  format = "%(objectname) %(refname)",
): Promise<string | null> {
  const args = ["for-each-ref", `--format=${format}`];
  return await gitInRepo(envoy, projectId, args);
}

/** The commit `ref` names in `envoy`'s repository of `projectId`, or null. */
export async function tipOn(
  envoy: Envoy,
  projectId: string,
  ref = "refs/heads/main",
): Promise<string | null> {
  const args = ["rev-parse", "--verify", "-q", ref];
  return (await gitInRepo(envoy, projectId, args))?.trim() ?? null;
}

/**
 * Runs `git args…` in `envoy`'s repository of `projectId`; returns its
 * output, or null when git failed (as where there is no repository).
 */
async function gitInRepo(
  envoy: Envoy,
  projectId: string,
  args: string[],
): Promise<string | null> {
  const out = await runCommand("git", {
    args: ["-C", repoOf(envoy, projectId), ...args],
    env: GIT_ENV,
    clearEnv: true,
  });
  return out.code === 0 ? out.stdout : null;
}
