/**
 * Binding a host name to an address: a name heard in a UDP datagram is only
 * a candidate until a mutual-TLS request to that address is answered by a
 * certificate from the fleet CA issued for that name (its DNS name and its
 * common name both equal the name). A datagram's source address and its
 * text can be forged; the certificate's key cannot.
 *
 * The handshake's proof is swarm/host_certificate.ts's; this adds the
 * health request that shows an agent answers there.
 *
 * @module
 */

import type { SwarmTls } from "../swarm/swarm_client.ts";
import { connectToHost } from "../swarm/host_certificate.ts";
import { PEER_DEADLINE_MS } from "../swarm/peer_work.ts";

/** Largest answer read from the health route. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Resolves when the swarm listener at `address:port` presents a fleet
 * certificate for `host` (verified against the fleet CA, with this envoy's
 * own certificate presented) and answers `GET /swarm/health` with 200,
 * within `deadlineMs`; rejects with the reason otherwise.
 */
export async function confirmHost(
  material: SwarmTls,
  host: string,
  address: string,
  port: number,
  deadlineMs = PEER_DEADLINE_MS,
): Promise<void> {
  const started = Date.now();
  const socket = await connectToHost(material, host, address, port, deadlineMs);
  return await new Promise<void>((resolve, reject) => {
    let settled = false;
    const chunks: Uint8Array[] = [];
    let size = 0;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer within ${deadlineMs} ms`)),
      Math.max(0, deadlineMs - (Date.now() - started)),
    );
    socket.on("data", (chunk: Uint8Array) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        finish(
          new Error(`${address} sent more than ${MAX_ANSWER_BYTES} bytes`),
        );
        return;
      }
      chunks.push(chunk);
      const text = new TextDecoder().decode(concat(chunks, size));
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
      if (status) {
        finish(
          status[1] === "200"
            ? undefined
            : new Error(`${address} answered HTTP ${status[1]}`),
        );
      }
    });
    socket.on("error", (error: Error) => finish(error));
    socket.on(
      "close",
      () => finish(new Error(`${address} closed the connection`)),
    );
    socket.write(
      `GET /swarm/health HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`,
    );
  });
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
