/**
 * The agent as a real background process (`scripts/vigo agent`) in a
 * throwaway VIGO_ROOT: it answers over mutual TLS, stops cleanly on
 * SIGTERM, and refuses bad configuration or TLS material with a clear error.
 */

import assert from "node:assert/strict";
import { VIGO, vigo } from "./support/cli.ts";
import { type FleetPki, makeFleetPki, writeEnvoyTls } from "./support/pki.ts";
import { swarmRequest, type SwarmTls } from "../src/swarm/swarm_client.ts";
import { createFleetCa, issueEnvoyCertificate } from "../src/ca/ca.ts";
import { waitUntil } from "./support/wait.ts";
import { freeLoopbackBlock } from "../scripts/fleet.ts";

const isRoot = Deno.uid() === 0;
const PORT = 1531;

function envFor(root: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: root,
    VIGO_ROOT: root,
    // Share the compiled-module cache with this process.
    DENO_DIR: Deno.env.get("DENO_DIR") ??
      `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
  };
}

function portFree(address: string): boolean {
  try {
    Deno.listen({ hostname: address, port: PORT }).close();
    return true;
  } catch {
    return false;
  }
}

/** A loopback address with the swarm port free, picked at random. */
function freeAddress(): string {
  return freeLoopbackBlock(1)[0];
}

/** A temp VIGO_ROOT holding envoy-a's TLS material and agent.yaml. */
async function makeEnvoy(address: string) {
  const root = Deno.makeTempDirSync({ prefix: "vigo-agent-" });
  const etc = `${root}/etc/vigo`;
  const pki = await makeFleetPki(`${root}/pki`, [
    { hostname: "envoy-a", ips: [address] },
    { hostname: "envoy-b", ips: ["127.0.0.3"] },
  ]);
  writeEnvoyTls(etc, pki.caPem, pki.envoys["envoy-a"]);
  // Acts on no user's home: only those under `homes:`, and there are none.
  Deno.writeTextFileSync(
    `${etc}/agent.yaml`,
    `hostname: envoy-a\nlisten: ${address}\nport: ${PORT}\nmanaged_users: homes\n`,
  );
  return { root, etc, pki, env: envFor(root) };
}

/** envoy-b's client material: same CA, its own certificate. */
function clientOf(pki: FleetPki, name = "envoy-b"): SwarmTls {
  return { caPem: pki.caPem, ...pki.envoys[name] };
}

/** Polls /swarm/health until the agent answers or exits. */
async function waitForHealth(
  agent: Deno.ChildProcess,
  tls: SwarmTls,
  url: string,
  exited: () => boolean,
) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`the agent (pid ${agent.pid}) exited early`);
    try {
      return await swarmRequest(tls, url, { timeoutMs: 1_000 });
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("the agent did not answer within 30 s");
}

Deno.test({
  name: "the agent serves mutual TLS and stops cleanly on SIGTERM",
  ignore: !isRoot,
  fn: async () => {
    const address = freeAddress();
    const { root, pki, env } = await makeEnvoy(address);
    let agent: Deno.ChildProcess | undefined;
    let running = false;
    try {
      agent = new Deno.Command(VIGO, {
        args: ["agent"],
        env,
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      running = true;
      let text = "";
      const logged = agent.stderr.pipeThrough(new TextDecoderStream())
        .pipeTo(
          new WritableStream({
            write(chunk) {
              text += chunk;
            },
          }),
        );
      // The agent logs a request once answered and a refused handshake as
      // it refuses it: wait for the line rather than for time to pass.
      const waitForLog = (pattern: RegExp) =>
        waitUntil(`${pattern} in the agent's log`, () => pattern.test(text));
      const status = agent.status.then((s) => {
        running = false;
        return s;
      });
      const base = `https://${address}:${PORT}`;
      const health = await waitForHealth(
        agent,
        clientOf(pki),
        `${base}/swarm/health`,
        () => !running,
      );
      assert.equal(health.status, 200);
      assert.deepEqual(health.json(), { hostname: "envoy-a", peer: "envoy-b" });
      await waitForLog(
        /^\S+ INFO swarm request method=GET path=\/swarm\/health status=200 peer=envoy-b$/m,
      );
      assert.equal(
        Number(Deno.readTextFileSync(`${root}/var/run/vigo/agent.pid`)),
        agent.pid,
      );
      assert.equal(
        Deno.statSync(`${root}/var/run/vigo/agent.pid`).mode! & 0o777,
        0o644,
      );

      const unknown = await swarmRequest(clientOf(pki), `${base}/nope`);
      assert.equal(unknown.status, 404);
      assert.match(unknown.json<{ error: string }>().error, /no route/);

      // A certificate from another CA never gets an answer.
      const otherCa = await createFleetCa({ commonName: "another fleet" });
      const stranger = await issueEnvoyCertificate({
        caKeyPem: otherCa.keyPem,
        caCertPem: otherCa.certPem,
        hostname: "envoy-x",
        ips: ["127.0.0.9"],
      });
      await assert.rejects(
        swarmRequest(
          { caPem: pki.caPem, ...stranger },
          `${base}/swarm/health`,
        ),
        /unreachable/,
      );
      await waitForLog(/^\S+ WARN TLS handshake refused/m);

      // A second agent on the same address is refused with a clear error.
      const second = await vigo(env, ["agent"]);
      assert.equal(second.code, 1);
      assert.match(
        second.stderr,
        /^error: the agent could not start: .*already in use/m,
      );

      agent.kill("SIGTERM");
      const { code } = await status;
      assert.equal(code, 0);
      await logged;
      assert.match(
        text,
        /^\S+Z INFO agent listening hostname=envoy-a address=\S+:1531/m,
      );
      assert.match(
        text,
        /^\S+ INFO swarm request method=GET path=\/swarm\/health status=200 peer=envoy-b$/m,
      );
      assert.match(text, /^\S+ WARN TLS handshake refused/m);
      assert.match(text, /^\S+ INFO agent stopping signal=SIGTERM$/m);
      assert.match(text, /^\S+ INFO agent stopped$/m);
      assert.doesNotMatch(text, /PRIVATE KEY/);
      assert.throws(
        () => Deno.statSync(`${root}/var/run/vigo/agent.pid`),
        Deno.errors.NotFound,
      );
    } finally {
      if (agent && running) {
        agent.kill("SIGKILL");
        await agent.status;
      }
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "the agent refuses bad configuration and TLS material clearly",
  ignore: !isRoot,
  fn: async () => {
    const address = freeAddress();
    const { root, etc, pki, env } = await makeEnvoy(address);
    const yaml = Deno.readTextFileSync(`${etc}/agent.yaml`);
    const start = async (pattern: RegExp) => {
      const result = await vigo(env, ["agent"]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /^error: the agent could not start: /m);
      assert.match(result.stderr, pattern);
      assert.match(result.stderr, /^hint: /m);
      assert.equal(portFree(address), true);
    };
    try {
      Deno.writeTextFileSync(
        `${etc}/agent.yaml`,
        "hostname: envoy-a\nport: lots\n",
      );
      await start(/agent\.yaml: `port` must be an integer between 1 and 65535/);
      Deno.writeTextFileSync(
        `${etc}/agent.yaml`,
        "hostname: envoy-a\nlisten_on: 1.2.3.4\n",
      );
      await start(/agent\.yaml: unknown key\(s\): listen_on/);
      Deno.writeTextFileSync(
        `${etc}/agent.yaml`,
        "hostname: envoy-a\nmanaged_users: everyone\n",
      );
      await start(
        /agent\.yaml: `managed_users` must be `passwd` .* or `homes` .*, not "everyone"/,
      );
      Deno.removeSync(`${etc}/agent.yaml`);
      await start(/agent\.yaml does not exist/);

      // --config names another file.
      Deno.writeTextFileSync(`${root}/elsewhere.yaml`, "hostname: [\n");
      const other = await vigo(env, [
        "agent",
        "--config",
        `${root}/elsewhere.yaml`,
      ]);
      assert.equal(other.code, 1);
      assert.match(other.stderr, /elsewhere\.yaml: not valid YAML/);

      Deno.writeTextFileSync(`${etc}/agent.yaml`, yaml);
      Deno.renameSync(`${etc}/tls.key`, `${etc}/tls.key.away`);
      await start(/the TLS key \S+\/tls\.key is missing; enrol this envoy/);
      Deno.renameSync(`${etc}/tls.key.away`, `${etc}/tls.key`);

      Deno.chmodSync(`${etc}/tls.key`, 0o644);
      await start(/tls\.key has mode 0644.*chmod 600/);
      Deno.chmodSync(`${etc}/tls.key`, 0o600);

      // A certificate for another envoy.
      writeEnvoyTls(etc, pki.caPem, pki.envoys["envoy-b"]);
      await start(
        /tls\.crt is for envoy-b, but agent\.yaml says hostname envoy-a/,
      );
      // A key that does not belong to the certificate.
      writeEnvoyTls(etc, pki.caPem, {
        certPem: pki.envoys["envoy-a"].certPem,
        keyPem: pki.envoys["envoy-b"].keyPem,
      });
      await start(/tls\.key is not the key of \S+tls\.crt/);

      const usage = await vigo(env, ["agent", "now"]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /unexpected argument "now"/);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});
