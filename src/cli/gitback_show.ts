/**
 * `vigo swarm gitback show <project>`: the fleet's view of one project,
 * asked of the fleet server with this envoy's certificate: which envoys hold
 * it, whether each is in sync, behind or diverged, and its members.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import { addressOf, loadAgentConfig } from "../envoy/config.ts";
import {
  readSwarmTls,
  swarmRequest,
  SwarmUnreachableError,
} from "../swarm/swarm_client.ts";
import type { GitbackRow } from "../fleet/gitback_mesh.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";
import { formatBytes } from "../platform/units.ts";

const USAGE = "vigo swarm gitback show <project id | handle> [--json]";

/** `vigo swarm gitback show`. */
export async function show(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    { json: { type: "boolean" } },
    USAGE,
    1,
  );
  if (positionals.length !== 1) {
    throw new UsageError("name the project to show.", `usage: ${USAGE}`);
  }
  if (Deno.uid() !== 0) {
    throw new CliError(
      "vigo swarm gitback show asks the fleet server with this envoy's certificate, whose key only root may read.",
      `run \`sudo ${USAGE.replace(" [--json]", "")}\`.`,
    );
  }
  const config = loadAgentConfig(systemPaths());
  if (!config.server) {
    throw new CliError(
      "no fleet server is configured on this envoy, so there is no fleet-wide view.",
      'add `server: { host: <server host> }` to agent.yaml (see docs/operations.md, "Running the fleet server"), or use `vigo swarm gitback project status` for this envoy\'s view.',
    );
  }
  const address = addressOf(config, config.server.host);
  const hostPart = address.includes(":") ? `[${address}]` : address;
  const url = `https://${hostPart}:${config.server.port}/fleet/gitback/${
    encodeURIComponent(positionals[0])
  }`;
  let response;
  try {
    response = await swarmRequest(readSwarmTls(config), url, {
      timeoutMs: 10_000,
      maxResponseBytes: 4 * 1024 * 1024,
      peer: config.server.host,
    });
  } catch (error) {
    if (error instanceof SwarmUnreachableError) {
      throw new CliError(
        `the fleet server ${error.message.replace(/\.$/, "")}.`,
        "check that `vigo server` runs there and that agent.yaml's `server:` and `hosts:` name it.",
      );
    }
    throw error;
  }
  if (response.status !== 200) {
    let message = `the fleet server answered ${response.status}`;
    try {
      message = response.json<{ error: string }>().error;
    } catch {
      // Not JSON: keep the status.
    }
    throw new CliError(
      message,
      response.status === 404
        ? "check the id or handle; a project appears once an envoy holding it has checked in."
        : undefined,
    );
  }
  const row = response.json<GitbackRow>();
  if (values.json) {
    console.log(JSON.stringify(row, null, 2));
    return 0;
  }
  console.log(`Project ${row.handle} (${row.scope})  ${row.badge}`);
  if (row.friendly_url) console.log(`Name: ${row.friendly_url}`);
  console.log(`URL:  ${row.url}`);
  for (const reason of row.reasons) console.log(`  - ${reason}`);
  const lines = [["ENVOY", "STATE", "SEQ", "REFS", "SIZE"]];
  for (const e of row.envoys) {
    lines.push([
      e.envoy,
      e.state + (e.stale ? " (stale)" : "") +
      (e.tombstoned ? " (tombstoned)" : ""),
      e.signed_seq === null ? "-" : String(e.signed_seq),
      String(e.heads_count),
      formatBytes(e.repo_bytes),
    ]);
  }
  const widths = lines[0].map((_, i) =>
    Math.max(...lines.map((l) => l[i].length))
  );
  for (const l of lines) {
    console.log(
      l.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd(),
    );
  }
  console.log(`Members (${row.members.length}):`);
  for (const [i, key] of row.members.entries()) {
    console.log(
      `  ${key}${i === 0 && key === row.founder ? " (founder)" : ""}`,
    );
  }
  return 0;
}
