/**
 * The fleet CA: a self-signed ECDSA P-256 authority and the envoy
 * certificates it issues (serverAuth and clientAuth, so the same pair serves
 * both ends of mutual TLS). Built on @peculiar/x509 and WebCrypto.
 *
 * @module
 */

// @peculiar/x509 needs a Reflect metadata polyfill loaded before it.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { encodeBase64 } from "../platform/encoding.ts";

x509.cryptoProvider.set(crypto);

const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** A certificate and its private key, both PEM. */
export interface PemPair {
  certPem: string;
  keyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const body = encodeBase64(new Uint8Array(der)).replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${
    body.replace(/\n$/, "")
  }\n-----END ${label}-----\n`;
}

function unpem(text: string): Uint8Array<ArrayBuffer> {
  const body = text.replace(/-----(BEGIN|END) [^-]+-----/g, "").replace(
    /\s+/g,
    "",
  );
  const binary = atob(body);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exportKey(key: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", key));
}

function days(from: Date, count: number): Date {
  return new Date(from.getTime() + count * 86_400_000);
}

/** True for an IPv4 or IPv6 literal. */
export function isIpAddress(text: string): boolean {
  if (IPV4.test(text)) return true;
  if (!text.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** Checks a host name (RFC 1123 labels). */
export function validateHostname(name: string): void {
  if (!HOSTNAME.test(name)) {
    throw new Error(
      `${
        JSON.stringify(name)
      } is not a valid host name; use letters, digits, dashes and dots.`,
    );
  }
}

/** Creates a new self-signed fleet CA. */
export async function createFleetCa(
  { commonName, validityDays = 3650 }: {
    commonName: string;
    validityDays?: number;
  },
): Promise<PemPair> {
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: days(now, validityDays),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: await exportKey(keys.privateKey),
  };
}

/**
 * Issues an envoy certificate: subject CN=hostname, SANs for the hostname
 * and every address, usable as TLS server and client.
 */
export async function issueEnvoyCertificate(options: {
  caKeyPem: string;
  caCertPem: string;
  hostname: string;
  ips?: string[];
  validityDays?: number;
}): Promise<PemPair> {
  validateHostname(options.hostname);
  const ips = options.ips ?? [];
  for (const ip of ips) {
    if (!isIpAddress(ip)) {
      throw new Error(`${JSON.stringify(ip)} is not an IPv4 or IPv6 address.`);
    }
  }
  const caCert = new x509.X509Certificate(options.caCertPem);
  const caKey = await crypto.subtle.importKey(
    "pkcs8",
    unpem(options.caKeyPem),
    KEY_ALGORITHM,
    false,
    ["sign"],
  );
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const now = new Date();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [options.hostname] }],
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: days(now, options.validityDays ?? 825),
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: options.hostname },
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: await exportKey(keys.privateKey),
  };
}
