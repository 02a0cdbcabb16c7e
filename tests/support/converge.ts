/**
 * Waiting for replicas to hold what the origin holds: the same refs, as a
 * given listing of them prints, on every envoy named.
 *
 * @module
 */

import type { Envoy } from "../../scripts/fleet.ts";
import { forEachRef } from "./envoy_files.ts";
import { waitUntil } from "./wait.ts";

/** How a test lists an envoy's refs of a project (one string to compare). */
export type RefListing = (envoy: Envoy, projectId: string) => Promise<string>;

/**
 * `envoy`'s refs of the project, `format` per line, or a note that it has
 * no repository; without `refs/gitback/` (kept lost tips) unless `lost`.
 */
export function refListing(
  format = "%(objectname) %(refname)",
  lost = true,
): RefListing {
  return async (envoy, projectId) => {
    const refs = await forEachRef(envoy, projectId, format);
    if (refs === null) return `(no repository on ${envoy.name})`;
    return lost
      ? refs
      : refs.split("\n").filter((line) =>
        line !== "" && !line.includes(" refs/gitback/")
      ).join("\n");
  };
}

/**
 * Waits until every envoy in `replicas` lists exactly `origin`'s refs;
 * returns the listing. On a timeout the error shows what the replica has
 * and the last warnings of both logs.
 */
export async function converged(
  origin: Envoy,
  replicas: Envoy[],
  projectId: string,
  listing: RefListing = refListing(),
): Promise<string> {
  const expected = await listing(origin, projectId);
  for (const replica of replicas) {
    try {
      await waitUntil(
        `${replica.name}'s refs to equal ${origin.name}'s:\n${expected}`,
        async () => await listing(replica, projectId) === expected,
      );
    } catch (error) {
      const log = [origin, replica].map((e) =>
        Deno.readTextFileSync(e.log).split("\n").filter((l) =>
          / WARN | ERROR |fan-out|delivery|push/.test(l)
        ).slice(-10).join("\n")
      ).join("\n--\n");
      throw new Error(
        `${(error as Error).message}\n${replica.name} has:\n${await listing(
          replica,
          projectId,
        )}\nits log ends:\n${log}`,
      );
    }
  }
  return expected;
}
