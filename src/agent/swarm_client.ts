/**
 * Calling another envoy's swarm port with this envoy's certificate.
 *
 * @module
 */

import { assertPrivateFile } from "../platform/fs.ts";
import { addressOf, type AgentConfig } from "./config.ts";

/** PEM material for mutual TLS. */
export interface SwarmTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** A finished response. */
export interface SwarmResponse {
  status: number;
  body: Uint8Array;
  json<T = unknown>(): T;
}

/** Reads this envoy's CA, certificate and key (the key must be 0600). */
export function readSwarmTls(config: AgentConfig): SwarmTls {
  const read = (path: string, what: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(
          `${what} ${path} is missing; enrol this envoy with \`vigo ca issue\`.`,
        );
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new Error(`${what} ${path} is not readable; run this as root.`);
      }
      throw error;
    }
  };
  const keyPem = read(config.tls.key, "the TLS key");
  assertPrivateFile(config.tls.key);
  return {
    caPem: read(config.tls.ca, "the fleet CA certificate"),
    certPem: read(config.tls.cert, "the TLS certificate"),
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

/** Sends one request over mutual TLS; the response body is bounded. */
export async function swarmRequest(
  tls: SwarmTls,
  url: string,
  init: {
    method?: string;
    body?: Uint8Array | string;
    headers?: Record<string, string>;
    timeoutMs?: number;
    maxResponseBytes?: number;
  } = {},
): Promise<SwarmResponse> {
  const client = Deno.createHttpClient({
    caCerts: [tls.caPem],
    cert: tls.certPem,
    key: tls.keyPem,
  });
  const limit = init.maxResponseBytes ?? 64 * 1024 * 1024;
  try {
    let response: Response;
    try {
      response = await fetch(url, {
        method: init.method ?? "GET",
        body: init.body as BodyInit | undefined,
        headers: init.headers,
        client,
        signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
      });
    } catch (error) {
      throw new Error(
        `${new URL(url).host} is unreachable over mutual TLS (${
          (error as Error).message.split("\n")[0]
        }).`,
      );
    }
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > limit) {
      await response.body?.cancel();
      throw new Error(
        `${
          new URL(url).host
        } sent ${declared} bytes, more than the ${limit} allowed.`,
      );
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (response.body) {
      for await (const chunk of response.body) {
        size += chunk.length;
        if (size > limit) {
          throw new Error(
            `${new URL(url).host} sent more than the ${limit} bytes allowed.`,
          );
        }
        chunks.push(chunk);
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
      json<T>() {
        return JSON.parse(new TextDecoder().decode(body)) as T;
      },
    };
  } finally {
    client.close();
  }
}
