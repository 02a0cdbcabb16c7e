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
import type { Logger } from "../platform/log.ts";

/** Who called, from the verified client certificate. */

/**
 * Largest request head (request line and headers) taken: room for a
 * delivery's signed ref states (agent/push_route.ts caps them at 2 MiB).
 */
export const MAX_HEADER_BYTES = 2560 * 1024;

export interface PeerIdentity {
  /** The certificate's subject CN (the envoy's host name). */
  subject: string;
  /** SHA-256 fingerprint of the certificate, colon-separated hex. */
  fingerprint256: string;
}

/** What a handler sees. */
export interface SwarmContext {
  method: string;
  /** The URL path, still percent-encoded. */
  path: string;
  /** Path parameters, URL-decoded, never empty, never containing `/`. */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: Record<string, string | undefined>;
  /** The caller, from its verified certificate. */
  peer: PeerIdentity;
  /**
   * The whole request body, within the route's cap; empty on routes with
   * `streamBody`, whose handlers take it with {@link SwarmContext.spoolBody}.
   */
  body: Uint8Array;
  /** The body as JSON; throws an {@link HttpError} 400 when it is not. */
  json<T = unknown>(): T;
  /**
   * Routes with `streamBody` only: streams the body into a new file (0600)
   * in `spool.dir`, within the route's cap and the spool's quota, and
   * resolves with its path and size. Over the cap or the quota it throws a
   * 413 at once; a body that ends early is a 400. The server removes the
   * file, and frees its quota, once the handler has finished.
   */
  spoolBody(spool: BodySpool): Promise<SpooledBody>;
}

/**
 * Bytes that spooled bodies may hold on disk at once, shared by every
 * request that spools into it.
 */
export class SpoolQuota {
  /** The most bytes held at once. */
  readonly limit: number;
  #used = 0;
  constructor(limit: number) {
    this.limit = limit;
  }
  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }
  /** Takes `bytes` when they fit; false (taking nothing) otherwise. */
  take(bytes: number): boolean {
    if (bytes < 0 || this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }
  /** Gives back `bytes` taken before. */
  give(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/** Where a streamed body goes: a private directory and a shared quota. */
export interface BodySpool {
  /** A directory only this process's user may enter (created 0700). */
  dir: string;
  quota: SpoolQuota;
}

/** A body streamed to disk by {@link SwarmContext.spoolBody}. */
export interface SpooledBody {
  /** The file; removed by the server after the handler. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
}

/** What a handler returns. */
export interface SwarmReply {
  status: number;
  /** Sent as `application/json` (when there is no `body`). */
  json?: unknown;
  /** Raw bytes, `application/octet-stream` unless `headers` say otherwise. */
  body?: Uint8Array;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** A request handler. */
export type SwarmHandler = (
  ctx: SwarmContext,
) => SwarmReply | Promise<SwarmReply>;

/** One route: method, a path pattern with `:name` parameters, a handler. */
export interface SwarmRoute {
  method: "GET" | "POST";
  /** Literal segments and `:name` parameters: `/swarm/puddle/pair-claim/:user`. */
  pattern: string;
  /** Body cap for this route; the server default (1 MiB) otherwise. */
  maxBodyBytes?: number;
  /**
   * When true the server reads nothing of the body before the handler
   * runs: the handler checks the request's headers first and then streams
   * the body to disk with `ctx.spoolBody`, or answers without reading it
   * (the rest is then discarded, for as long as the connection may idle).
   */
  streamBody?: boolean;
  /** Time from request start to answer before a 408; the server's otherwise. */
  timeoutMs?: number;
  handler: SwarmHandler;
}

/**
 * An error a handler throws to answer with `status` and
 * `{"error": message}`; write the message as a sentence for the caller.
 */
export class HttpError extends Error {
  /** The HTTP status to answer with. */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** Options for {@link startSwarmServer}. */
export interface SwarmServerOptions {
  /** Address to bind (`0.0.0.0`, `127.0.0.2`, `::`). */
  listen: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** The fleet CA: the only issuer whose client certificates are accepted. */
  caPem: string;
  /** This envoy's certificate, presented to clients. */
  certPem: string;
  /** This envoy's private key. */
  keyPem: string;
  /** The routes served; anything else is 404. */
  routes: SwarmRoute[];
  /** Where requests and failures are logged. */
  log: Logger;
  /** Body cap for routes without their own `maxBodyBytes` (1 MiB). */
  defaultMaxBodyBytes?: number;
  /** Time from request start to answer before a 408 (30 s). */
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

function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  extra: Record<string, string> = {},
) {
  const body = new TextEncoder().encode(JSON.stringify(value));
  res.writeHead(status, {
    ...extra,
    "content-type": "application/json",
    "content-length": body.length,
  });
  res.end(body);
}

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    `request body over ${limit} bytes; send less or split the request.`,
  );
}

/**
 * Reads a request body up to `limit` bytes. A declared length over the limit
 * is refused before anything is read; a streamed body is cut at the limit
 * and the rest discarded (for a bounded time, see `respond`).
 */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let settled = false;
    const settle = (error: Error | undefined) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (error) {
        // Keep the stream flowing with no listener: the rest is discarded.
        req.on("error", () => {});
        req.resume();
        reject(error);
        return;
      }
      const body = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        body.set(c, at);
        at += c.length;
      }
      resolve(body);
    };
    const onData = (chunk: Uint8Array) => {
      size += chunk.length;
      if (size > limit) settle(tooLarge(limit));
      else chunks.push(chunk);
    };
    const onEnd = () => settle(undefined);
    const onError = (error: Error) => settle(error);
    const onClose = () =>
      settle(new HttpError(400, "the request body ended early."));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/**
 * Streams a request body into a new file in `spool.dir`: a declared length
 * over `limit` or over what the quota has left is refused before anything
 * is read; a streamed body is cut (file removed, quota given back) as soon
 * as it passes either. `held` collects what the caller must release.
 */
async function spoolBody(
  req: IncomingMessage,
  limit: number,
  spool: BodySpool,
  held: { path?: string; bytes: number },
): Promise<SpooledBody> {
  if (held.path !== undefined || req.readableEnded) {
    throw new Error("a request body can be spooled only once.");
  }
  const overQuota = () =>
    new HttpError(
      413,
      `request body does not fit in the ${spool.quota.limit} bytes this envoy keeps for incoming bodies at once; retry later.`,
    );
  const declared = Number(req.headers["content-length"] ?? "NaN");
  if (declared > limit) throw tooLarge(limit);
  if (Number.isSafeInteger(declared)) {
    if (!spool.quota.take(declared)) throw overQuota();
    held.bytes = declared;
  }
  Deno.mkdirSync(spool.dir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(spool.dir, 0o700);
  const path = `${spool.dir}/body-${crypto.randomUUID()}`;
  const file = await Deno.open(path, {
    write: true,
    createNew: true,
    mode: 0o600,
  });
  held.path = path;
  let size = 0;
  try {
    // Not destroyed on a cut: the answer still has to go out on its socket.
    const chunks = req.iterator({ destroyOnReturn: false }) as AsyncIterable<
      Uint8Array
    >;
    for await (const chunk of chunks) {
      size += chunk.length;
      if (size > limit) throw tooLarge(limit);
      if (size > held.bytes) {
        if (!spool.quota.take(size - held.bytes)) throw overQuota();
        held.bytes = size;
      }
      let at = 0;
      while (at < chunk.length) at += await file.write(chunk.subarray(at));
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(400, "the request body ended early.");
  } finally {
    file.close();
  }
  if (!req.complete) throw new HttpError(400, "the request body ended early.");
  return { path, bytes: size };
}

function decodeParams(
  route: CompiledRoute,
  match: RegExpExecArray,
): Record<string, string> {
  const params: Record<string, string> = {};
  route.names.forEach((name, i) => {
    let value: string;
    try {
      value = decodeURIComponent(match[i + 1]);
    } catch {
      value = "";
    }
    const control = [...value].some((c) => c.charCodeAt(0) < 0x20);
    if (value === "" || value.includes("/") || control) {
      throw new HttpError(
        400,
        `path parameter ${name} is empty or not a valid URL-encoded value.`,
      );
    }
    params[name] = value;
  });
  return params;
}

function parseJson<T>(body: Uint8Array): T {
  try {
    return JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(body),
    ) as T;
  } catch {
    throw new HttpError(
      400,
      "request body is not valid JSON; send a UTF-8 JSON document.",
    );
  }
}

/**
 * Starts the listener; resolves once it accepts connections. `port` 0 picks a
 * free port, reported in the result. `close()` stops accepting, drops open
 * connections and resolves when the server is down.
 */
export async function startSwarmServer(
  options: SwarmServerOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const routes = options.routes.map(compile);
  const defaultLimit = options.defaultMaxBodyBytes ?? 1024 * 1024;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const idleMs = Math.min(timeoutMs, 10_000);
  const { log } = options;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const target = req.url ?? "/";
    let url: URL;
    try {
      // Origin-form only ("/path?query"); "//host/…" would parse as a host.
      if (!target.startsWith("/") || target.startsWith("//")) throw target;
      url = new URL(target, "https://swarm.invalid");
    } catch {
      sendJson(res, 400, {
        error: "the request target is not a path; send /swarm/… paths.",
      }, { connection: "close" });
      return;
    }
    const method = req.method ?? "GET";
    let status = 0;
    /** Answers once; later answers (after a timeout) are dropped. */
    const respond = (
      code: number,
      reply: {
        json?: unknown;
        body?: Uint8Array;
        headers?: Record<string, string>;
      },
      close = false,
    ) => {
      if (status !== 0 || res.headersSent || res.destroyed) return;
      status = code;
      // A body still arriving after the answer (cut at the limit, or never
      // read) is discarded, for as long as the connection may stay idle.
      res.once("finish", () => {
        if (!req.readableEnded) req.resume();
      });
      const extra = {
        ...reply.headers,
        ...(close ? { connection: "close" } : {}),
      };
      if (reply.body) {
        res.writeHead(code, {
          "content-type": "application/octet-stream",
          ...extra,
          "content-length": reply.body.length,
        });
        res.end(reply.body);
      } else {
        sendJson(res, code, reply.json ?? {}, extra);
      }
    };

    const socket = req.socket as TLSSocket;
    const cert = socket.getPeerCertificate?.();
    const subject = cert?.subject?.CN;
    // rejectUnauthorized already refused the handshake; this is a second lock.
    if (!socket.authorized || !cert || !subject) {
      respond(403, {
        json: {
          error:
            "a client certificate from the fleet CA, with a common name, is required.",
        },
      }, true);
      log.warn("swarm request refused", { method, path: url.pathname });
      return;
    }
    const peer: PeerIdentity = {
      subject: Array.isArray(subject) ? subject.join(",") : String(subject),
      fingerprint256: String(cert.fingerprint256 ?? ""),
    };
    /** A body being spooled: its file and quota, released after the answer. */
    let spooled: { path?: string; bytes: number; spool: BodySpool } | undefined;
    /** Removes the spooled file and frees its quota (before answering). */
    const releaseSpool = async () => {
      const held = spooled;
      spooled = undefined;
      if (!held) return;
      if (held.path) await Deno.remove(held.path).catch(() => {});
      held.spool.quota.give(held.bytes);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answerBy = (limitMs: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        respond(408, {
          json: {
            error: `request took too long (limit ${limitMs} ms); retry later.`,
          },
        }, true);
      }, limitMs);
    };
    answerBy(timeoutMs);
    try {
      const matching = routes.filter((r) => r.regex.test(url.pathname));
      if (matching.length === 0) {
        throw new HttpError(404, `no route for ${url.pathname}.`);
      }
      const route = matching.find((r) => r.method === method);
      if (!route) {
        throw new HttpError(
          405,
          `${method} is not allowed on ${url.pathname}; use ${
            [...new Set(matching.map((r) => r.method))].join(" or ")
          }.`,
        );
      }
      if (route.timeoutMs !== undefined) answerBy(route.timeoutMs);
      const params = decodeParams(route, route.regex.exec(url.pathname)!);
      const limit = route.maxBodyBytes ?? defaultLimit;
      const body = route.streamBody
        ? new Uint8Array(0)
        : await readBody(req, limit);
      const headers: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        headers[k] = Array.isArray(v) ? v.join(",") : v;
      }
      const reply = await route.handler({
        method,
        path: url.pathname,
        params,
        query: url.searchParams,
        headers,
        peer,
        body,
        json: <T>() => parseJson<T>(body),
        spoolBody: (spool) => {
          if (!route.streamBody) {
            throw new Error(`${route.pattern} does not stream its body.`);
          }
          return spoolBody(req, limit, spool, spooled ??= { bytes: 0, spool });
        },
      });
      await releaseSpool();
      respond(reply.status, reply);
    } catch (error) {
      await releaseSpool();
      if (error instanceof HttpError) {
        respond(error.status, { json: { error: error.message } });
      } else {
        log.error("swarm handler failed", {
          method,
          path: url.pathname,
          peer: peer.subject,
          error: (error as Error).message,
        });
        respond(500, { json: { error: "internal error" } }, true);
      }
    } finally {
      clearTimeout(timer);
      await releaseSpool();
      log.info("swarm request", {
        method,
        path: url.pathname,
        status: status || 499,
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
    handshakeTimeout: idleMs,
    // Deliveries carry signed ref states in a header (agent/push_route.ts).
    maxHeaderSize: MAX_HEADER_BYTES,
  }, (req, res) => {
    handle(req, res).catch((error) => {
      log.error("swarm request failed", { error: (error as Error).message });
      res.destroy();
    });
  });
  // Deno's node:http does not enforce headersTimeout or requestTimeout, so
  // connections get a hard deadline of their own: between requests (from the
  // handshake, or from the end of the previous answer, until the next
  // request's headers are complete) at most `idleMs`, however slowly bytes
  // trickle in. During a request the per-request timer above applies.
  const waiting = new WeakMap<TLSSocket, ReturnType<typeof setTimeout>>();
  const awaitRequest = (socket: TLSSocket) => {
    clearTimeout(waiting.get(socket));
    if (socket.destroyed) return;
    waiting.set(socket, setTimeout(() => socket.destroy(), idleMs));
  };
  // Open connections, so that close() can end keep-alive ones at once.
  const open = new Set<TLSSocket>();
  server.on("secureConnection", (socket: TLSSocket) => {
    open.add(socket);
    awaitRequest(socket);
    socket.once("close", () => {
      open.delete(socket);
      clearTimeout(waiting.get(socket));
    });
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    clearTimeout(waiting.get(socket));
    res.once("finish", () => awaitRequest(socket));
  });
  server.headersTimeout = idleMs;
  server.requestTimeout = timeoutMs + 1_000;
  server.on("tlsClientError", (error: Error) => {
    log.warn("TLS handshake refused", { error: error.message });
  });
  await new Promise<void>((resolve, reject) => {
    const refused = (error: Error & { code?: string }) => {
      const where = `${options.listen}:${options.port}`;
      if (error.code === "EADDRINUSE") {
        reject(
          new Error(
            `${where} is already in use, perhaps by another agent; stop it or change listen/port in agent.yaml.`,
          ),
        );
      } else if (error.code === "EADDRNOTAVAIL") {
        reject(
          new Error(
            `${options.listen} is not an address of this machine; fix listen in agent.yaml.`,
          ),
        );
      } else {
        reject(new Error(`cannot listen on ${where}: ${error.message}`));
      }
    };
    server.once("error", refused);
    server.listen(options.port, options.listen, () => {
      server.off("error", refused);
      resolve();
    });
  });
  server.on("error", (error: Error) => {
    log.error("swarm listener error", { error: error.message });
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
        for (const socket of open) socket.destroy();
      }),
  };
}
