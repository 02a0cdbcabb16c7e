/**
 * `vigo agent [--config FILE]`: run this envoy's agent in the foreground
 * (systemd runs it; see deploy/vigo-agent.service).
 *
 * The agent must run as root, because it reads and writes every user's
 * state. The one exception is a test or development fleet: when `VIGO_ROOT`
 * points somewhere other than `/`, every system path lives under that
 * directory and a non-root user may run the agent there.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import { runAgent } from "../agent/daemon.ts";
import { parseVerbArgs } from "./args.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { CliError } from "./errors.ts";

const USAGE = "vigo agent [--config FILE]";

/** `vigo agent`: one command with flags, so every argument goes to it. */
export const AGENT_GROUP: VerbGroup = {
  command: "vigo agent",
  noun: "agent argument",
  usage: `${USAGE}

(root) run this envoy's agent in the foreground; systemd runs it as
deploy/vigo-agent.service. --config names agent.yaml (default
<VIGO_ROOT>/etc/vigo/agent.yaml).`,
  verbs: {},
  fallback: agent,
};

/** Runs `vigo agent`; returns 0 after a clean stop (SIGTERM or SIGINT). */
export async function runAgentCommand(args: string[]): Promise<number> {
  return await dispatch(AGENT_GROUP, args);
}

async function agent(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { config: { type: "string" } },
    USAGE,
  );
  const paths = systemPaths();
  if (Deno.uid() !== 0 && paths.root.replace(/\/+$/, "") === "") {
    throw new CliError(
      "vigo agent must run as root: it manages every user's state.",
      "start it with systemd (deploy/vigo-agent.service) or sudo; a test fleet sets VIGO_ROOT to its own directory instead.",
    );
  }
  try {
    await runAgent({ paths, configFile: values.config as string | undefined });
  } catch (error) {
    throw new CliError(
      `the agent could not start: ${
        (error as Error).message.replace(/\.$/, "")
      }.`,
      "fix what the message names and start the agent again.",
    );
  }
  return 0;
}
