/**
 * `vigo server [--config FILE]`: run the fleet server in the foreground
 * (systemd runs it; see deploy/vigo-server.service).
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import { runFleetServer } from "../fleet/server.ts";
import { parseVerbArgs } from "./args.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { CliError } from "./errors.ts";

const USAGE = "vigo server [--config FILE]";

/** `vigo server`: one command with flags. */
export const SERVER_GROUP: VerbGroup = {
  command: "vigo server",
  noun: "server argument",
  usage: `${USAGE}

(root) run the fleet server in the foreground: agents check in with it,
it joins the friendly-name map, hands out the published usercrate policy
and serves the read-only web pages on a loopback address. systemd runs it
as deploy/vigo-server.service. --config names server.yaml (default
<VIGO_ROOT>/etc/vigo/server.yaml).`,
  verbs: {},
  fallback: server,
};

/** Runs `vigo server`; returns 0 after a clean stop. */
export async function runServerCommand(args: string[]): Promise<number> {
  return await dispatch(SERVER_GROUP, args);
}

async function server(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { config: { type: "string" } },
    USAGE,
  );
  const paths = systemPaths();
  if (Deno.uid() !== 0 && paths.root.replace(/\/+$/, "") === "") {
    throw new CliError(
      "vigo server must run as root: its key and store are root's.",
      "start it with systemd (deploy/vigo-server.service) or sudo; a test fleet sets VIGO_ROOT to its own directory instead.",
    );
  }
  try {
    await runFleetServer({
      paths,
      configFile: values.config as string | undefined,
    });
  } catch (error) {
    throw new CliError(
      `the fleet server could not start: ${
        (error as Error).message.replace(/\.$/, "")
      }.`,
      "fix what the message names and start it again.",
    );
  }
  return 0;
}
