/**
 * The CA CLI and the agent as a real background process: enrol, start,
 * answer over mutual TLS, stop cleanly on SIGTERM, refuse bad configuration.
 */

import assert from "node:assert/strict";
import { VIGO, vigo } from "./support/cli.ts";
import { swarmRequest } from "../src/agent/swarm_client.ts";

const isRoot = Deno.uid() === 0;

function envFor(root: string) {
  return { PATH: Deno.env.get("PATH")!, HOME: root, VIGO_ROOT: root };
}

function freeAddress(): string {
  for (let i = 0; i < 50; i++) {
    const address = `127.0.0.${20 + Math.floor(Math.random() * 200)}`;
    try {
      Deno.listen({ hostname: address, port: 1531 }).close();
      return address;
    } catch {
      // Taken; try another.
    }
  }
  throw new Error("no free loopback address for port 1531");
}

Deno.test({
  name:
    "vigo ca init and issue write the CA and envoy material with their modes",
  ignore: !isRoot,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "vigo-ca-" });
    try {
      const env = envFor(root);
      const early = await vigo(env, ["ca", "issue", "envoy-a"]);
      assert.equal(early.code, 1);
      assert.match(early.stderr, /no fleet CA/);
      const init = await vigo(env, ["ca", "init"]);
      assert.equal(init.code, 0, init.stderr);
      const etc = `${root}/etc/vigo`;
      assert.equal(Deno.statSync(`${etc}/ca/ca.key`).mode! & 0o777, 0o600);
      assert.equal(Deno.statSync(`${etc}/ca`).mode! & 0o777, 0o700);
      const before = Deno.readTextFileSync(`${etc}/ca/ca.key`);
      const again = await vigo(env, ["ca", "init"]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already exists/);
      assert.equal(Deno.readTextFileSync(`${etc}/ca/ca.key`), before);

      const issue = await vigo(env, [
        "ca",
        "issue",
        "envoy-a",
        "--ip",
        "127.0.0.2",
      ]);
      assert.equal(issue.code, 0, issue.stderr);
      assert.equal(Deno.statSync(`${etc}/tls.key`).mode! & 0o777, 0o600);
      assert.equal(Deno.statSync(`${etc}/tls.crt`).mode! & 0o777, 0o644);
      const out = await vigo(env, [
        "ca",
        "issue",
        "envoy-b",
        "--ip",
        "127.0.0.3",
        "--out",
        `${root}/b`,
      ]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(Deno.statSync(`${root}/b/tls.key`).mode! & 0o777, 0o600);
      assert.equal(Deno.statSync(`${root}/b`).mode! & 0o777, 0o700);

      const badHost = await vigo(env, ["ca", "issue", "bad host"]);
      assert.equal(badHost.code, 2);
      assert.match(badHost.stderr, /not a valid host name/);
      const badIp = await vigo(env, [
        "ca",
        "issue",
        "envoy-c",
        "--ip",
        "999.1.1.1",
      ]);
      assert.equal(badIp.code, 2);
      assert.match(badIp.stderr, /not an IPv4 or IPv6 address/);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "the agent serves mutual TLS and stops cleanly on SIGTERM",
  ignore: !isRoot,
  sanitizeResources: false,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "vigo-agent-" });
    const address = freeAddress();
    let agent: Deno.ChildProcess | undefined;
    try {
      const env = envFor(root);
      assert.equal((await vigo(env, ["ca", "init"])).code, 0);
      assert.equal(
        (await vigo(env, ["ca", "issue", "envoy-a", "--ip", address])).code,
        0,
      );
      const etc = `${root}/etc/vigo`;

      // Bad configuration: a clear error and exit 1.
      Deno.writeTextFileSync(
        `${etc}/agent.yaml`,
        "hostname: envoy-a\nport: lots\n",
      );
      const bad = await vigo(env, ["agent"]);
      assert.equal(bad.code, 1);
      assert.match(
        bad.stderr,
        /^error: the agent could not start: .*`port` must be an integer/m,
      );

      Deno.writeTextFileSync(
        `${etc}/agent.yaml`,
        `hostname: envoy-a\nlisten: ${address}\n`,
      );
      Deno.renameSync(`${etc}/tls.key`, `${etc}/tls.key.away`);
      const noKey = await vigo(env, ["agent"]);
      assert.equal(noKey.code, 1);
      assert.match(noKey.stderr, /tls.key .*is missing/);
      Deno.renameSync(`${etc}/tls.key.away`, `${etc}/tls.key`);

      agent = new Deno.Command(VIGO, {
        args: ["agent"],
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const tls = {
        caPem: Deno.readTextFileSync(`${etc}/ca.crt`),
        certPem: Deno.readTextFileSync(`${etc}/tls.crt`),
        keyPem: Deno.readTextFileSync(`${etc}/tls.key`),
      };
      let health;
      for (let i = 0; i < 150 && !health; i++) {
        try {
          health = await swarmRequest(
            tls,
            `https://${address}:1531/swarm/health`,
            { timeoutMs: 1000 },
          );
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.ok(health, "agent answered");
      assert.equal(health.status, 200);
      assert.deepEqual(health.json(), { hostname: "envoy-a", peer: "envoy-a" });
      assert.equal(
        Number(Deno.readTextFileSync(`${root}/var/run/vigo/agent.pid`)),
        agent.pid,
      );
      const unknown = await swarmRequest(tls, `https://${address}:1531/nope`);
      assert.equal(unknown.status, 404);
      assert.match(unknown.json<{ error: string }>().error, /no route/);

      agent.kill("SIGTERM");
      const output = await agent.output();
      agent = undefined;
      assert.equal(output.code, 0);
      const log = new TextDecoder().decode(output.stderr);
      assert.match(log, /^\S+ INFO agent listening hostname=envoy-a/m);
      assert.match(log, /^\S+ INFO agent stopped$/m);
      assert.throws(() => Deno.statSync(`${root}/var/run/vigo/agent.pid`));
    } finally {
      if (agent) {
        agent.kill("SIGKILL");
        await agent.status;
      }
      Deno.removeSync(root, { recursive: true });
    }
  },
});
