/**
 * `vigo agent [--config FILE]`: run the envoy's agent in the foreground.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import { runAgent } from "../agent/daemon.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError } from "./errors.ts";

/** Runs `vigo agent`. */
export async function runAgentCommand(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { config: { type: "string" } },
    "vigo agent [--config FILE]",
  );
  const paths = systemPaths();
  if (Deno.uid() !== 0 && paths.root === "/") {
    throw new CliError(
      "the agent manages every user's state and runs as root.",
      "start it with systemd (deploy/vigo-agent.service) or sudo; tests set VIGO_ROOT instead.",
    );
  }
  try {
    await runAgent({ paths, configFile: values.config as string | undefined });
  } catch (error) {
    throw new CliError(
      `the agent could not start: ${
        (error as Error).message.replace(/\.$/, "")
      }.`,
      "fix the configuration or TLS files named above and start it again.",
    );
  }
  return 0;
}
