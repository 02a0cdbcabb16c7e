/**
 * `etc/vigo/agent.yaml`: who this envoy is, where it listens, which hosts it
 * knows, and how often its reactors run.
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import type { SystemPaths } from "../platform/paths.ts";
import { readFileBounded } from "../platform/fs.ts";
import { userByName } from "../platform/users.ts";
import { HOST_NAME, IPV4 } from "./host_name.ts";
import {
  configError,
  configMapping,
  configPort,
  configSeconds,
  isAddress,
} from "./config_fields.ts";

/** The agent's validated configuration. */
export interface AgentConfig {
  /** This envoy's name; its certificate's CN must be the same. */
  hostname: string;
  /** Address the swarm listener binds (default `0.0.0.0`). */
  listen: string;
  /** Swarm port, here and on every peer (default 1531). */
  port: number;
  /** Absolute paths of the fleet CA certificate, this envoy's certificate and key. */
  tls: { ca: string; cert: string; key: string };
  /** Known hosts: name → address. */
  hosts: Record<string, string>;
  /** `swarm.gitback.enabled`: host patterns (`*` globs) where gitback runs. */
  gitback: { enabled: string[] };
  /** User → home overrides (test fleets); passwd otherwise. */
  homes: Record<string, string>;
  /**
   * `managed_users`: whose homes the agent acts on. `passwd` (default):
   * every passwd account, with `homes:` entries overriding and adding.
   * `homes`: only the users listed under `homes:`, so that several agents on
   * one machine (local fleets) never touch each other's or the machine's
   * users.
   */
  managedUsers: ManagedUsers;
  /** Reactor periods in seconds (fractions allowed, for test fleets). */
  reactors: {
    sweepSeconds: number;
    catchupSeconds: number;
    gossipSeconds: number;
    namesSeconds: number;
    /** Check-ins with the fleet server (`reactors.checkin_s`). */
    checkinSeconds: number;
  };
  /** LAN announcements of held projects (UDP). */
  announce: {
    /** Multicast group; announcements also go by unicast to every known host. */
    group: string;
    /** UDP port of announcements. */
    port: number;
    /** Seconds between announcements. */
    periodSeconds: number;
    /** An announcement older than this no longer counts. */
    staleSeconds: number;
  };
  /**
   * `server:`: the fleet server this envoy checks in with, reached at
   * `hosts:`' address for `host`; null when agent.yaml names none.
   */
  server: FleetServer | null;
  /** The roots the configuration was loaded under. */
  paths: SystemPaths;
}

/** Where the fleet server listens: its host name (its certificate's CN) and port. */
export interface FleetServer {
  host: string;
  port: number;
}

/** The fleet server's default port. */
export const DEFAULT_FLEET_PORT = 1533;

/** The values of agent.yaml's `managed_users`. */
export type ManagedUsers = "passwd" | "homes";

const MANAGED_USERS: readonly ManagedUsers[] = ["passwd", "homes"];
const MAX_CONFIG_BYTES = 64 * 1024;
const KNOWN_KEYS = [
  "hostname",
  "listen",
  "port",
  "tls",
  "hosts",
  "swarm",
  "homes",
  "managed_users",
  "reactors",
  "announce",
  "server",
];

/** The default location of agent.yaml. */
export function agentConfigPath(paths: SystemPaths): string {
  return `${paths.etc}/agent.yaml`;
}

function stringMap(
  file: string,
  key: string,
  value: unknown,
  check: (text: string) => boolean = () => true,
  what = "a non-empty string",
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(configMapping(file, key, value))) {
    if (typeof v !== "string" || v === "" || !check(v)) {
      configError(file, `\`${key}.${k}\` must be ${what}.`);
    }
    out[k] = v;
  }
  return out;
}

function knownHosts(file: string, value: unknown): Record<string, string> {
  const hosts = stringMap(
    file,
    "hosts",
    value,
    isAddress,
    "an IP address or a host name",
  );
  for (const name of Object.keys(hosts)) {
    if (!HOST_NAME.test(name)) {
      configError(
        file,
        `\`hosts\`: ${JSON.stringify(name)} is not a host name.`,
      );
    }
  }
  return hosts;
}

function fleetServer(file: string, value: unknown): FleetServer | null {
  if (value === undefined || value === null) return null;
  const server = configMapping(file, "server", value, ["host", "port"]);
  if (typeof server.host !== "string" || !HOST_NAME.test(server.host)) {
    configError(
      file,
      "`server.host` is required and must be a host name: the CN of the fleet server's certificate (its address goes under `hosts:`).",
    );
  }
  return {
    host: server.host,
    port: configPort(file, "server.port", server.port ?? DEFAULT_FLEET_PORT),
  };
}

function managedUsers(file: string, value: unknown): ManagedUsers {
  if (value === undefined) return "passwd";
  if (!MANAGED_USERS.includes(value as ManagedUsers)) {
    configError(
      file,
      `\`managed_users\` must be \`passwd\` (every passwd account, \`homes:\` overriding) or \`homes\` (only the users listed under \`homes:\`), not ${
        JSON.stringify(value)
      }.`,
    );
  }
  return value as ManagedUsers;
}

/**
 * Reads and validates agent.yaml (default `<etc>/agent.yaml`), at most
 * 64 KiB. Every error names the file and the offending key; unknown keys are
 * errors so that a misspelt setting is never silently ignored.
 */
export function loadAgentConfig(
  paths: SystemPaths,
  file: string = agentConfigPath(paths),
): AgentConfig {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      readFileBounded(file, MAX_CONFIG_BYTES),
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${file} does not exist; write the agent configuration first (see docs/formats.md, "Agent configuration").`,
      );
    }
    if (error instanceof TypeError) configError(file, "is not UTF-8 text.");
    throw error;
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    configError(
      file,
      `not valid YAML: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    configError(file, "must be a YAML mapping with at least `hostname`.");
  }
  const c = configMapping(file, "agent.yaml", doc);
  const unknown = Object.keys(c).filter((k) => !KNOWN_KEYS.includes(k));
  if (unknown.length > 0) {
    configError(
      file,
      `unknown key(s): ${unknown.join(", ")}; expected ${
        KNOWN_KEYS.join(", ")
      }.`,
    );
  }
  if (typeof c.hostname !== "string" || !HOST_NAME.test(c.hostname)) {
    configError(
      file,
      "`hostname` is required and must be a host name (letters, digits, dashes, dots).",
    );
  }
  const listen = c.listen ?? "0.0.0.0";
  if (typeof listen !== "string" || !isAddress(listen)) {
    configError(file, "`listen` must be an IP address or a host name.");
  }
  const port = configPort(file, "port", c.port ?? 1531);
  const tls = stringMap(
    file,
    "tls",
    configMapping(file, "tls", c.tls, ["ca", "cert", "key"]),
    undefined,
    "a file path",
  );
  const resolve = (p: string | undefined, name: string) =>
    p === undefined
      ? `${paths.etc}/${name}`
      : p.startsWith("/")
      ? p
      : `${paths.etc}/${p}`;
  const swarm = configMapping(file, "swarm", c.swarm, ["gitback"]);
  const gitback = configMapping(file, "swarm.gitback", swarm.gitback, [
    "enabled",
  ]);
  const enabled = gitback.enabled ?? [];
  if (
    !Array.isArray(enabled) ||
    enabled.some((p) => typeof p !== "string" || p === "")
  ) {
    configError(
      file,
      '`swarm.gitback.enabled` must be a list of host patterns such as "*" or "envoy-*".',
    );
  }
  const reactors = configMapping(file, "reactors", c.reactors, [
    "sweep_s",
    "catchup_s",
    "gossip_s",
    "names_s",
    "checkin_s",
  ]);
  const announce = configMapping(file, "announce", c.announce, [
    "group",
    "port",
    "period_s",
    "stale_s",
  ]);
  const group = announce.group ?? "239.255.15.31";
  if (
    typeof group !== "string" || !IPV4.test(group) ||
    !/^2(2[4-9]|3\d)\./.test(group)
  ) {
    configError(
      file,
      "`announce.group` must be an IPv4 multicast address (224.0.0.0/4).",
    );
  }
  return {
    hostname: c.hostname,
    listen,
    port,
    tls: {
      ca: resolve(tls.ca, "ca.crt"),
      cert: resolve(tls.cert, "tls.crt"),
      key: resolve(tls.key, "tls.key"),
    },
    hosts: knownHosts(file, c.hosts),
    gitback: { enabled: enabled as string[] },
    homes: stringMap(
      file,
      "homes",
      c.homes,
      (p) => p.startsWith("/"),
      "an absolute path",
    ),
    managedUsers: managedUsers(file, c.managed_users),
    reactors: {
      sweepSeconds: configSeconds(
        file,
        "reactors.sweep_s",
        reactors.sweep_s,
        60,
      ),
      catchupSeconds: configSeconds(
        file,
        "reactors.catchup_s",
        reactors.catchup_s,
        45,
      ),
      gossipSeconds: configSeconds(
        file,
        "reactors.gossip_s",
        reactors.gossip_s,
        300,
      ),
      namesSeconds: configSeconds(
        file,
        "reactors.names_s",
        reactors.names_s,
        900,
      ),
      checkinSeconds: configSeconds(
        file,
        "reactors.checkin_s",
        reactors.checkin_s,
        60,
      ),
    },
    announce: {
      group,
      port: configPort(file, "announce.port", announce.port ?? 1532),
      periodSeconds: configSeconds(
        file,
        "announce.period_s",
        announce.period_s,
        30,
      ),
      staleSeconds: configSeconds(
        file,
        "announce.stale_s",
        announce.stale_s,
        120,
      ),
    },
    server: fleetServer(file, c.server),
    paths,
  };
}

/** The address to reach `host` at: the known-hosts entry, or the name. */
export function addressOf(config: AgentConfig, host: string): string {
  return config.hosts[host] ?? host;
}

function globMatches(pattern: string, text: string): boolean {
  const regex = new RegExp(
    "^" +
      pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(
        /\?/g,
        ".",
      ) + "$",
  );
  return regex.test(text);
}

/** True when this envoy's hostname matches `swarm.gitback.enabled`. */
export function gitbackEnabledHere(config: AgentConfig): boolean {
  return config.gitback.enabled.some((p) => globMatches(p, config.hostname));
}

/**
 * The home of `user`: the `homes:` override, else passwd; with
 * `managed_users: homes`, only the override (an unlisted user has none).
 */
export function homeOf(config: AgentConfig, user: string): string | undefined {
  if (Object.hasOwn(config.homes, user)) return config.homes[user];
  if (config.managedUsers === "homes") return undefined;
  return userByName(user)?.home;
}
