/**
 * Checking a daemon's own TLS material before it serves with it; the agent
 * and the fleet server both start with this.
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import type { SwarmTls } from "./swarm_client.ts";

/** Whose material it is: its host name and where the files are. */
export interface OwnTlsFiles {
  /** The name the certificate must carry (CN). */
  hostname: string;
  tls: { ca: string; cert: string; key: string };
  /** The configuration file that names `hostname`, for messages. */
  configName: string;
}

/**
 * Checks that the key is owned by this process's user and private, that the
 * certificate belongs to the key, was issued by the fleet CA, is within its
 * validity, and names `hostname`. Throws a sentence saying what to fix.
 */
export function checkOwnCertificate(own: OwnTlsFiles, tls: SwarmTls): void {
  const uid = Deno.uid();
  const owner = Deno.statSync(own.tls.key).uid;
  if (uid !== null && owner !== uid) {
    throw new Error(
      `${own.tls.key} is owned by uid ${owner}, not by this daemon (uid ${uid}); run \`chown root: ${own.tls.key}\`.`,
    );
  }
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(tls.certPem);
    ca = new X509Certificate(tls.caPem);
  } catch {
    throw new Error(
      `${own.tls.cert} or ${own.tls.ca} is not a valid certificate; issue it again with \`vigo ca issue\`.`,
    );
  }
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(tls.keyPem));
  } catch {
    // An unreadable key is reported like a mismatch.
  }
  if (!matches) {
    throw new Error(
      `${own.tls.key} is not the key of ${own.tls.cert}; copy both from the same \`vigo ca issue\`.`,
    );
  }
  if (!cert.verify(ca.publicKey)) {
    throw new Error(
      `${own.tls.cert} was not issued by the fleet CA in ${own.tls.ca}; issue it again on the CA host.`,
    );
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now || Date.parse(cert.validFrom) > now) {
    throw new Error(
      `${own.tls.cert} is valid only from ${cert.validFrom} to ${cert.validTo}; issue a new one with \`vigo ca issue ${own.hostname}\`.`,
    );
  }
  if (cert.checkHost(own.hostname) === undefined) {
    throw new Error(
      `${own.tls.cert} is for ${
        cert.subject.replace(/^CN=/, "")
      }, but ${own.configName} says hostname ${own.hostname}; fix one of them.`,
    );
  }
}
