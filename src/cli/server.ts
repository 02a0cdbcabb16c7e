/**
 * `vigo server [--config FILE]`: run the fleet server in the foreground
 * (systemd runs it; see deploy/vigo-server.service).
 *
 * @module
 */

import { runFleetServer } from "../fleet/server.ts";
import { daemonGroup } from "./daemon_verb.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";

/** `vigo server`: one command with flags. */
export const SERVER_GROUP: VerbGroup = daemonGroup({
  command: "vigo server",
  description:
    `(root) run the fleet server in the foreground: agents check in with it,
it joins the friendly-name map, hands out the published usercrate policy
and serves the read-only web pages on a loopback address. systemd runs it
as deploy/vigo-server.service. --config names server.yaml (default
<VIGO_ROOT>/etc/vigo/server.yaml).`,
  daemon: "the fleet server",
  whyRoot: "its key and store are root's.",
  unit: "deploy/vigo-server.service",
  run: runFleetServer,
});

/** Runs `vigo server`; returns 0 after a clean stop. */
export async function runServerCommand(args: string[]): Promise<number> {
  return await dispatch(SERVER_GROUP, args);
}
