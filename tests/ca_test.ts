/**
 * `vigo ca init | issue` through the real CLI, in a throwaway VIGO_ROOT.
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { vigo } from "./support/cli.ts";

const isRoot = Deno.uid() === 0;

function envFor(root: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: root,
    VIGO_ROOT: root,
  };
  const denoDir = Deno.env.get("DENO_DIR");
  env.DENO_DIR = denoDir ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  return env;
}

function modeOf(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test({
  name: "vigo ca init creates the CA once, with private modes",
  ignore: !isRoot,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "vigo-ca-" });
    try {
      const env = envFor(root);
      const etc = `${root}/etc/vigo`;

      const early = await vigo(env, ["ca", "issue", "envoy-a"]);
      assert.equal(early.code, 1);
      assert.match(early.stderr, /^error: there is no fleet CA in .*\/ca$/m);
      assert.match(early.stderr, /^hint: create it first with `vigo ca init`/m);
      assert.equal(Deno.readDirSync(root).toArray().length, 0);

      const init = await vigo(env, ["ca", "init", "--name", "Test Fleet"]);
      assert.equal(init.code, 0, init.stderr);
      assert.match(init.stdout, /ca\.key/);
      assert.equal(modeOf(`${etc}/ca`), 0o700);
      assert.equal(modeOf(`${etc}/ca/ca.key`), 0o600);
      assert.equal(modeOf(`${etc}/ca/ca.crt`), 0o644);
      const cert = new X509Certificate(
        Deno.readTextFileSync(`${etc}/ca/ca.crt`),
      );
      assert.equal(cert.subject, "CN=Test Fleet");
      assert.equal(cert.ca, true);

      const key = Deno.readTextFileSync(`${etc}/ca/ca.key`);
      const crt = Deno.readTextFileSync(`${etc}/ca/ca.crt`);
      const again = await vigo(env, ["ca", "init"]);
      assert.equal(again.code, 1);
      assert.match(
        again.stderr,
        /^error: a fleet CA already exists in .*; nothing was changed$/m,
      );
      assert.equal(Deno.readTextFileSync(`${etc}/ca/ca.key`), key);
      assert.equal(Deno.readTextFileSync(`${etc}/ca/ca.crt`), crt);

      const usage = await vigo(env, ["ca", "rotate"]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /unknown ca verb "rotate"/);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "vigo ca issue writes envoy material into etc or --out",
  ignore: !isRoot,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "vigo-ca-" });
    try {
      const env = envFor(root);
      const etc = `${root}/etc/vigo`;
      assert.equal((await vigo(env, ["ca", "init"])).code, 0);
      const caCert = new X509Certificate(
        Deno.readTextFileSync(`${etc}/ca/ca.crt`),
      );
      assert.equal(caCert.subject, "CN=vigo fleet CA");

      const issued = await vigo(env, [
        "ca",
        "issue",
        "envoy-a",
        "--ip",
        "127.0.0.2",
        "--ip",
        "fd00::2",
      ]);
      assert.equal(issued.code, 0, issued.stderr);
      for (const name of ["tls.key", "tls.crt", "ca.crt"]) {
        assert.match(issued.stdout, new RegExp(`${etc}/${name}`));
      }
      assert.equal(modeOf(`${etc}/tls.key`), 0o600);
      assert.equal(modeOf(`${etc}/tls.crt`), 0o644);
      assert.equal(modeOf(`${etc}/ca.crt`), 0o644);
      assert.equal(
        Deno.readTextFileSync(`${etc}/ca.crt`),
        Deno.readTextFileSync(`${etc}/ca/ca.crt`),
      );
      const cert = new X509Certificate(Deno.readTextFileSync(`${etc}/tls.crt`));
      assert.equal(cert.subject, "CN=envoy-a");
      assert.equal(cert.verify(caCert.publicKey), true);
      assert.equal(cert.checkHost("envoy-a"), "envoy-a");
      assert.equal(cert.checkIP("127.0.0.2"), "127.0.0.2");
      assert.equal(cert.checkIP("fd00::2"), "fd00::2");
      assert.match(Deno.readTextFileSync(`${etc}/tls.key`), /PRIVATE KEY/);

      // --out: a new (nested) directory is created 0700.
      const out = `${root}/export/envoy-b`;
      const exported = await vigo(env, [
        "ca",
        "issue",
        "envoy-b",
        "--ip",
        "127.0.0.3",
        "--out",
        out,
      ]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(exported.stdout, /copy these three files/);
      assert.equal(modeOf(out), 0o700);
      assert.equal(modeOf(`${out}/tls.key`), 0o600);
      assert.equal(modeOf(`${out}/tls.crt`), 0o644);
      assert.equal(modeOf(`${out}/ca.crt`), 0o644);
      assert.equal(
        new X509Certificate(Deno.readTextFileSync(`${out}/tls.crt`)).subject,
        "CN=envoy-b",
      );
      // An existing --out directory keeps its mode.
      const shared = `${root}/shared`;
      Deno.mkdirSync(shared, { mode: 0o755 });
      Deno.chmodSync(shared, 0o755);
      const into = await vigo(env, [
        "ca",
        "issue",
        "envoy-c",
        "--out",
        shared,
      ]);
      assert.equal(into.code, 0, into.stderr);
      assert.equal(modeOf(shared), 0o755);
      assert.equal(modeOf(`${shared}/tls.key`), 0o600);
      // The envoy's own etc material was not touched by the exports.
      assert.equal(
        new X509Certificate(Deno.readTextFileSync(`${etc}/tls.crt`)).subject,
        "CN=envoy-a",
      );
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "vigo ca issue refuses bad names, bad addresses and an exposed key",
  ignore: !isRoot,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "vigo-ca-" });
    try {
      const env = envFor(root);
      const etc = `${root}/etc/vigo`;
      assert.equal((await vigo(env, ["ca", "init"])).code, 0);

      const badHost = await vigo(env, ["ca", "issue", "bad_host"]);
      assert.equal(badHost.code, 2);
      assert.match(
        badHost.stderr,
        /^error: "bad_host" is not a valid host name/m,
      );
      assert.match(badHost.stderr, /^hint: usage: vigo ca issue/m);

      const badIp = await vigo(env, [
        "ca",
        "issue",
        "envoy-c",
        "--ip",
        "999.1.1.1",
      ]);
      assert.equal(badIp.code, 2);
      assert.match(
        badIp.stderr,
        /^error: "999\.1\.1\.1" is not an IPv4 or IPv6 address/m,
      );

      const noHost = await vigo(env, ["ca", "issue"]);
      assert.equal(noHost.code, 2);
      assert.match(noHost.stderr, /issue needs a hostname/);

      const extra = await vigo(env, ["ca", "issue", "a", "b"]);
      assert.equal(extra.code, 2);
      assert.match(extra.stderr, /unexpected argument "b"/);

      // Nothing was written by the refused calls.
      assert.equal(
        Deno.readDirSync(etc).toArray().map((e) => e.name).join(","),
        "ca",
      );

      Deno.chmodSync(`${etc}/ca/ca.key`, 0o644);
      const exposed = await vigo(env, ["ca", "issue", "envoy-d"]);
      assert.equal(exposed.code, 1);
      assert.match(exposed.stderr, /CA key is exposed: .*chmod 600/);
      assert.equal(Deno.readDirSync(etc).toArray().length, 1);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});
