/**
 * Every route the swarm listener serves.
 *
 * @module
 */

import type { AgentConfig } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import type { SwarmRoute } from "../swarm/swarm_server.ts";
import { pairClaimRoute, rekeyClaimRoute } from "./pair_claim.ts";
import { bundleRoute, membersRoute, pushRoute } from "./push_route.ts";
import { gossipRoutes } from "./gossip.ts";
import { chainsRoute } from "./member_adopt.ts";

/** The routes of this agent. */
export function swarmRoutes(config: AgentConfig, log: Logger): SwarmRoute[] {
  return [
    {
      method: "GET",
      pattern: "/swarm/health",
      handler: (ctx) => ({
        status: 200,
        json: { hostname: config.hostname, peer: ctx.peer.subject },
      }),
    },
    pairClaimRoute(config, log),
    rekeyClaimRoute(config, log),
    pushRoute(config, log),
    bundleRoute(config, log),
    membersRoute(config, log),
    ...gossipRoutes(config, log),
    chainsRoute(config),
  ];
}
