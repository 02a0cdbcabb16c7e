import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { createFleetCa, issueEnvoyCertificate } from "./ca.ts";

Deno.test("the fleet CA issues envoy certificates it verifies", async () => {
  const ca = await createFleetCa({ commonName: "test fleet CA" });
  const caCert = new X509Certificate(ca.certPem);
  assert.equal(caCert.ca, true);
  assert.match(caCert.subject, /CN=test fleet CA/);
  const envoy = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: "envoy-a",
    ips: ["127.0.0.2", "::1"],
  });
  const cert = new X509Certificate(envoy.certPem);
  assert.equal(cert.ca, false);
  assert.match(cert.subject, /CN=envoy-a/);
  assert.equal(cert.verify(caCert.publicKey), true);
  assert.equal(cert.checkIssued(caCert), true);
  assert.equal(cert.checkHost("envoy-a"), "envoy-a");
  assert.equal(cert.checkIP("127.0.0.2"), "127.0.0.2");
  assert.equal(cert.checkIP("127.0.0.3"), undefined);
  assert.match(envoy.keyPem, /BEGIN PRIVATE KEY/);
  const other = await createFleetCa({ commonName: "other" });
  assert.equal(
    cert.verify(new X509Certificate(other.certPem).publicKey),
    false,
  );
});

Deno.test("bad host names and addresses are refused", async () => {
  const ca = await createFleetCa({ commonName: "test" });
  await assert.rejects(
    issueEnvoyCertificate({
      caKeyPem: ca.keyPem,
      caCertPem: ca.certPem,
      hostname: "bad host",
    }),
    /not a valid host name/,
  );
  await assert.rejects(
    issueEnvoyCertificate({
      caKeyPem: ca.keyPem,
      caCertPem: ca.certPem,
      hostname: "a",
      ips: ["300.1.1.1"],
    }),
    /not an IPv4 or IPv6 address/,
  );
});
