/**
 * Key rotation on a real three-envoy fleet, one puddle: the user founds a
 * project on envoy-a, rotates the key there (`rekey-pair`) and takes the
 * new key on envoy-b and envoy-c (`rekey --from`). The same project id
 * keeps cloning, pushing, fanning out and catching up everywhere, with no
 * other step, and the retired key is refused for new signatures on every
 * envoy: as a local user who still holds it, and as an enrolled envoy
 * presenting a token the retired key minted after its retirement (the
 * deposed-founder attack).
 *
 * Before delegations were sealed, the attacker's token, an admin token
 * under the genesis bootstrap with any `not_before`, verified: every
 * envoy took its delivery (see "the deposed founder…" below).
 */

import assert from "node:assert/strict";
import { type Envoy, startAgent, stopAgent } from "../scripts/fleet.ts";
import { vigo, withGitback } from "./support/cli.ts";
import { foundProject, pairPuddle, puddleKey } from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { repoOf, tlsOf } from "./support/envoy_files.ts";
import { converged, refListing } from "./support/converge.ts";
import { gitIn } from "./support/git.ts";
import { waitForLine, waitForPath } from "./support/wait.ts";
import { signedMemberHeader } from "./support/member_binding.ts";
import { unwrapSeed } from "../src/crypto/wrap.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { CHAIN_HEADER, REFS_HEADER } from "../src/agent/fanout.ts";
import { MEMBER_HEADER } from "../src/agent/member_proof.ts";
import {
  decodeToken,
  mintChildToken,
  mintSuccessorToken,
} from "../src/gitback/tokens.ts";
import { signDelegation } from "../src/gitback/delegations.ts";
import {
  nextRefStateBody,
  readRefStates,
  signRefState,
} from "../src/gitback/ref_state.ts";
import { readDelegations } from "../src/gitback/project.ts";
import { reissueRekeyCode } from "../src/puddle/rekey.ts";

const PASS = "rotation passphrase";

const refsOn = refListing();

function puddleFiles(envoy: Envoy): Record<string, Uint8Array> {
  const dir = `${envoy.home}/.vigo-puddle`;
  const files: Record<string, Uint8Array> = {};
  for (const name of ["identity.wrapped", "identity.salt", "identity.pub"]) {
    files[name] = Deno.readFileSync(`${dir}/${name}`);
  }
  return files;
}

/** A fresh rekey code from `rekey-pair --reissue` on `envoy`. */
async function reissuedCode(envoy: Envoy): Promise<string> {
  const out = await vigo(envoy.env, [
    "swarm",
    "puddle",
    "rekey-pair",
    "--reissue",
  ]);
  assert.equal(out.code, 0, out.stderr);
  return /rekey code: (\d{4}-\d{4})/.exec(out.stdout)![1];
}

function json(value: unknown): string {
  return encodeBase64(new TextEncoder().encode(JSON.stringify(value)));
}

fleetTest(
  "key rotation: rekey-pair on one envoy and rekey --from on the others keep the project working, and the retired key is refused everywhere",
  { prefix: "vigo-rekey-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    const projectId = await foundProject(a, dir, "work", PASS);
    const oldKey = await puddleKey(a);
    const oldFiles = puddleFiles(a);
    const gitbackDir = `${a.home}/.vigo-gitback`;
    const oldTokens = Deno.readFileSync(
      `${gitbackDir}/${projectId}/tokens.json`,
    );
    await pairPuddle(a, b, PASS);
    await pairPuddle(a, c, PASS);
    for (const envoy of [b, c]) {
      await waitForPath(
        `${envoy.home}/.vigo-gitback/${projectId}/tokens.json`,
      );
    }
    await converged(a, [b, c], projectId);

    let newKey = "";
    await t.step("rekey-pair on envoy-a rotates the key there", async () => {
      const out = await vigo(
        a.env,
        ["swarm", "puddle", "rekey-pair"],
        `${PASS}\n`,
      );
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /now founded by the new key: work/);
      newKey = await puddleKey(a);
      assert.notEqual(newKey, oldKey);
      const code = /rekey code: (\d{4}-\d{4})/.exec(out.stdout)![1];
      const rekeyB = (code: string) =>
        vigo(
          b.env,
          ["swarm", "puddle", "rekey", "--from", a.name],
          `${code}\n${PASS}\n`,
        );
      const before = puddleFiles(b);
      const refused = async (code: string, reason: RegExp) => {
        const out = await rekeyB(code);
        assert.equal(out.code, 1, out.stdout);
        assert.match(out.stderr, reason);
        assert.match(out.stderr, /nothing was written/);
        assert.deepEqual(puddleFiles(b), before);
      };
      const wrong = code === "0000-0000" ? "0000-0001" : "0000-0000";
      await refused(wrong, /wrong rekey code/);
      await refused(code, /no rekey is pending/);
      const expired = await reissueRekeyCode(
        `${a.home}/.vigo-puddle`,
        null,
        new Date(Date.now() - 6 * 60 * 1000),
      );
      await refused(expired.code, /expired/);
      const taken = await rekeyB(await reissuedCode(a));
      assert.equal(taken.code, 0, taken.stderr);
      assert.match(taken.stdout, /now founded by the new key: work/);
    });

    await t.step(
      "envoy-c takes the key with a reissued code, and every envoy unlocks to the new key",
      async () => {
        const code = await reissuedCode(a);
        const rekeyC = await vigo(
          c.env,
          ["swarm", "puddle", "rekey", "--from", a.name],
          `${code}\n${PASS}\n`,
        );
        assert.equal(rekeyC.code, 0, rekeyC.stderr);
        for (const envoy of [b, c]) {
          const unlock = await vigo(
            envoy.env,
            ["swarm", "puddle", "unlock"],
            `${PASS}\n`,
          );
          assert.equal(unlock.code, 0, unlock.stderr);
        }
        for (const envoy of [a, b, c]) {
          assert.equal(await puddleKey(envoy), newKey, envoy.name);
          const status = JSON.parse(
            (await vigo(envoy.env, ["swarm", "puddle", "status", "--json"]))
              .stdout,
          );
          assert.deepEqual(status.rotation.retired, [oldKey], envoy.name);
          const project = await vigo(envoy.env, [
            "swarm",
            "gitback",
            "project",
            "status",
            "work",
          ]);
          assert.match(project.stdout, /delegations: 1 hop\(s\)/);
          assert.match(project.stdout, new RegExp(`founder now: ${newKey}`));
        }
      },
    );

    const work = `${dir}/work/work`;
    Deno.mkdirSync(`${dir}/tools`);
    const withGit = withGitback(`${dir}/tools`);
    const gitA = gitIn(withGit(a.env), work);

    await t.step(
      "pushes on envoy-a fan out to envoy-b and envoy-c",
      async () => {
        await gitA(
          "commit",
          "--quiet",
          "--allow-empty",
          "-m",
          "after rotation",
        );
        await gitA("push", "--quiet", "swarm", "main");
        await converged(a, [b, c], projectId);
      },
    );

    await t.step("envoy-b clones and pushes under the new key", async () => {
      const clone = `${dir}/clone-b`;
      const gitB = gitIn(withGit(b.env), dir);
      await gitB("clone", "--quiet", `gitback://${projectId}/work`, clone);
      const inClone = gitIn(withGit(b.env), clone);
      await inClone("commit", "--quiet", "--allow-empty", "-m", "from b");
      await inClone("push", "--quiet", "origin", "main");
      await converged(b, [a, c], projectId);
    });

    await t.step("envoy-c, down during a push, catches up", async () => {
      await stopAgent(fleet, c);
      await gitA("pull", "--quiet", "swarm", "main");
      await gitA("commit", "--quiet", "--allow-empty", "-m", "while c slept");
      await gitA("push", "--quiet", "swarm", "main");
      await converged(a, [b], projectId);
      await startAgent(fleet, c);
      await converged(a, [c], projectId);
    });

    await t.step(
      "an envoy that joins after the rotation gets the rotation log with the key",
      async () => {
        await vigo(c.env, ["swarm", "puddle", "lock"]);
        const dir = `${c.home}/.vigo-puddle`;
        for (const name of [...Object.keys(oldFiles), "retired_puddles.json"]) {
          Deno.removeSync(`${dir}/${name}`);
        }
        await pairPuddle(a, c, PASS);
        const status = JSON.parse(
          (await vigo(c.env, ["swarm", "puddle", "status", "--json"])).stdout,
        );
        assert.equal(status.pubkey, newKey);
        assert.deepEqual(status.rotation.retired, [oldKey]);
        assert.equal(
          Deno.readTextFileSync(`${dir}/retired_puddles.json`),
          Deno.readTextFileSync(`${a.home}/.vigo-puddle/retired_puddles.json`),
        );
      },
    );

    await t.step(
      "a user who puts the retired key and its old chain back is refused by the agent",
      async () => {
        const puddleDir = `${a.home}/.vigo-puddle`;
        const lock = await vigo(a.env, ["swarm", "puddle", "lock"]);
        assert.equal(lock.code, 0, lock.stderr);
        const saved = puddleFiles(a);
        const savedTokens = Deno.readFileSync(
          `${gitbackDir}/${projectId}/tokens.json`,
        );
        const savedDelegations = Deno.readFileSync(
          `${gitbackDir}/${projectId}/delegations.json`,
        );
        try {
          for (const [name, data] of Object.entries(oldFiles)) {
            Deno.writeFileSync(`${puddleDir}/${name}`, data);
          }
          Deno.writeFileSync(
            `${gitbackDir}/${projectId}/tokens.json`,
            oldTokens,
          );
          Deno.removeSync(`${gitbackDir}/${projectId}/delegations.json`);
          const unlock = await vigo(
            a.env,
            ["swarm", "puddle", "unlock"],
            `${PASS}\n`,
          );
          assert.equal(unlock.code, 0, unlock.stderr);
          assert.equal(await puddleKey(a), oldKey);
          const fetch = await new Deno.Command("git", {
            args: ["-C", work, "fetch", "swarm"],
            env: withGit(a.env),
            clearEnv: true,
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.equal(fetch.success, false);
          assert.match(
            new TextDecoder().decode(fetch.stderr),
            /retired/,
          );
        } finally {
          await vigo(a.env, ["swarm", "puddle", "lock"]);
          for (const [name, data] of Object.entries(saved)) {
            Deno.writeFileSync(`${puddleDir}/${name}`, data);
          }
          Deno.writeFileSync(
            `${gitbackDir}/${projectId}/tokens.json`,
            savedTokens,
          );
          Deno.writeFileSync(
            `${gitbackDir}/${projectId}/delegations.json`,
            savedDelegations,
          );
          const unlock = await vigo(
            a.env,
            ["swarm", "puddle", "unlock"],
            `${PASS}\n`,
          );
          assert.equal(unlock.code, 0, unlock.stderr);
        }
      },
    );

    /** The retired key, from the identity files saved before the rotation. */
    const deposedKey = async () =>
      seedSigner(
        await unwrapSeed(
          oldFiles["identity.wrapped"],
          new TextEncoder().encode(PASS),
          oldFiles["identity.salt"],
        ),
      );
    const bootstrap = JSON.parse(new TextDecoder().decode(oldTokens)).chain[0];
    /**
     * Envoy-a's certificate delivers to `envoy` a state deleting every ref
     * (an admin may), signed by `attacker` under `chain`, with `offered`
     * delegations; returns the answer. The refs must not move.
     */
    const deliverAs = async (
      envoy: Envoy,
      attackerSeed: Uint8Array,
      chain: unknown[],
      offered: unknown[],
    ) => {
      const attacker = seedSigner(attackerSeed);
      const before = await refsOn(envoy, projectId);
      const state = await signRefState(
        attacker,
        nextRefStateBody({
          projectId,
          parent: readRefStates(repoOf(envoy, projectId)).current!,
          refs: new Map(),
          signer: attacker.publicKey,
        }),
        chain,
      );
      const response = await swarmRequest(
        tlsOf(a),
        `https://${envoy.address}:1531/swarm/gitback/push/${projectId}`,
        {
          method: "POST",
          body: new Uint8Array(0),
          headers: {
            [CHAIN_HEADER]: json({ chain, delegations: offered }),
            [REFS_HEADER]: json([state]),
            [MEMBER_HEADER]: signedMemberHeader(attackerSeed, a.name),
          },
        },
      );
      assert.equal(await refsOn(envoy, projectId), before);
      return {
        status: response.status,
        text: new TextDecoder().decode(response.body),
      };
    };

    await t.step(
      "the deposed founder's new admin token is refused by every envoy, whatever its not_before",
      async () => {
        const deposed = await deposedKey();
        const attackerSeed = generateSeed();
        const attacker = seedSigner(attackerSeed);
        const delegations = readDelegations(gitbackDir, projectId);
        for (
          const notBefore of [
            decodeToken(bootstrap).body.not_before,
            Math.floor(Date.now() / 1000),
          ]
        ) {
          const minted = await mintChildToken(deposed, [bootstrap], {
            subject: attacker.publicKey,
            role: "admin",
            now: notBefore,
          });
          for (const envoy of [b, c]) {
            // With and without the delegations: the envoy knows them.
            for (const offered of [[], delegations]) {
              const { status, text } = await deliverAs(
                envoy,
                attackerSeed,
                [bootstrap, minted],
                offered,
              );
              assert.equal(status, 403, `${envoy.name}: ${text}`);
              assert.match(text, /seal/);
            }
          }
        }
        assert.notEqual(formatPublicKey(attacker.publicKey), newKey);
      },
    );

    await t.step(
      "a second, validly signed delegation from the deposed key loses to the first, and the envoy reports the conflict",
      async () => {
        const deposed = await deposedKey();
        const attackerSeed = generateSeed();
        const attacker = seedSigner(attackerSeed);
        // The deposed key hands the project to the attacker its own way.
        const theirs = await signDelegation(deposed, {
          projectId,
          position: 1,
          previous: null,
          to: attacker.publicKey,
          sealed: [decodeToken(bootstrap).id],
        });
        const chain = [
          bootstrap,
          await mintSuccessorToken(attacker, bootstrap),
        ];
        const refused = await deliverAs(b, attackerSeed, chain, [theirs]);
        assert.equal(refused.status, 403, refused.text);
        await waitForLine(b.log, /WARN delegation conflict .*position=1/);
        const status = await vigo(b.env, [
          "swarm",
          "gitback",
          "project",
          "status",
          "work",
        ]);
        assert.match(status.stdout, /CONFLICTED/);
        assert.match(status.stdout, new RegExp(`founder now: ${newKey}`));
      },
    );
  },
);
