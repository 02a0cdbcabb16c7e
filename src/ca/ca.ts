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
import { HOST_NAME, isIpAddress } from "../envoy/host_name.ts";

x509.cryptoProvider.set(crypto);

const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

/** A certificate and its private key, both PEM. */
export interface PemPair {
  /** The X.509 certificate, PEM (`BEGIN CERTIFICATE`). */
  certPem: string;
  /** The ECDSA P-256 private key, PKCS#8 PEM (`BEGIN PRIVATE KEY`). */
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
  // Top bits 01: positive, and never a leading zero byte that DER would
  // drop, so every serial is exactly 16 bytes (126 random bits).
  bytes[0] = (bytes[0] & 0x3f) | 0x40;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exportKey(key: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", key));
}

/**
 * The validity of a certificate issued now: from one minute ago (for clocks
 * a little behind), at a whole second since X.509 times carry no fraction,
 * to exactly `count` days after that.
 */
function validity(count: number): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  return { notBefore, notAfter: days(notBefore, count) };
}

function days(from: Date, count: number): Date {
  if (!Number.isInteger(count) || count < 1 || count > 36_500) {
    throw new Error(
      `a validity of ${count} days is not allowed; give a whole number of days from 1 to 36500.`,
    );
  }
  return new Date(from.getTime() + count * 86_400_000);
}

/**
 * Checks a host name: RFC 1123 labels (letters, digits, inner dashes, 1–63
 * characters) joined by dots, at most 253 characters. Throws a sentence
 * naming the bad value.
 */
export function validateHostname(name: string): void {
  if (!HOST_NAME.test(name)) {
    throw new Error(
      `${
        JSON.stringify(name)
      } is not a valid host name; use letters, digits, dashes and dots.`,
    );
  }
}

/**
 * Creates a new self-signed fleet CA: ECDSA P-256, BasicConstraints CA:true
 * (critical, path length 0), KeyUsage keyCertSign|cRLSign (critical), a
 * random positive 16-byte serial, valid from one minute ago for exactly
 * `validityDays` days (3650).
 */
export async function createFleetCa(
  { commonName, validityDays = 3650 }: {
    commonName: string;
    validityDays?: number;
  },
): Promise<PemPair> {
  if (commonName.trim() === "" || commonName.length > 64) {
    throw new Error(
      "the CA name must be 1 to 64 characters; pass a shorter --name.",
    );
  }
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    ...validity(validityDays),
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
 * Issues an envoy certificate signed by the fleet CA: ECDSA P-256, subject
 * CN=hostname, SubjectAltName DNS:hostname plus IP:each address, KeyUsage
 * digitalSignature, ExtendedKeyUsage serverAuth and clientAuth (one pair
 * serves both ends of mutual TLS), a random positive 16-byte serial, valid
 * from one minute ago for exactly `validityDays` days (825). The host name
 * and addresses are checked
 * first; a bad one throws a sentence naming it.
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
      throw new Error(
        `${
          JSON.stringify(ip)
        } is not an IPv4 or IPv6 address; give one address per --ip, such as 192.0.2.7 or 2001:db8::7.`,
      );
    }
  }
  let caCert: x509.X509Certificate;
  try {
    caCert = new x509.X509Certificate(options.caCertPem);
  } catch {
    throw new Error(
      "the fleet CA certificate is not a PEM X.509 certificate; restore ca.crt from the CA host.",
    );
  }
  let caKey: CryptoKey;
  try {
    caKey = await crypto.subtle.importKey(
      "pkcs8",
      unpem(options.caKeyPem),
      KEY_ALGORITHM,
      false,
      ["sign"],
    );
  } catch {
    throw new Error(
      "the fleet CA key is not a PKCS#8 PEM ECDSA P-256 key; restore ca.key from its backup.",
    );
  }
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [options.hostname] }],
    issuer: caCert.subject,
    ...validity(options.validityDays ?? 825),
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
  // A CA key that does not belong to ca.crt would issue certificates no
  // envoy accepts; catch that here rather than at the first handshake.
  if (
    !await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true })
  ) {
    throw new Error(
      "the fleet CA key does not match the CA certificate; restore ca.key and ca.crt from the same `vigo ca init`.",
    );
  }
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: await exportKey(keys.privateKey),
  };
}
