/**
 * Proving who answers at an address: a mutual-TLS handshake, verified
 * against the fleet CA for a chosen server name, whose certificate's
 * common name is that name too. `fetch` verifies a certificate only
 * against the URL's host (often an address) and shows nothing of it, so
 * this runs over `node:tls`, which verifies a chosen name and reports the
 * peer certificate.
 *
 * @module
 */

import tls from "node:tls";
import type { SwarmTls } from "./swarm_client.ts";

/** Why a handshake did not show a certificate for the expected host. */
export class HostCertificateError extends Error {
  /** True when a certificate was shown but was not `host`'s. */
  readonly wrongHost: boolean;
  constructor(message: string, wrongHost: boolean) {
    super(message);
    this.name = "HostCertificateError";
    this.wrongHost = wrongHost;
  }
}

/**
 * Opens mutual TLS to `address:port` presenting this envoy's certificate,
 * and resolves with the socket once the peer showed a fleet-CA certificate
 * whose DNS name and common name are `host`; rejects (the socket
 * destroyed) otherwise, or after `deadlineMs`. The caller owns the socket.
 */
export function connectToHost(
  material: SwarmTls,
  host: string,
  address: string,
  port: number,
  deadlineMs: number,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({
      host: address,
      port,
      servername: host,
      ca: material.caPem,
      cert: material.certPem,
      key: material.keyPem,
      rejectUnauthorized: true,
    });
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        resolve(socket);
      }
    };
    const timer = setTimeout(
      () =>
        finish(
          new HostCertificateError(
            `no TLS handshake within ${deadlineMs} ms`,
            false,
          ),
        ),
      deadlineMs,
    );
    socket.on("secureConnect", () => {
      const subject = socket.getPeerCertificate()?.subject?.CN;
      if (!socket.authorized || subject !== host) {
        finish(
          new HostCertificateError(
            `the certificate at ${address}:${port} is for ${
              JSON.stringify(subject ?? "")
            }, not ${host}`,
            true,
          ),
        );
        return;
      }
      finish();
    });
    socket.on("error", (error: Error & { code?: string }) =>
      finish(
        new HostCertificateError(
          error.message.replace(/\.$/, ""),
          error.code === "ERR_TLS_CERT_ALTNAME_INVALID",
        ),
      ));
    socket.on(
      "close",
      () =>
        finish(
          new HostCertificateError(
            `${address}:${port} closed the connection`,
            false,
          ),
        ),
    );
  });
}
