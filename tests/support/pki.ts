/**
 * A fleet CA and envoy certificates made in-process (no CLI, no root), for
 * tests that need real mutual TLS quickly.
 *
 * @module
 */

import { createFleetCa, issueEnvoyCertificate } from "../../src/ca/ca.ts";
import { writeFileAtomic, writeTextAtomic } from "../../src/platform/fs.ts";

/** One envoy to issue a certificate for. */
export interface EnvoySpec {
  hostname: string;
  ips: string[];
}

/** An envoy's certificate and private key, PEM. */
export interface EnvoyPem {
  certPem: string;
  keyPem: string;
}

/** A test fleet's PKI: the CA and one certificate per envoy. */
export interface FleetPki {
  caPem: string;
  caKeyPem: string;
  envoys: Record<string, EnvoyPem>;
}

/**
 * Creates a fleet CA and issues a certificate for each envoy. The CA is
 * also written to `dir/ca/ca.crt` and `dir/ca/ca.key` (0600), laid out as
 * `vigo ca init` would, so a test can point `vigo ca issue` at it.
 */
export async function makeFleetPki(
  dir: string,
  envoys: EnvoySpec[],
): Promise<FleetPki> {
  const ca = await createFleetCa({
    commonName: `vigo test fleet CA (${dir.split("/").pop()!.slice(-32)})`,
  });
  Deno.mkdirSync(`${dir}/ca`, { recursive: true, mode: 0o700 });
  writeTextAtomic(`${dir}/ca/ca.crt`, ca.certPem, 0o644);
  writeFileAtomic(
    `${dir}/ca/ca.key`,
    new TextEncoder().encode(ca.keyPem),
    0o600,
  );
  const issued: Record<string, EnvoyPem> = {};
  for (const envoy of envoys) {
    issued[envoy.hostname] = await issueEnvoyCertificate({
      caKeyPem: ca.keyPem,
      caCertPem: ca.certPem,
      hostname: envoy.hostname,
      ips: envoy.ips,
    });
  }
  return { caPem: ca.certPem, caKeyPem: ca.keyPem, envoys: issued };
}

/**
 * Writes an envoy's TLS material where the agent looks for it by default:
 * `etcDir/ca.crt` and `etcDir/tls.crt` (0644), `etcDir/tls.key` (0600).
 * Creates `etcDir` (0755) if needed.
 */
export function writeEnvoyTls(
  etcDir: string,
  caPem: string,
  envoy: EnvoyPem,
): void {
  Deno.mkdirSync(etcDir, { recursive: true, mode: 0o755 });
  writeTextAtomic(`${etcDir}/ca.crt`, caPem, 0o644);
  writeTextAtomic(`${etcDir}/tls.crt`, envoy.certPem, 0o644);
  writeFileAtomic(
    `${etcDir}/tls.key`,
    new TextEncoder().encode(envoy.keyPem),
    0o600,
  );
}
