/**
 * Leaving stays left: after `gitback purge --yes`, `project leave` or
 * `project leave --purge`, nothing brings the project back for that user on
 * that envoy (not `puddle unlock` on either envoy, not the agent's
 * membership adoption, not DR catch-up), although the other envoy still
 * holds the repository and a chain of that user's that it hands out. A
 * LEAVE is honoured by every envoy like a revocation of the left token.
 * Joining again (a new invitation, or founding again) brings the project
 * back.
 */

import assert from "node:assert/strict";
import { type Envoy, startAgent, stopAgent } from "../scripts/fleet.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import {
  formatPublicKey,
  generateSeed,
  parsePublicKey,
} from "../src/crypto/ed25519.ts";
import { projectId as makeProjectId } from "../src/gitback/project_id.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  type SignedToken,
} from "../src/gitback/tokens.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { exists } from "../src/platform/fs.ts";
import { runCommand } from "../src/platform/process.ts";
import { vigo, withGitback } from "./support/cli.ts";
import {
  foundProject,
  pairPuddle,
  puddleKey,
  rewrites,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import {
  announcedCache,
  gitbackDir,
  repoOf,
  tlsOf,
} from "./support/envoy_files.ts";
import { waitForPath, waitUntil } from "./support/wait.ts";
import { memberHeaderOn } from "./support/member_binding.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";

const PASS = "stays-left passphrase";

function storedLeaves(envoy: Envoy, projectId: string): string[] {
  try {
    return [
      ...Deno.readDirSync(
        `${gitbackDir(envoy)}/envelopes/${projectId}/leaves`,
      ),
    ].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** True when the fleet's user holds state for `projectId` on `envoy`. */
function holds(envoy: Envoy, projectId: string): boolean {
  return exists(`${envoy.home}/.vigo-gitback/${projectId}/project.json`);
}

fleetTest(
  "a project left or purged never comes back for its user on that envoy until they join again, and every envoy refuses the left token",
  { prefix: "vigo-stays-left-", envoys: 2 },
  async ({ dir, fleet, t }) => {
    const [a, b] = fleet.envoys;

    // U, the fleet's user, founds `mine` on envoy-a; the push lands on
    // envoy-b too.
    const mine = await foundProject(a, dir, "mine", PASS);
    const me = await puddleKey(a);
    // U's puddle on envoy-b, unlocked there: envoy-b's agent learns U's key.
    await pairPuddle(a, b, PASS);

    // `shared` is founded by a key only this test holds; every
    // invitation makes U a member with a new token.
    const founder = seedSigner(generateSeed());
    const shared = await makeProjectId(founder.publicKey, "shared");
    const root = await mintBootstrapToken(founder, "shared");
    let invitations = 0;
    const joinShared = async (): Promise<SignedToken[]> => {
      const chain = [
        root,
        await mintChildToken(founder, [root], {
          subject: parsePublicKey(me),
          role: "member",
        }),
      ];
      const path = `${dir}/invitation-${++invitations}.json`;
      Deno.writeTextFileSync(
        path,
        JSON.stringify({
          version: 1,
          project: {
            project_id: shared,
            handle: "shared",
            founder: formatPublicKey(founder.publicKey),
            scope: "swarm-wide",
            members: [formatPublicKey(founder.publicKey), me],
          },
          chain,
          delegations: [],
        }),
      );
      const join = await vigo(a.env, [
        "swarm",
        "gitback",
        "project",
        "join",
        shared,
        "--invitation",
        path,
      ]);
      assert.equal(join.code, 0, join.stderr);
      return chain;
    };
    let chain = await joinShared();

    // U publishes `shared` from envoy-a; it lands on envoy-b.
    const work = `${dir}/shared/work`;
    Deno.mkdirSync(work, { recursive: true });
    const withGit = withGitback(`${dir}/shared`);
    const git = (args: string[]) =>
      runCommand("git", {
        args,
        env: withGit(a.env),
        clearEnv: true,
        cwd: work,
      });
    for (
      const args of [
        ["init", "--quiet", "-b", "main"],
        ["commit", "--quiet", "--allow-empty", "-m", "one"],
        ["push", "--quiet", `gitback://${shared}/shared`, "main"],
      ]
    ) {
      const out = await git(args);
      assert.equal(out.code, 0, out.stderr);
    }
    // Envoy-b holds both repositories, and its agent adopted U's
    // membership of `shared` from envoy-a: from now on envoy-b hands
    // that first chain out to anyone who asks for U's key.
    await waitForPath(repoOf(b, mine));
    await waitForPath(repoOf(b, shared));
    await waitForPath(`${b.home}/.vigo-gitback/${shared}/tokens.json`);

    const bothConfirmed = () => {
      try {
        const cache = Deno.readTextFileSync(announcedCache(a));
        return cache.includes(mine) && cache.includes(shared);
      } catch {
        return false;
      }
    };
    const unlock = async (envoy: Envoy) => {
      await vigo(envoy.env, ["swarm", "puddle", "lock"]);
      const out = await vigo(
        envoy.env,
        ["swarm", "puddle", "unlock"],
        `${PASS}\n`,
      );
      assert.equal(out.code, 0, out.stderr);
      return out.stdout;
    };

    /**
     * U drops projects on envoy-a with `drop`, while envoy-a's agent is
     * stopped, so that nothing but unlock could act: unlock there adopts
     * nothing. Then, with the agent running again (and `settled` done),
     * unlock on envoy-b and whole catch-up passes on envoy-a (each runs
     * member adoption and the pull) once it knows again that envoy-b holds
     * both projects: `ids` do not come back for U on envoy-a, nor the
     * repositories `repos`.
     */
    const staysGone = async (
      drop: () => Promise<void>,
      ids: string[],
      repos: string[],
      settled: () => Promise<void> = async () => {},
    ) => {
      await waitUntil(
        "envoy-a to confirm both projects on envoy-b",
        bothConfirmed,
      );
      await stopAgent(fleet, a);
      await drop();
      assert.doesNotMatch(await unlock(a), /adopted:/);
      for (const id of ids) {
        assert.ok(!holds(a, id), `unlock brought ${id} back on envoy-a`);
      }
      await startAgent(fleet, a);
      await settled();
      // (On envoy-b, U may still adopt `mine`, which U never left there.)
      await unlock(b);
      await rewrites(announcedCache(a), 1);
      await waitUntil(
        "envoy-a to confirm both projects again",
        bothConfirmed,
      );
      await rewrites(announcedCache(a), 3);
      for (const id of ids) {
        assert.ok(!holds(a, id), `project ${id} came back on envoy-a`);
      }
      for (const id of repos) {
        assert.ok(
          !exists(repoOf(a, id)),
          `the repository of ${id} came back on envoy-a`,
        );
      }
    };

    /**
     * What envoy `target` answers when `asker` asks for the bundle of
     * `shared` with `chain` and U's binding to `asker` (U unlocked on
     * both envoys): 200 or 404 once the chain is granted.
     */
    const bundleAnswer = async (
      asker: Envoy,
      target: Envoy,
      chain: SignedToken[],
    ) => {
      const response = await swarmRequest(
        tlsOf(asker),
        `https://${target.address}:1531/swarm/gitback/bundle/${shared}`,
        {
          headers: {
            "x-vigo-chain": encodeBase64(
              new TextEncoder().encode(JSON.stringify(chain)),
            ),
            "x-vigo-member": memberHeaderOn(asker, me),
          },
          timeoutMs: 10_000,
        },
      );
      return {
        status: response.status,
        text: new TextDecoder().decode(response.body),
      };
    };
    const granted = (status: number) => status === 200 || status === 404;

    /** U leaves `shared` on envoy-a; returns a wait for both envoys to store the LEAVE. */
    const leaveShared = async (extra: string[]) => {
      const before = storedLeaves(a, shared).length;
      const leave = await vigo(a.env, [
        "swarm",
        "gitback",
        "project",
        "leave",
        shared,
        "--yes",
        ...extra,
      ]);
      assert.equal(leave.code, 0, leave.stderr);
      assert.ok(!holds(a, shared));
      return async () => {
        await waitUntil(
          "envoy-a's sweep to store the LEAVE and drop the project directory",
          () =>
            storedLeaves(a, shared).length === before + 1 &&
            !exists(`${a.home}/.vigo-gitback/${shared}`),
        );
        await waitUntil(
          "envoy-b to receive the LEAVE",
          () => storedLeaves(b, shared).length === before + 1,
        );
      };
    };

    await t.step(
      "after gitback purge --yes, neither project comes back until U joins and founds again",
      async () => {
        // Purge signs nothing: envoy-b still hands out U's chains.
        await staysGone(
          async () => {
            const purge = await vigo(a.env, [
              "swarm",
              "gitback",
              "purge",
              "--yes",
            ]);
            assert.equal(purge.code, 0, purge.stderr);
            assert.ok(!holds(a, mine) && !holds(a, shared));
            assert.ok(
              !exists(repoOf(a, mine)) && !exists(repoOf(a, shared)),
            );
          },
          [mine, shared],
          [mine, shared],
        );

        chain = await joinShared();
        const init = await vigo(a.env, [
          "swarm",
          "gitback",
          "project",
          "init",
          "mine",
          "--no-push",
        ]);
        assert.equal(init.code, 0, init.stderr);
        await waitUntil(
          "catch-up to bring both repositories back to envoy-a",
          () => exists(repoOf(a, mine)) && exists(repoOf(a, shared)),
        );
      },
    );

    await t.step(
      "after leave, the project does not come back, and both envoys refuse the left token",
      async () => {
        const left = chain;
        assert.ok(granted((await bundleAnswer(b, a, left)).status));
        let stored = async () => {};
        await staysGone(
          async () => {
            stored = await leaveShared([]);
          },
          [shared],
          [],
          async () => {
            await stored();
            for (const [asker, target] of [[b, a], [a, b]]) {
              const answer = await bundleAnswer(asker, target, left);
              assert.equal(
                answer.status,
                403,
                `${target.name}: ${answer.text}`,
              );
              assert.match(
                answer.text,
                new RegExp(`token ${decodeToken(left[1]).id} .*revoked`),
              );
            }
          },
        );

        // Joining again: a new token, which works at once.
        chain = await joinShared();
        assert.ok(granted((await bundleAnswer(b, a, chain)).status));
        const remote = await git([
          "ls-remote",
          `gitback://${shared}/shared`,
        ]);
        assert.equal(remote.code, 0, remote.stderr);
        assert.match(remote.stdout, /refs\/heads\/main/);
      },
    );

    await t.step(
      "after leave --purge, neither the project nor its repository comes back until U joins again",
      async () => {
        let stored = async () => {};
        await staysGone(
          async () => {
            stored = await leaveShared(["--purge"]);
            assert.ok(!exists(repoOf(a, shared)));
          },
          [shared],
          [shared],
          () => stored(),
        );

        chain = await joinShared();
        await waitUntil(
          "catch-up to bring the repository back to envoy-a",
          () => exists(repoOf(a, shared)),
        );
        assert.ok(holds(a, shared));
      },
    );
  },
);
