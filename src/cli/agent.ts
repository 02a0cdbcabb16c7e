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

import { runAgent } from "../agent/daemon.ts";
import { daemonGroup } from "./daemon_verb.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";

/** `vigo agent`: one command with flags, so every argument goes to it. */
export const AGENT_GROUP: VerbGroup = daemonGroup({
  command: "vigo agent",
  description:
    `(root) run this envoy's agent in the foreground; systemd runs it as
deploy/vigo-agent.service. --config names agent.yaml (default
<VIGO_ROOT>/etc/vigo/agent.yaml).`,
  daemon: "the agent",
  whyRoot: "it manages every user's state.",
  unit: "deploy/vigo-agent.service",
  run: runAgent,
});

/** Runs `vigo agent`; returns 0 after a clean stop (SIGTERM or SIGINT). */
export async function runAgentCommand(args: string[]): Promise<number> {
  return await dispatch(AGENT_GROUP, args);
}
