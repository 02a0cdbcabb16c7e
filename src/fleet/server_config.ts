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
import {
  configError,
  configMapping,
  configPort,
  configSeconds,
  isAddress,
} from "../envoy/config_fields.ts";

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
    configError(
      file,
      `not valid YAML: ${(error as Error).message.split("\n")[0]}`,
    );
  }
  const c = configMapping(file, "server.yaml", doc, KNOWN_KEYS);
  if (typeof c.hostname !== "string" || !HOST_NAME.test(c.hostname)) {
    configError(
      file,
      "`hostname` is required and must be a host name: the CN of the server's certificate.",
    );
  }
  const listen = c.listen ?? "0.0.0.0";
  if (typeof listen !== "string" || !isAddress(listen)) {
    configError(file, "`listen` must be an IP address or a host name.");
  }
  const tls = configMapping(file, "tls", c.tls, ["ca", "cert", "key"]);
  const resolve = (value: unknown, key: string, name: string) => {
    if (value === undefined) return `${paths.etc}/${name}`;
    if (typeof value !== "string" || value === "") {
      configError(file, `\`tls.${key}\` must be a file path.`);
    }
    return value.startsWith("/") ? value : `${paths.etc}/${value}`;
  };
  const web = configMapping(file, "web", c.web, ["listen", "port"]);
  const webListen = web.listen ?? "127.0.0.1";
  if (typeof webListen !== "string" || !isLoopback(webListen)) {
    configError(
      file,
      "`web.listen` must be a loopback address (127.0.0.1, ::1 or localhost): the pages have no login, so operators reach them through an SSH tunnel.",
    );
  }
  const checkin = configSeconds(file, "checkin_s", c.checkin_s, 60);
  return {
    hostname: c.hostname,
    listen,
    port: configPort(file, "port", c.port ?? FLEET_PORT),
    tls: {
      ca: resolve(tls.ca, "ca", "ca.crt"),
      cert: resolve(tls.cert, "cert", "tls.crt"),
      key: resolve(tls.key, "key", "tls.key"),
    },
    web: {
      listen: webListen,
      port: configPort(file, "web.port", web.port ?? WEB_PORT),
    },
    checkinSeconds: checkin,
    paths,
  };
}
