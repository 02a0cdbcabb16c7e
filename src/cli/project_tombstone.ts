/**
 * Whether a project is tombstoned, as a CLI verb must know before it adds
 * to it: by the founder's statement in the user's `project.json`, or by
 * the one the local agent holds (which reached it from another envoy).
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import type { ProjectConfig } from "../gitback/project.ts";
import { askAgentStatus } from "../gitback/envoy_status.ts";
import { CliError } from "./errors.ts";

/** Refuses `what` on a tombstoned project, saying where it went. */
export async function refuseTombstoned(
  project: ProjectConfig,
  what: string,
): Promise<void> {
  if (project.tombstone) {
    throw new CliError(`project ${project.handle} is tombstoned; ${what}.`);
  }
  const here = (await askAgentStatus(`${systemPaths().varRun}/gitback.sock`))
    ?.projects.find((p) => p.project_id === project.project_id);
  if (here?.tombstoned) {
    throw new CliError(
      `project ${project.handle} is tombstoned${
        here.successor ? ` (re-founded as ${here.successor})` : ""
      }; ${what}.`,
    );
  }
}
