/**
 * An in-memory agent configuration for tests that run one piece of the
 * agent (the announcer) without a fleet.
 *
 * @module
 */

import type { AgentConfig } from "../../src/envoy/config.ts";
import { systemPathsUnder } from "../../src/platform/paths.ts";

/** A config for `hostname` rooted at `root`, announcing on `port`. */
export function announcerConfig(options: {
  hostname: string;
  root: string;
  listen: string;
  port: number;
  periodSeconds: number;
}): AgentConfig {
  const { root } = options;
  return {
    hostname: options.hostname,
    listen: options.listen,
    port: 1531,
    tls: { ca: "", cert: "", key: "" },
    hosts: {},
    gitback: { enabled: ["*"] },
    homes: {},
    managedUsers: "homes",
    reactors: {
      sweepSeconds: 60,
      catchupSeconds: 45,
      gossipSeconds: 300,
      namesSeconds: 900,
      checkinSeconds: 60,
    },
    server: null,
    announce: {
      group: "239.255.15.31",
      port: options.port,
      periodSeconds: options.periodSeconds,
      staleSeconds: 10,
    },
    paths: systemPathsUnder(root),
  };
}
