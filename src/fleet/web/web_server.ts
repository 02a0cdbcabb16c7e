/**
 * The fleet server's web pages over plain HTTP (`Deno.serve`): the
 * puddlemesh and the gitbackmesh as HTML, each with a JSON twin. Read-only;
 * the data comes from a {@link WebSource} the server supplies.
 *
 * The pages carry no authentication, so they are served on a loopback
 * address only ({@link startWebServer} refuses any other). Operators reach
 * them through an SSH tunnel that keeps the port number, since the Host
 * check below names the server's own port:
 *
 * ```sh
 * ssh -N -L 8080:127.0.0.1:8080 root@fleet-server   # then http://localhost:8080/
 * ```
 *
 * Defences, on every request:
 * - DNS rebinding: a page from another site that resolves its own name to
 *   127.0.0.1 would send its own Host, so anything but
 *   `127.x.y.z:<port>`, `localhost:<port>` or `[::1]:<port>` (this port)
 *   gets 421.
 * - Only GET and HEAD (else 405); no request bodies (413); a request
 *   target over {@link MAX_TARGET_CHARS} characters gets 414.
 * - Every answer carries a strict content security policy (no script, no
 *   external anything, no framing), `nosniff`, `no-referrer` and
 *   `no-store`.
 * - A source that throws answers 500 with a generic page and is logged;
 *   the server keeps serving. The handler reads nothing from the client
 *   beyond the request head and never waits, so a request costs the time
 *   it takes to render.
 *
 * Routes: `/` (302 to `/swarm/puddle`), `/swarm/puddle[.json]`,
 * `/swarm/gitback[.json]`, `/swarm/gitback/<project id>[.json]`; anything
 * else is 404. See docs/formats.md, "The fleet server's web pages".
 *
 * @module
 */

import type { Logger } from "../../platform/log.ts";
import type { PuddleRow } from "../health.ts";
import type { GitbackRow } from "../gitback_mesh.ts";
import {
  type PageInfo,
  renderErrorPage,
  renderGitbackPage,
  renderNotFoundPage,
  renderProjectPage,
  renderPuddlesPage,
} from "./pages.ts";

/** What the pages show; the fleet server implements it over its store. */
export interface WebSource {
  /** The puddlemesh rows at `now` (unix s). */
  puddles(now: number): PuddleRow[];
  /** The gitbackmesh rows at `now`. */
  gitback(now: number): GitbackRow[];
  /** One project's row at `now`, or null when no envoy reports it. */
  project(id: string, now: number): GitbackRow | null;
  /** The footer facts at `now`. */
  info(now: number): PageInfo;
}

/** Options of {@link startWebServer}. */
export interface WebServerOptions {
  /** A loopback address: `127.x.y.z`, `::1` or `localhost`. */
  listen: string;
  /** The TCP port; 0 picks a free one. */
  port: number;
  source: WebSource;
  log: Logger;
}

/** A running web server. */
export interface WebServer {
  /** The port it listens on. */
  port: number;
  /** Stops listening and waits for answers under way. */
  close(): Promise<void>;
}

/** The longest request target (path and query) answered; longer is 414. */
export const MAX_TARGET_CHARS = 2048;

const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const LOOPBACK_V4 = new RegExp(`^127\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const PROJECT_ROUTE = /^\/swarm\/gitback\/([0-9a-f]{64})(\.json)?$/;

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

const HTML = "text/html; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";
const TEXT = "text/plain; charset=utf-8";

/**
 * Whether `listen` is a loopback address this server may bind:
 * `127.0.0.0/8` in dotted decimal, `::1`, or `localhost`.
 */
export function isLoopbackListen(listen: string): boolean {
  return listen === "localhost" || listen === "::1" ||
    LOOPBACK_V4.test(listen);
}

/** Whether the Host header names this server on loopback, at `port`. */
function isOwnHost(host: string | null, port: number): boolean {
  if (host === null) return false;
  const value = host.toLowerCase();
  const at = value.lastIndexOf(":");
  const hasPort = at >= 0 && !value.endsWith("]");
  const address = hasPort ? value.slice(0, at) : value;
  // Browsers leave out the default port.
  const named = hasPort ? value.slice(at + 1) : "80";
  return named === String(port) &&
    (address === "localhost" || address === "[::1]" ||
      LOOPBACK_V4.test(address));
}

function answer(
  status: number,
  body: string,
  contentType: string,
  extra: Record<string, string> = {},
): Response {
  // Deno answers HEAD with these headers (and the length) but no body.
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": contentType, ...extra },
  });
}

function json(status: number, value: unknown): Response {
  return answer(
    status,
    JSON.stringify(value, null, 2) + "\n",
    JSON_TYPE,
  );
}

function twin(info: PageInfo, key: string, list: unknown[]) {
  return {
    generated_at: info.generatedAt,
    period_s: info.periodS,
    envoys: info.envoys,
    [key]: list,
  };
}

/** The answer to a well-formed GET or HEAD of `path`. */
function route(
  path: string,
  source: WebSource,
  now: number,
): Response {
  switch (path) {
    case "/":
      return answer(302, "See /swarm/puddle.\n", TEXT, {
        location: "/swarm/puddle",
      });
    case "/swarm/puddle":
      return answer(
        200,
        renderPuddlesPage(source.puddles(now), source.info(now)),
        HTML,
      );
    case "/swarm/puddle.json":
      return json(
        200,
        twin(source.info(now), "puddles", source.puddles(now)),
      );
    case "/swarm/gitback":
      return answer(
        200,
        renderGitbackPage(source.gitback(now), source.info(now)),
        HTML,
      );
    case "/swarm/gitback.json":
      return json(
        200,
        twin(source.info(now), "projects", source.gitback(now)),
      );
  }
  const project = PROJECT_ROUTE.exec(path);
  if (!project) {
    return answer(
      404,
      renderNotFoundPage(`There is no page at ${path}.`),
      HTML,
    );
  }
  const [, id, asJson] = project;
  const row = source.project(id, now);
  const missing = `No envoy reports the project ${id}.`;
  if (asJson) {
    return row ? json(200, row) : json(404, { error: missing });
  }
  return row
    ? answer(200, renderProjectPage(row, source.info(now)), HTML)
    : answer(404, renderNotFoundPage(missing), HTML);
}

function handle(
  request: Request,
  port: number,
  source: WebSource,
  log: Logger,
): Response {
  const host = request.headers.get("host");
  if (!isOwnHost(host, port)) {
    log.warn("web request with a foreign Host refused", {
      host: (host ?? "").slice(0, 256),
    });
    return answer(
      421,
      "This server answers only to its loopback address and port.\n",
      TEXT,
    );
  }
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return answer(400, "The request target is malformed.\n", TEXT);
  }
  if (url.pathname.length + url.search.length > MAX_TARGET_CHARS) {
    return answer(
      414,
      `The request target is longer than ${MAX_TARGET_CHARS} characters.\n`,
      TEXT,
    );
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return answer(
      405,
      "These pages are read-only: use GET or HEAD.\n",
      TEXT,
      { allow: "GET, HEAD" },
    );
  }
  const length = request.headers.get("content-length");
  if (
    (length !== null && length !== "0") ||
    request.headers.has("transfer-encoding")
  ) {
    return answer(413, "This server accepts no request body.\n", TEXT);
  }
  const now = Math.floor(Date.now() / 1000);
  try {
    return route(url.pathname, source, now);
  } catch (error) {
    log.error("a web page could not be generated", {
      path: url.pathname,
      error: error instanceof Error ? error.message : String(error),
    });
    return answer(
      500,
      renderErrorPage(
        "Server error",
        "This page could not be generated; the fleet server's log says why. Try again in a moment.",
      ),
      HTML,
    );
  }
}

/**
 * Starts serving the pages on `listen`:`port` (0 picks a port). Rejects
 * when `listen` is not a loopback address (the pages have no
 * authentication and are reached through an SSH tunnel, see the module
 * doc) or the address cannot be bound.
 */
export function startWebServer(options: WebServerOptions): Promise<WebServer> {
  // The Promise constructor turns a synchronous throw into a rejection.
  return new Promise((resolve) => resolve(serve(options)));
}

function serve(options: WebServerOptions): WebServer {
  const { listen, source, log } = options;
  if (!isLoopbackListen(listen)) {
    throw new Error(
      `the web pages listen on a loopback address only (127.x.y.z, ::1 or localhost), not ${
        JSON.stringify(listen)
      }: they have no authentication; reach them through an SSH tunnel.`,
    );
  }
  if (
    !Number.isInteger(options.port) || options.port < 0 ||
    options.port > 65535
  ) {
    throw new Error(
      `the web port ${options.port} is not a TCP port (0 to 65535; 0 picks a free one).`,
    );
  }
  let port = 0;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen,
      port: options.port,
      onListen: () => {},
      onError: (error) => {
        log.error("a web request failed", {
          error: error instanceof Error ? error.message : String(error),
        });
        return answer(
          500,
          "Internal server error.\n",
          TEXT,
        );
      },
    }, (request) => handle(request, port, source, log));
  } catch (error) {
    throw new Error(
      `the web pages cannot listen on ${listen} port ${options.port}: ${
        (error as Error).message
      }; choose another address or port, or stop what uses it.`,
    );
  }
  port = server.addr.port;
  log.info("web pages listening", { address: listen, port });
  return {
    port,
    close: async () => {
      await server.shutdown();
    },
  };
}
