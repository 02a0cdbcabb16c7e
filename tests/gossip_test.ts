/**
 * Envelope gossip across three envoys: a revocation issued on A reaches B at
 * once and C, which was offline, within a reconcile period; from then on
 * every envoy refuses the revoked token.
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
import { VIGO, vigo, withGitback } from "./support/cli.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { runCommand } from "../src/platform/process.ts";
import {
  formatPublicKey,
  generateSeed,
  publicKeyFromSeed,
} from "../src/crypto/ed25519.ts";
import { decodeToken } from "../src/gitback/tokens.ts";
import { waitForLine, waitForPath } from "./support/wait.ts";
import { tlsOf } from "./support/envoy_files.ts";

const PASS = "gossip passphrase";

Deno.test({
  name:
    "gossip: a revocation reaches every envoy, including one that was offline",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-gossip-" });
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 3,
      });
      const [a, b, c] = fleet.envoys;
      const env = withGitback(dir)(a.env);
      assert.equal(
        (await vigo(a.env, ["swarm", "puddle", "init"], `${PASS}\n${PASS}\n`))
          .code,
        0,
      );
      assert.equal(
        (await vigo(a.env, ["swarm", "puddle", "unlock"], `${PASS}\n`)).code,
        0,
      );
      const work = `${dir}/work`;
      Deno.mkdirSync(work);
      for (
        const args of [["init", "--quiet", "-b", "main"], [
          "commit",
          "--quiet",
          "--allow-empty",
          "-m",
          "one",
        ]]
      ) {
        assert.equal(
          (await runCommand("git", { args, env, clearEnv: true, cwd: work }))
            .code,
          0,
        );
      }
      const init = await runCommand(VIGO, {
        args: ["swarm", "gitback", "project", "init", "work"],
        env,
        clearEnv: true,
        cwd: work,
      });
      assert.equal(init.code, 0, init.stderr);
      const projectId = /gitback:\/\/([0-9a-f]{64})\//.exec(init.stdout)![1];

      // A member token for some other puddle, then its revocation while C is down.
      const member = formatPublicKey(publicKeyFromSeed(generateSeed()));
      const invite = await vigo(a.env, [
        "swarm",
        "gitback",
        "project",
        "invite",
        "work",
        "--puddle",
        member,
        "--role",
        "member",
      ]);
      assert.equal(invite.code, 0, invite.stderr);
      const memberChain = JSON.parse(invite.stdout).chain;
      const tokenId = decodeToken(memberChain[memberChain.length - 1]).id;
      await stopAgent(fleet, c);
      const revoke = await vigo(a.env, [
        "swarm",
        "gitback",
        "project",
        "revoke",
        "work",
        "--token-id",
        tokenId,
      ]);
      assert.equal(revoke.code, 0, revoke.stderr);

      const stored = (e: Envoy) =>
        `${e.root}/var/lib/vigo/swarm/gitback/envelopes/${projectId}/revokes/${tokenId}.json`;
      await waitForPath(stored(a));
      await waitForPath(stored(b));
      assert.throws(() => Deno.statSync(stored(c)));

      // C comes back and reconciles by digest within one period (3 s here).
      await startAgent(fleet, c);
      await waitForPath(stored(c));
      await waitForLine(c.log, /reconcile merged envelopes count=1/);

      // Every envoy now refuses the revoked token.
      const bundleFile = `${dir}/b.bundle`;
      assert.equal(
        (await runCommand("git", {
          args: ["bundle", "create", "--quiet", bundleFile, "--all"],
          env,
          clearEnv: true,
          cwd: work,
        })).code,
        0,
      );
      const header = {
        "x-vigo-chain": encodeBase64(
          new TextEncoder().encode(JSON.stringify(memberChain)),
        ),
      };
      for (const target of [b, c]) {
        const response = await swarmRequest(
          tlsOf(a),
          `https://${target.address}:1531/swarm/gitback/push/${projectId}`,
          {
            method: "POST",
            body: Deno.readFileSync(bundleFile),
            headers: header,
          },
        );
        assert.equal(response.status, 403, target.name);
        assert.match(response.json<{ error: string }>().error, /revoked/);
      }

      // A forged envelope is refused and stored nowhere.
      const forged = await swarmRequest(
        tlsOf(a),
        `https://${b.address}:1531/swarm/gitback/envelopes/${projectId}/revokes`,
        {
          method: "POST",
          body: JSON.stringify({ body: "e30=", sig: "00".repeat(64) }),
        },
      );
      assert.equal(forged.status, 403);
      await waitForLine(b.log, /WARN signature failure on gossiped envelope/);
    } finally {
      if (fleet) await fleetDown(`${dir}/fleet`);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
