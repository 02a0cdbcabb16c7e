import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createFleetCa, issueEnvoyCertificate } from "./ca.ts";

const DAY_MS = 86_400_000;

Deno.test("certificates are valid from one minute before issue for exactly their days", async () => {
  const issuedAt = Date.now();
  const ca = await createFleetCa({ commonName: "validity test CA" });
  const envoy = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: "envoy-a",
    ips: ["127.0.0.1"],
  });
  const short = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: "envoy-b",
    ips: ["127.0.0.1"],
    validityDays: 1,
  });
  for (
    const [pem, days] of [
      [ca.certPem, 3650],
      [envoy.certPem, 825],
      [short.certPem, 1],
    ] as const
  ) {
    const cert = new x509.X509Certificate(pem);
    const from = cert.notBefore.getTime();
    assert.equal(cert.notAfter.getTime() - from, days * DAY_MS, `${days} days`);
    assert.equal(from % 1000, 0);
    assert.ok(
      from >= Math.floor(issuedAt / 1000) * 1000 - 60_000 &&
        from <= Date.now() - 59_000,
      `notBefore ${cert.notBefore.toISOString()} is one minute before issue`,
    );
  }
});
