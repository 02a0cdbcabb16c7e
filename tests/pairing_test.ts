/**
 * Pairing across a three-envoy fleet on loopback: real agents, real mutual
 * TLS, the real CLI. One fleet serves every step, in order.
 */

import assert from "node:assert/strict";
import {
  type Envoy,
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
  stopAgent,
} from "../scripts/fleet.ts";
import { makeUserEnv, vigo } from "./support/cli.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { createFleetCa, issueEnvoyCertificate } from "../src/ca/ca.ts";
import { startPairing } from "../src/puddle/pair.ts";
import { waitForLine } from "./support/wait.ts";
import { tlsOf } from "./support/envoy_files.ts";

const PASS = "fleet passphrase";

function identityFiles(envoy: Envoy): string[] {
  try {
    return [...Deno.readDirSync(`${envoy.home}/.vigo-puddle`)]
      .map((e) => e.name)
      .filter((n) => n.startsWith("identity."))
      .sort();
  } catch {
    return [];
  }
}

async function pairCode(envoy: Envoy): Promise<string> {
  const result = await vigo(envoy.env, ["swarm", "puddle", "pair"]);
  assert.equal(result.code, 0, result.stderr);
  const match = /pairing code: (\d{4}-\d{4})/.exec(result.stdout);
  assert.ok(match, result.stdout);
  assert.match(result.stdout, /join --from envoy-a/);
  return match[1];
}

function join(envoy: Envoy, from: string, code: string, pass = PASS) {
  return vigo(
    envoy.env,
    ["swarm", "puddle", "join", "--from", from],
    `${code}\n${pass}\n`,
  );
}

const claimUrl = (envoy: Envoy, user: string) =>
  `https://${envoy.address}:1531/swarm/puddle/pair-claim/${user}`;

Deno.test({
  name: "pairing: init on A, join on B and C, one identity everywhere",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-fleet-" });
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(dir, { envoys: 3 });
      const [a, b, c] = fleet.envoys;
      const user = fleet.user;

      const init = await vigo(
        a.env,
        ["swarm", "puddle", "init"],
        `${PASS}\n${PASS}\n`,
      );
      assert.equal(init.code, 0, init.stderr);
      const pubkey = (await vigo(a.env, ["swarm", "puddle", "pubkey"])).stdout
        .trim();

      await t.step("no pending pairing is refused", async () => {
        const result = await join(b, "envoy-a", "1234-5678");
        assert.equal(result.code, 1);
        assert.match(result.stderr, /no pairing is pending/);
        assert.deepEqual(identityFiles(b), []);
      });

      await t.step("B joins with the code and the passphrase", async () => {
        const code = await pairCode(a);
        const pending = JSON.parse(
          Deno.readTextFileSync(`${a.home}/.vigo-puddle/pair.pending`),
        );
        assert.equal(
          JSON.stringify(pending).includes(code),
          false,
          "code stored hashed",
        );
        assert.equal(
          Deno.statSync(`${a.home}/.vigo-puddle/pair.pending`).mode! & 0o777,
          0o600,
        );
        const result = await join(b, "envoy-a", code);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, new RegExp(`Joined puddle ${pubkey}`));
        assert.deepEqual(identityFiles(b), [
          "identity.pub",
          "identity.salt",
          "identity.wrapped",
        ]);
        assert.equal(
          Deno.statSync(`${b.home}/.vigo-puddle/identity.wrapped`).mode! &
            0o777,
          0o600,
        );
        assert.throws(() =>
          Deno.statSync(`${a.home}/.vigo-puddle/pair.pending`)
        );

        // The same code cannot be used twice.
        const again = await join(c, "envoy-a", code);
        assert.equal(again.code, 1);
        assert.match(again.stderr, /no pairing is pending/);
        assert.deepEqual(identityFiles(c), []);
      });

      await t.step(
        "a wrong code is refused and burns the real one",
        async () => {
          const code = await pairCode(a);
          const wrong = code === "0000-0000" ? "0000-0001" : "0000-0000";
          const result = await join(c, "envoy-a", wrong);
          assert.equal(result.code, 1);
          assert.match(result.stderr, /wrong pairing code/);
          const burned = await join(c, "envoy-a", code);
          assert.equal(burned.code, 1);
          assert.match(burned.stderr, /no pairing is pending/);
          assert.deepEqual(identityFiles(c), []);
          await waitForLine(a.log, /WARN pair-claim refused .*envoy-c/);
        },
      );

      await t.step("an expired code is refused", async () => {
        const { code } = await startPairing(
          `${a.home}/.vigo-puddle`,
          new Date(Date.now() - 6 * 60 * 1000),
        );
        const result = await join(c, "envoy-a", code);
        assert.equal(result.code, 1);
        assert.match(result.stderr, /expired/);
        assert.deepEqual(identityFiles(c), []);
      });

      await t.step(
        "a wrong passphrase on the joiner writes nothing",
        async () => {
          const code = await pairCode(a);
          const result = await join(c, "envoy-a", code, "not the passphrase");
          assert.equal(result.code, 1);
          assert.match(result.stderr, /passphrase does not unwrap/);
          assert.deepEqual(identityFiles(c), []);
        },
      );

      await t.step("an unreachable founder is a clear error", async () => {
        await stopAgent(fleet!, a);
        const result = await join(c, "envoy-a", "1234-5678");
        assert.equal(result.code, 1);
        assert.match(result.stderr, /unreachable|refused|connect/i);
        assert.deepEqual(identityFiles(c), []);
        await startAgent(fleet!, a);
      });

      await t.step(
        "C joins; all three envoys unlock to the same key",
        async () => {
          const code = await pairCode(a);
          const result = await join(c, "envoy-a", code);
          assert.equal(result.code, 0, result.stderr);
          for (const envoy of [a, b, c]) {
            const unlock = await vigo(
              envoy.env,
              ["swarm", "puddle", "unlock"],
              `${PASS}\n`,
            );
            assert.equal(unlock.code, 0, unlock.stderr);
            const status = await vigo(envoy.env, [
              "swarm",
              "puddle",
              "status",
              "--json",
            ]);
            const report = JSON.parse(status.stdout);
            assert.equal(report.pubkey, pubkey);
            assert.equal(report.session.state, "unlocked");
            await vigo(envoy.env, ["swarm", "puddle", "lock"]);
          }
        },
      );

      await t.step("members on A lists B and C; B lists A", async () => {
        const result = await vigo(a.env, [
          "swarm",
          "puddle",
          "members",
          "--json",
        ]);
        assert.equal(result.code, 0, result.stderr);
        const report = JSON.parse(result.stdout);
        assert.equal(report.envoy, "envoy-a");
        const hosts = report.members.map((m: { host: string }) => m.host)
          .sort();
        assert.deepEqual(hosts, ["envoy-b", "envoy-c"]);
        const text = await vigo(b.env, ["swarm", "puddle", "members"]);
        assert.match(text.stdout, /envoy-a +this envoy joined from it/);
      });

      await t.step(
        "the swarm port refuses strangers and bad requests",
        async () => {
          const tls = tlsOf(b);
          // Unknown user.
          const unknown = await swarmRequest(tls, claimUrl(a, "nosuchuser"), {
            method: "POST",
            body: JSON.stringify({ code: "1234-5678" }),
          });
          assert.equal(unknown.status, 404);
          // Malformed JSON.
          const malformed = await swarmRequest(tls, claimUrl(a, user), {
            method: "POST",
            body: "{code:",
          });
          assert.equal(malformed.status, 400);
          assert.match(malformed.json<{ error: string }>().error, /JSON/);
          // Oversized body.
          const big = await swarmRequest(tls, claimUrl(a, user), {
            method: "POST",
            body: JSON.stringify({ code: "1234-5678", pad: "x".repeat(4096) }),
          });
          assert.equal(big.status, 413);
          // A certificate from another CA never reaches a handler.
          const otherCa = await createFleetCa({ commonName: "other fleet" });
          const stranger = await issueEnvoyCertificate({
            caKeyPem: otherCa.keyPem,
            caCertPem: otherCa.certPem,
            hostname: "envoy-x",
            ips: ["127.0.0.1"],
          });
          await assert.rejects(
            swarmRequest(
              {
                caPem: tls.caPem,
                certPem: stranger.certPem,
                keyPem: stranger.keyPem,
              },
              claimUrl(a, user),
              { method: "POST", body: JSON.stringify({ code: "1234-5678" }) },
            ),
          );
          // No client certificate at all.
          const client = Deno.createHttpClient({ caCerts: [tls.caPem] });
          try {
            await assert.rejects(
              fetch(claimUrl(a, user), { method: "POST", body: "{}", client })
                .then((r) => r.text()),
            );
          } finally {
            client.close();
          }
        },
      );

      await t.step(
        "the agent warns when a session helper dies without locking",
        async () => {
          const unlock = await vigo(
            b.env,
            ["swarm", "puddle", "unlock"],
            `${PASS}\n`,
          );
          assert.equal(unlock.code, 0, unlock.stderr);
          const pid = Number(
            Deno.readTextFileSync(`${b.home}/.vigo-puddle/session.unlocked`),
          );
          Deno.kill(pid, "SIGKILL");
          await waitForLine(
            b.log,
            new RegExp(
              `WARN session helper died without locking user=${user} pid=${pid}$`,
            ),
          );
          // The stale sentinel then reads as locked.
          const status = await vigo(b.env, [
            "swarm",
            "puddle",
            "status",
            "--json",
          ]);
          assert.equal(JSON.parse(status.stdout).session.state, "locked");
        },
      );

      await t.step(
        "the air-gapped path: copy the three files, then unlock",
        async () => {
          const base = Deno.makeTempDirSync({ prefix: "vigo-airgap-" });
          try {
            const user2 = makeUserEnv(base);
            Deno.mkdirSync(`${user2.home}/.vigo-puddle`, { mode: 0o700 });
            for (
              const name of [
                "identity.wrapped",
                "identity.salt",
                "identity.pub",
              ]
            ) {
              Deno.copyFileSync(
                `${a.home}/.vigo-puddle/${name}`,
                `${user2.home}/.vigo-puddle/${name}`,
              );
              Deno.chmodSync(
                `${user2.home}/.vigo-puddle/${name}`,
                name.endsWith(".pub") ? 0o644 : 0o600,
              );
            }
            const unlock = await vigo(
              user2.env,
              ["swarm", "puddle", "unlock"],
              `${PASS}\n`,
            );
            assert.equal(unlock.code, 0, unlock.stderr);
            const shown = await vigo(user2.env, ["swarm", "puddle", "pubkey"]);
            assert.equal(shown.stdout.trim(), pubkey);
            await vigo(user2.env, ["swarm", "puddle", "lock"]);
          } finally {
            Deno.removeSync(base, { recursive: true });
          }
        },
      );
    } finally {
      if (fleet) await fleetDown(dir);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
