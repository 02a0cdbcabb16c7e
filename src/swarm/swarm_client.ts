/**
 * Calling another envoy's swarm port with this envoy's certificate.
 *
 * @module
 */

import { assertPrivateFile, readFileBounded } from "../platform/fs.ts";
import { addressOf, type AgentConfig } from "../envoy/config.ts";

/** PEM material for mutual TLS. */
export interface SwarmTls {
  /** The fleet CA certificate: the only issuer trusted on either side. */
  caPem: string;
  /** This envoy's certificate (CN = its host name). */
  certPem: string;
  /** This envoy's private key (PKCS#8). Never logged. */
  keyPem: string;
}

/** A finished response. */
export interface SwarmResponse {
  status: number;
  /** The whole body, already read. */
  body: Uint8Array;
  /** The response headers. */
  headers: Headers;
  /** The body as JSON; throws a sentence naming the peer when it is not. */
  json<T = unknown>(): T;
}

const MAX_PEM_BYTES = 64 * 1024;

/**
 * Reads this envoy's CA certificate, certificate and key from the paths in
 * agent.yaml. Each must exist and hold PEM; the key must not be readable or
 * writable by group or others (0600).
 */
export function readSwarmTls(config: Pick<AgentConfig, "tls">): SwarmTls {
  const read = (path: string, what: string, label: RegExp) => {
    let text: string;
    try {
      text = new TextDecoder().decode(readFileBounded(path, MAX_PEM_BYTES));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(
          `${what} ${path} is missing; enrol this envoy with \`vigo ca issue <hostname> --ip <address>\` on the CA host and copy the files here.`,
        );
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new Error(`${what} ${path} is not readable; run this as root.`);
      }
      throw error;
    }
    if (!label.test(text)) {
      throw new Error(
        `${what} ${path} does not hold PEM data; copy it again from \`vigo ca issue\`.`,
      );
    }
    return text;
  };
  const keyPem = read(
    config.tls.key,
    "the TLS key",
    /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  );
  assertPrivateFile(config.tls.key);
  const certificate = /-----BEGIN CERTIFICATE-----/;
  return {
    caPem: read(config.tls.ca, "the fleet CA certificate", certificate),
    certPem: read(config.tls.cert, "the TLS certificate", certificate),
    keyPem,
  };
}

/** `https://<address of host>:<port><path>`. */
export function swarmUrl(
  config: AgentConfig,
  host: string,
  path: string,
): string {
  const address = addressOf(config, host);
  const hostPart = address.includes(":") ? `[${address}]` : address;
  return `https://${hostPart}:${config.port}${path}`;
}

/**
 * The peer could not be reached: refused, timed out, or the TLS handshake
 * failed (for instance a certificate from another CA). Carries a hint line.
 */
export class SwarmUnreachableError extends Error {
  /** The URL that was called. */
  readonly url: string;
  /** What to check next. */
  readonly hint: string;
  constructor(url: string, reason: string, peer?: string) {
    const host = new URL(url).host;
    super(
      `${
        peer && peer !== host ? `${peer} (${host})` : host
      } is unreachable at ${url} (${reason}).`,
    );
    this.name = "SwarmUnreachableError";
    this.url = url;
    this.hint =
      "check that `vigo agent` runs there, that agent.yaml `hosts` gives the right address, and that both envoys hold certificates from the same fleet CA.";
  }
}

/** The most specific message of an error and its causes, one line. */
function reasonOf(error: unknown): string {
  let current: unknown = error;
  let reason = "unknown error";
  for (let depth = 0; current instanceof Error && depth < 4; depth++) {
    reason = current.name === "TimeoutError"
      ? "timed out"
      : current.message.split("\n")[0];
    current = (current as Error & { cause?: unknown }).cause;
  }
  return reason.replace(/\.$/, "");
}

/**
 * Sends one request over mutual TLS and reads the whole response, bounded in
 * size (`maxResponseBytes`, 64 MiB) and time (`timeoutMs`, 30 s, covering the
 * body too; `headersTimeoutMs`, if given, for the headers alone). Any HTTP status resolves; failing to connect or a broken
 * exchange rejects with {@link SwarmUnreachableError}.
 */
export async function swarmRequest(
  tls: SwarmTls,
  url: string,
  init: {
    method?: string;
    body?: Uint8Array | string;
    headers?: Record<string, string>;
    timeoutMs?: number;
    /**
     * Deadline for the response headers alone (by default `timeoutMs`), so
     * a peer that never answers is given up on long before a large body
     * would be.
     */
    headersTimeoutMs?: number;
    maxResponseBytes?: number;
    /** The envoy's name, for error messages (the URL holds its address). */
    peer?: string;
  } = {},
): Promise<SwarmResponse> {
  const client = Deno.createHttpClient({
    caCerts: [tls.caPem],
    cert: tls.certPem,
    key: tls.keyPem,
  });
  const limit = init.maxResponseBytes ?? 64 * 1024 * 1024;
  const timeoutMs = init.timeoutMs ?? 30_000;
  const host = new URL(url).host;
  const headersDeadline = new AbortController();
  const headersTimer = init.headersTimeoutMs === undefined
    ? undefined
    : setTimeout(
      () =>
        headersDeadline.abort(
          new DOMException("no answer in time", "TimeoutError"),
        ),
      init.headersTimeoutMs,
    );
  try {
    let response: Response;
    try {
      response = await fetch(url, {
        method: init.method ?? "GET",
        body: init.body as BodyInit | undefined,
        headers: init.headers,
        client,
        signal: AbortSignal.any([
          AbortSignal.timeout(timeoutMs),
          headersDeadline.signal,
        ]),
      });
    } catch (error) {
      throw new SwarmUnreachableError(url, reasonOf(error), init.peer);
    } finally {
      clearTimeout(headersTimer);
    }
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > limit) {
      await response.body?.cancel();
      throw new Error(
        `${host} sent ${declared} bytes, more than the ${limit} allowed.`,
      );
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (response.body) {
      try {
        for await (const chunk of response.body) {
          size += chunk.length;
          if (size > limit) {
            throw new Error(
              `${host} sent more than the ${limit} bytes allowed.`,
            );
          }
          chunks.push(chunk);
        }
      } catch (error) {
        if (size > limit) throw error;
        throw new SwarmUnreachableError(
          url,
          `the answer broke off: ${reasonOf(error)}`,
          init.peer,
        );
      }
    }
    const body = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      body.set(c, at);
      at += c.length;
    }
    return {
      status: response.status,
      body,
      headers: response.headers,
      json<T>() {
        try {
          return JSON.parse(new TextDecoder().decode(body)) as T;
        } catch {
          throw new Error(
            `${host} answered ${url} with HTTP ${response.status} and a body that is not JSON.`,
          );
        }
      },
    };
  } finally {
    client.close();
  }
}
