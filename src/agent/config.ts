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

/** The agent's validated configuration. */
export interface AgentConfig {
  hostname: string;
  listen: string;
  port: number;
  tls: { ca: string; cert: string; key: string };
  /** Known hosts: name → address. */
  hosts: Record<string, string>;
  /** `swarm.gitback.enabled`: host patterns (`*` globs) where gitback runs. */
  gitback: { enabled: string[] };
  /** User → home overrides (test fleets); passwd otherwise. */
  homes: Record<string, string>;
  reactors: {
    sweepSeconds: number;
    catchupSeconds: number;
    gossipSeconds: number;
    namesSeconds: number;
  };
  /** LAN announcements of held projects (UDP). */
  announce: {
    /** Multicast group; announcements also go by unicast to every known host. */
    group: string;
    port: number;
    periodSeconds: number;
    /** An announcement older than this no longer counts. */
    staleSeconds: number;
  };
  /** The roots the configuration was loaded under. */
  paths: SystemPaths;
}

const MAX_CONFIG_BYTES = 64 * 1024;
const KNOWN_KEYS = [
  "announce",
  "hostname",
  "listen",
  "port",
  "tls",
  "hosts",
  "swarm",
  "homes",
  "reactors",
];

/** The default location of agent.yaml. */
export function agentConfigPath(paths: SystemPaths): string {
  return `${paths.etc}/agent.yaml`;
}

function fail(file: string, message: string): never {
  throw new Error(`${file}: ${message}`);
}

function stringMap(
  file: string,
  key: string,
  value: unknown,
): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    fail(file, `\`${key}\` must be a mapping.`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string" || v === "") {
      fail(file, `\`${key}.${k}\` must be a non-empty string.`);
    }
    out[k] = v;
  }
  return out;
}

function seconds(
  file: string,
  key: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || value > 86_400) {
    fail(
      file,
      `\`${
        key.includes(".") ? key : `reactors.${key}`
      }\` must be a number of seconds between 0 and 86400.`,
    );
  }
  return value;
}

/** Reads and validates agent.yaml (default `<etc>/agent.yaml`). */
export function loadAgentConfig(
  paths: SystemPaths,
  file = agentConfigPath(paths),
): AgentConfig {
  let text: string;
  try {
    text = new TextDecoder().decode(readFileBounded(file, MAX_CONFIG_BYTES));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${file} does not exist; write the agent configuration first (see docs/formats.md).`,
      );
    }
    throw error;
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    fail(file, `not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    fail(file, "must be a YAML mapping.");
  }
  const c = doc as Record<string, unknown>;
  const unknown = Object.keys(c).filter((k) => !KNOWN_KEYS.includes(k));
  if (unknown.length > 0) fail(file, `unknown key(s): ${unknown.join(", ")}.`);
  if (
    typeof c.hostname !== "string" || !/^[A-Za-z0-9.-]{1,253}$/.test(c.hostname)
  ) {
    fail(file, "`hostname` is required and must be a host name.");
  }
  const listen = c.listen ?? "0.0.0.0";
  if (typeof listen !== "string") fail(file, "`listen` must be an address.");
  const port = c.port ?? 1531;
  if (
    typeof port !== "number" || !Number.isInteger(port) || port < 1 ||
    port > 65535
  ) {
    fail(file, "`port` must be an integer between 1 and 65535.");
  }
  const tls = stringMap(file, "tls", c.tls);
  const resolve = (p: string | undefined, name: string) =>
    p === undefined
      ? `${paths.etc}/${name}`
      : p.startsWith("/")
      ? p
      : `${paths.etc}/${p}`;
  const swarm = (c.swarm ?? {}) as Record<string, unknown>;
  const gitback = (swarm.gitback ?? {}) as Record<string, unknown>;
  const enabled = gitback.enabled ?? [];
  if (!Array.isArray(enabled) || enabled.some((p) => typeof p !== "string")) {
    fail(file, "`swarm.gitback.enabled` must be a list of host patterns.");
  }
  const reactors = (c.reactors ?? {}) as Record<string, unknown>;
  if (typeof reactors !== "object") fail(file, "`reactors` must be a mapping.");
  const announce = (c.announce ?? {}) as Record<string, unknown>;
  if (typeof announce !== "object") fail(file, "`announce` must be a mapping.");
  const group = announce.group ?? "239.255.15.31";
  if (typeof group !== "string" || !/^2(2[4-9]|3\d)\./.test(group)) {
    fail(
      file,
      "`announce.group` must be an IPv4 multicast address (224.0.0.0/4).",
    );
  }
  const announcePort = announce.port ?? 1532;
  if (
    typeof announcePort !== "number" || !Number.isInteger(announcePort) ||
    announcePort < 1 || announcePort > 65535
  ) {
    fail(file, "`announce.port` must be an integer between 1 and 65535.");
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
    hosts: stringMap(file, "hosts", c.hosts),
    gitback: { enabled: enabled as string[] },
    homes: stringMap(file, "homes", c.homes),
    reactors: {
      sweepSeconds: seconds(file, "sweep_s", reactors.sweep_s, 60),
      catchupSeconds: seconds(file, "catchup_s", reactors.catchup_s, 45),
      gossipSeconds: seconds(file, "gossip_s", reactors.gossip_s, 300),
      namesSeconds: seconds(file, "names_s", reactors.names_s, 900),
    },
    announce: {
      group,
      port: announcePort,
      periodSeconds: seconds(file, "announce.period_s", announce.period_s, 30),
      staleSeconds: seconds(file, "announce.stale_s", announce.stale_s, 120),
    },
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

/** The home of `user`: the override, else passwd. */
export function homeOf(config: AgentConfig, user: string): string | undefined {
  return config.homes[user] ?? userByName(user)?.home;
}
