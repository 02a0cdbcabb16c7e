/**
 * `vigo swarm gitback project list [--json]`: the projects this user holds
 * on this envoy.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { shortId } from "./format.ts";
import { listProjects, readTokens } from "../gitback/project.ts";
import { parseVerbArgs } from "./args.ts";

/** Runs `vigo swarm gitback project list`. */
export function projectList(args: string[]): number {
  const { values } = parseVerbArgs(
    args,
    { json: { type: "boolean" } },
    "vigo swarm gitback project list [--json]",
  );
  const paths = userPaths();
  const projects = listProjects(paths.gitbackDir);
  if (values.json) {
    console.log(JSON.stringify(projects, null, 2));
    return 0;
  }
  if (projects.length === 0) {
    console.log(
      "no projects; found one with `vigo swarm gitback project init <handle>`.",
    );
    return 0;
  }
  const rows = projects.map((p) => {
    let tokens = 0;
    try {
      tokens = readTokens(paths.gitbackDir, p.project_id).chain.length;
    } catch {
      // Shown as 0.
    }
    return [
      p.handle,
      p.scope,
      String(p.members.length),
      String(tokens),
      shortId(p.project_id),
    ];
  });
  const header = ["HANDLE", "SCOPE", "MEMBERS", "TOKENS", "PROJECT_ID"];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  for (const row of [header, ...rows]) {
    console.log(
      row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
        .join("  "),
    );
  }
  return 0;
}
