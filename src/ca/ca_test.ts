import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createFleetCa, issueEnvoyCertificate } from "./ca.ts";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

Deno.test("the fleet CA is a self-signed CA certificate", async () => {
  const ca = await createFleetCa({ commonName: "test fleet CA" });
  const cert = new X509Certificate(ca.certPem);
  assert.equal(cert.ca, true);
  const parsed = new x509.X509Certificate(ca.certPem);
  const basic = parsed.getExtension(x509.BasicConstraintsExtension);
  assert.equal(basic?.ca, true);
  assert.equal(basic?.critical, true);
  assert.equal(
    parsed.getExtension(x509.KeyUsagesExtension)?.usages,
    x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
  );
  assert.equal(cert.subject, "CN=test fleet CA");
  assert.equal(cert.issuer, cert.subject);
  assert.equal(cert.verify(cert.publicKey), true);
  assert.equal(cert.publicKey.asymmetricKeyType, "ec");
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  const years = (Date.parse(cert.validTo) - Date.now()) / (365 * 86_400_000);
  assert.ok(years > 9.9 && years < 10.1, `valid ${years} years`);
  // The key is PKCS#8 and belongs to the certificate.
  assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(cert.checkPrivateKey(createPrivateKey(ca.keyPem)), true);
  // Serials are random: two CAs never share one.
  const other = new X509Certificate(
    (await createFleetCa({ commonName: "x" })).certPem,
  );
  assert.notEqual(other.serialNumber, cert.serialNumber);
});

Deno.test("envoy certificates carry the name, addresses and both usages", async () => {
  const ca = await createFleetCa({ commonName: "test fleet CA" });
  const caCert = new X509Certificate(ca.certPem);
  const envoy = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: "envoy-a",
    ips: ["127.0.0.2", "::1"],
  });
  const cert = new X509Certificate(envoy.certPem);
  assert.equal(cert.ca, false);
  assert.equal(cert.subject, "CN=envoy-a");
  assert.equal(cert.issuer, "CN=test fleet CA");
  assert.equal(cert.verify(caCert.publicKey), true);
  assert.equal(cert.checkIssued(caCert), true);
  assert.equal(cert.checkHost("envoy-a"), "envoy-a");
  assert.equal(cert.checkHost("envoy-b"), undefined);
  assert.equal(cert.checkIP("127.0.0.2"), "127.0.0.2");
  assert.equal(cert.checkIP("::1"), "::1");
  assert.equal(cert.checkIP("127.0.0.3"), undefined);
  // Deno's node:crypto reports KeyUsage names in `keyUsage` (Node reports
  // the extended key usages there), so read both with @peculiar/x509.
  const parsed = new x509.X509Certificate(envoy.certPem);
  const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...(eku?.usages ?? [])].sort(), [SERVER_AUTH, CLIENT_AUTH]);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
  assert.equal(ku?.critical, true);
  assert.equal(cert.serialNumber.length, 32);
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 824 && days < 826, `valid ${days} days`);
  assert.match(envoy.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(cert.checkPrivateKey(createPrivateKey(envoy.keyPem)), true);

  const other = await createFleetCa({ commonName: "other" });
  assert.equal(
    cert.verify(new X509Certificate(other.certPem).publicKey),
    false,
  );
  const short = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: "envoy-b.example.org",
    validityDays: 2,
  });
  const shortCert = new X509Certificate(short.certPem);
  assert.equal(
    shortCert.checkHost("envoy-b.example.org"),
    "envoy-b.example.org",
  );
  assert.ok(Date.parse(shortCert.validTo) - Date.now() < 3 * 86_400_000);
});

Deno.test("bad host names, addresses and CA material are refused", async () => {
  const ca = await createFleetCa({ commonName: "test" });
  const issue = (
    hostname: string,
    ips: string[] = [],
    caKeyPem = ca.keyPem,
  ) =>
    issueEnvoyCertificate({
      caKeyPem,
      caCertPem: ca.certPem,
      hostname,
      ips,
    });
  for (
    const name of ["bad host", "", "-lead", "trail-", "a..b", "x".repeat(64)]
  ) {
    await assert.rejects(issue(name), /not a valid host name/, name);
  }
  for (const ip of ["300.1.1.1", "1.2.3", "::g", "envoy-a", "", "1.2.3.4/8"]) {
    await assert.rejects(
      issue("a", [ip]),
      /not an IPv4 or IPv6 address/,
      ip,
    );
  }
  await assert.rejects(issue("a", [], "not a key"), /not a PKCS#8 PEM/);
  const stranger = await createFleetCa({ commonName: "stranger" });
  await assert.rejects(
    issue("a", [], stranger.keyPem),
    /does not match the CA certificate/,
  );
  await assert.rejects(
    createFleetCa({ commonName: "" }),
    /CA name must be 1 to 64/,
  );
  await assert.rejects(
    createFleetCa({ commonName: "x", validityDays: 0 }),
    /whole number of days/,
  );
});
