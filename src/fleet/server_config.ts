/**
 * `etc/vigo/server.yaml`: who the fleet server is, where it listens for
 * check-ins (mutual TLS) and for the operator's browser (loopback only),
 * and the check-in period it judges staleness by.
 *
 * ```yaml
 * hostname: fleet-1          # its certificate's CN
 * listen: 0.0.0.0            # check-ins, mutual TLS
 * port: 1533
 * tls: { ca: ca.crt, cert: tls.crt, key: tls.key }   # under etc/vigo
 * web: { listen: 127.0.0.1, port: 8533 }              # loopback only
 * checkin_s: 60              # the agents' reactors.checkin_s
 * ```
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import type { SystemPaths } from "../platform/paths.ts";
import { readFileBounded } from "../platform/fs.ts";
import { HOST_NAME } from "../envoy/host_name.ts";

/** The fleet server's validated configuration. */
export interface ServerConfig {
  hostname: string;
  listen: string;
  port: number;
  tls: { ca: string; cert: string; key: string };
  web: { listen: string; port: number };
  /** Seconds between an agent's check-ins. */
  checkinSeconds: number;
  paths: SystemPaths;
}

/** The default check-in port. */
export const FLEET_PORT = 1533;
/** The default port of the web pages. */
export const WEB_PORT = 8533;

const KNOWN_KEYS = ["hostname", "listen", "port", "tls", "web", "checkin_s"];
const MAX_CONFIG_BYTES = 64 * 1024;
const ADDRESS = /^[0-9A-Za-z.:-]{1,253}$/;

/** The default location of server.yaml. */
export function serverConfigPath(paths: SystemPaths): string {
  return `${paths.etc}/server.yaml`;
}

/** Where the fleet store lives. */
export function fleetStorePath(paths: SystemPaths): string {
  return `${paths.varLib}/fleet/fleet.db`;
}

/** True for loopback addresses: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(address: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) ||
    address === "::1" || address === "localhost";
}

function fail(file: string, message: string): never {
  throw new Error(`${file}: ${message}`);
}

function port(file: string, key: string, value: unknown, fallback: number) {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > 65535
  ) {
    fail(file, `\`${key}\` must be an integer between 1 and 65535.`);
  }
  return value;
}

function mapping(
  file: string,
  key: string,
  value: unknown,
  allowed: string[],
): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    fail(file, `\`${key}\` must be a mapping.`);
  }
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    fail(
      file,
      `unknown key(s) under \`${key}\`: ${unknown.join(", ")}; expected ${
        allowed.join(", ")
      }.`,
    );
  }
  return record;
}

/**
 * Reads and validates server.yaml (at most 64 KiB). Unknown keys are errors;
 * a web address that is not loopback is refused, because the pages carry no
 * credential of their own.
 */
export function loadServerConfig(
  paths: SystemPaths,
  file: string = serverConfigPath(paths),
): ServerConfig {
  let doc: unknown;
  try {
    doc = parseYaml(
      new TextDecoder("utf-8", { fatal: true }).decode(
        readFileBounded(file, MAX_CONFIG_BYTES),
      ),
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${file} does not exist; write the server configuration first (see docs/operations.md, "Running the fleet server").`,
      );
    }
    fail(file, `not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  const c = mapping(file, "server.yaml", doc, KNOWN_KEYS);
  if (typeof c.hostname !== "string" || !HOST_NAME.test(c.hostname)) {
    fail(
      file,
      "`hostname` is required and must be a host name: the CN of the server's certificate.",
    );
  }
  const listen = c.listen ?? "0.0.0.0";
  if (typeof listen !== "string" || !ADDRESS.test(listen)) {
    fail(file, "`listen` must be an IP address or a host name.");
  }
  const tls = mapping(file, "tls", c.tls, ["ca", "cert", "key"]);
  const resolve = (value: unknown, key: string, name: string) => {
    if (value === undefined) return `${paths.etc}/${name}`;
    if (typeof value !== "string" || value === "") {
      fail(file, `\`tls.${key}\` must be a file path.`);
    }
    return value.startsWith("/") ? value : `${paths.etc}/${value}`;
  };
  const web = mapping(file, "web", c.web, ["listen", "port"]);
  const webListen = web.listen ?? "127.0.0.1";
  if (typeof webListen !== "string" || !isLoopback(webListen)) {
    fail(
      file,
      "`web.listen` must be a loopback address (127.0.0.1, ::1 or localhost): the pages have no login, so operators reach them through an SSH tunnel.",
    );
  }
  const checkin = c.checkin_s ?? 60;
  if (typeof checkin !== "number" || !(checkin > 0) || checkin > 86_400) {
    fail(
      file,
      "`checkin_s` must be a number of seconds above 0 and at most 86400.",
    );
  }
  return {
    hostname: c.hostname,
    listen,
    port: port(file, "port", c.port, FLEET_PORT),
    tls: {
      ca: resolve(tls.ca, "ca", "ca.crt"),
      cert: resolve(tls.cert, "cert", "tls.crt"),
      key: resolve(tls.key, "key", "tls.key"),
    },
    web: {
      listen: webListen,
      port: port(file, "web.port", web.port, WEB_PORT),
    },
    checkinSeconds: checkin,
    paths,
  };
}
