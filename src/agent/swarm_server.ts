/**
 * The swarm listener: HTTPS with mutual TLS on port 1531. Only clients with
 * a certificate from the fleet CA complete the handshake, so no handler ever
 * sees a stranger. Bodies are size-capped, requests time-limited, and every
 * error is a JSON `{"error": "…"}` with a 4xx/5xx status.
 *
 * `Deno.serve` cannot ask for client certificates; `node:https` can.
 *
 * @module
 */

import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "./log.ts";

/** Who called, from the verified client certificate. */
export interface PeerIdentity {
  /** The certificate's subject CN (the envoy's host name). */
  subject: string;
  fingerprint256: string;
}

/** What a handler sees. */
export interface SwarmContext {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: Record<string, string | undefined>;
  peer: PeerIdentity;
  body: Uint8Array;
  /** The body as JSON; a 400 when it is not. */
  json<T = unknown>(): T;
}

/** What a handler returns. */
export interface SwarmReply {
  status: number;
  json?: unknown;
  body?: Uint8Array;
  headers?: Record<string, string>;
}

/** A request handler. */
export type SwarmHandler = (
  ctx: SwarmContext,
) => SwarmReply | Promise<SwarmReply>;

/** One route: method, a path pattern with `:name` parameters, a handler. */
export interface SwarmRoute {
  method: "GET" | "POST";
  pattern: string;
  maxBodyBytes?: number;
  handler: SwarmHandler;
}

/** An error a handler throws to answer with `status`. */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** Options for {@link startSwarmServer}. */
export interface SwarmServerOptions {
  listen: string;
  port: number;
  caPem: string;
  certPem: string;
  keyPem: string;
  routes: SwarmRoute[];
  log: Logger;
  defaultMaxBodyBytes?: number;
  requestTimeoutMs?: number;
}

interface CompiledRoute extends SwarmRoute {
  regex: RegExp;
  names: string[];
}

function compile(route: SwarmRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.pattern.split("/").map((part) => {
    if (part.startsWith(":")) {
      names.push(part.slice(1));
      return "([^/]+)";
    }
    return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }).join("/");
  return { ...route, regex: new RegExp(`^${source}$`), names };
}

function sendJson(res: ServerResponse, status: number, value: unknown) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** Reads a request body up to `limit` bytes, or throws 413. */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) {
    return Promise.reject(
      new HttpError(413, `request body over ${limit} bytes.`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    req.on("data", (chunk: Uint8Array) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `request body over ${limit} bytes.`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      const body = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        body.set(c, at);
        at += c.length;
      }
      resolve(body);
    });
    req.on("error", reject);
  });
}

/** Starts the listener; resolves once it accepts connections. */
export async function startSwarmServer(
  options: SwarmServerOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const routes = options.routes.map(compile);
  const defaultLimit = options.defaultMaxBodyBytes ?? 1024 * 1024;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const { log } = options;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    const cert = socket.getPeerCertificate?.();
    // rejectUnauthorized already refused the handshake; this is a second lock.
    if (!socket.authorized || !cert || !cert.subject) {
      sendJson(res, 401, {
        error: "a client certificate from the fleet CA is required.",
      });
      return;
    }
    const peer: PeerIdentity = {
      subject: String(cert.subject.CN ?? ""),
      fingerprint256: String(cert.fingerprint256 ?? ""),
    };
    const url = new URL(req.url ?? "/", "https://swarm.invalid");
    const timer = setTimeout(() => {
      if (!res.headersSent) {
        sendJson(res, 408, { error: "request took too long." });
      }
      req.destroy();
    }, timeoutMs);
    let status = 500;
    try {
      const matching = routes.filter((r) => r.regex.test(url.pathname));
      if (matching.length === 0) {
        throw new HttpError(404, `no route for ${url.pathname}.`);
      }
      const route = matching.find((r) => r.method === req.method);
      if (!route) {
        throw new HttpError(
          405,
          `${req.method} is not allowed on ${url.pathname}.`,
        );
      }
      const match = route.regex.exec(url.pathname)!;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        let value: string;
        try {
          value = decodeURIComponent(match[i + 1]);
        } catch {
          throw new HttpError(400, `path parameter ${name} is not valid.`);
        }
        if (value === "" || value.includes("/")) {
          throw new HttpError(400, `path parameter ${name} is not valid.`);
        }
        params[name] = value;
      });
      const body = await readBody(req, route.maxBodyBytes ?? defaultLimit);
      const headers: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        headers[k] = Array.isArray(v) ? v.join(",") : v;
      }
      const reply = await route.handler({
        method: req.method ?? "GET",
        path: url.pathname,
        params,
        query: url.searchParams,
        headers,
        peer,
        body,
        json<T>() {
          try {
            return JSON.parse(
              new TextDecoder("utf-8", { fatal: true }).decode(body),
            ) as T;
          } catch {
            throw new HttpError(400, "request body is not valid JSON.");
          }
        },
      });
      status = reply.status;
      if (res.headersSent) return;
      if (reply.body) {
        res.writeHead(reply.status, {
          "content-type": "application/octet-stream",
          "content-length": reply.body.length,
          ...reply.headers,
        });
        res.end(reply.body);
      } else {
        sendJson(res, reply.status, reply.json ?? {});
      }
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        if (!res.headersSent) {
          sendJson(res, error.status, { error: error.message });
        }
      } else {
        status = 500;
        log.error("handler failed", {
          path: url.pathname,
          error: (error as Error).message,
        });
        if (!res.headersSent) sendJson(res, 500, { error: "internal error." });
      }
    } finally {
      clearTimeout(timer);
      log.info("swarm request", {
        method: req.method,
        path: url.pathname,
        status,
        peer: peer.subject,
      });
    }
  };

  const server = https.createServer({
    key: options.keyPem,
    cert: options.certPem,
    ca: options.caPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
  }, (req, res) => {
    handle(req, res).catch((error) => {
      log.error("request failed", { error: (error as Error).message });
      try {
        res.destroy();
      } catch {
        // Already gone.
      }
    });
  });
  server.headersTimeout = Math.min(timeoutMs, 10_000);
  server.requestTimeout = timeoutMs;
  server.on("tlsClientError", (error: Error) => {
    log.warn("TLS handshake refused", { error: error.message });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.listen, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address
    ? address.port
    : options.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
