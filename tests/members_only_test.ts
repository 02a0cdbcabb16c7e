/**
 * Members-only means members only: a chain proves nothing without its
 * member's binding to the envoy presenting it, so an enrolled envoy with no
 * member cannot fetch, list or receive a members-only project, even with a
 * member's chain and binding copied from another envoy; fan-out sends the
 * project only where a member proved to live.
 */

import assert from "node:assert/strict";
import type { Envoy } from "../scripts/fleet.ts";
import { withGitback } from "./support/cli.ts";
import {
  foundProject,
  initAndUnlockPuddle,
  inviteAndJoin,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { repoOf, tipOn, tlsOf } from "./support/envoy_files.ts";
import { gitIn } from "./support/git.ts";
import { memberHeaderOn } from "./support/member_binding.ts";
import { waitForLine, waitUntil } from "./support/wait.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { exists } from "../src/platform/fs.ts";

fleetTest(
  "members-only: an envoy without a member gets nothing, even with a member's chain and binding copied",
  { prefix: "vigo-members-only-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    // P1 founds a members-only project on envoy-a; P2, a member, lives on
    // envoy-b; nobody on envoy-c is a member.
    await initAndUnlockPuddle(b, "p2");
    const projectId = await foundProject(a, dir, "secret", "p1", [
      "--scope",
      "members-only",
    ]);
    const p2 = await inviteAndJoin(a, b, "secret", projectId, dir);
    const git = gitIn(withGitback(dir)(a.env), `${dir}/secret/work`);
    await git("commit", "--quiet", "--allow-empty", "-m", "more");
    await git("push", "--quiet", "swarm", "main");
    const head = await git("rev-parse", "HEAD");

    await t.step("fan-out reaches the member's envoy only", async () => {
      await waitUntil(
        "envoy-b to hold the push",
        async () => await tipOn(b, projectId) === head,
      );
      await waitForLine(
        a.log,
        /WARN fan-out failed .*peer=envoy-c .*no member of this members-only project/,
      );
      assert.equal(exists(repoOf(c, projectId)), false);
    });

    // What envoy-c, enrolled but with no member, can copy: P1's chain and
    // P1's binding to envoy-a, and P2's binding to envoy-b.
    const chain = JSON.parse(
      Deno.readTextFileSync(
        `${a.home}/.vigo-gitback/${projectId}/tokens.json`,
      ),
    ).chain;
    const chainHeader = encodeBase64(
      new TextEncoder().encode(JSON.stringify(chain)),
    );
    const copied = memberHeaderOn(a);
    const tls = tlsOf(c);
    const ask = (
      envoy: Envoy,
      path: string,
      headers: Record<string, string>,
    ) =>
      swarmRequest(tls, `https://${envoy.address}:1531${path}`, {
        headers,
      });

    await t.step("a copied chain fetches no bundle", async () => {
      const path = `/swarm/gitback/bundle/${projectId}`;
      const bare = await ask(a, path, { "x-vigo-chain": chainHeader });
      assert.equal(bare.status, 403, new TextDecoder().decode(bare.body));
      assert.match(new TextDecoder().decode(bare.body), /binding/);
      const withCopy = await ask(a, path, {
        "x-vigo-chain": chainHeader,
        "x-vigo-member": copied,
      });
      assert.equal(
        withCopy.status,
        403,
        new TextDecoder().decode(withCopy.body),
      );
      assert.match(
        new TextDecoder().decode(withCopy.body),
        /names \\"envoy-a\\", not this envoy/,
      );
      // The same chain and binding from envoy-a itself is served: the
      // refusal is about who asks.
      const own = await swarmRequest(
        tlsOf(a),
        `https://${b.address}:1531${path}`,
        { headers: { "x-vigo-chain": chainHeader, "x-vigo-member": copied } },
      );
      assert.equal(own.status, 200);
    });

    await t.step(
      "a copied chain lists no members and no chains",
      async () => {
        const members = await ask(a, `/swarm/gitback/members/${projectId}`, {
          "x-vigo-chain": chainHeader,
          "x-vigo-member": copied,
        });
        assert.equal(members.status, 403);
        const chains = await ask(
          b,
          `/swarm/gitback/chains/${projectId}/${p2.slice("ed25519:".length)}`,
          { "x-vigo-member": memberHeaderOn(b, p2) },
        );
        assert.equal(
          chains.status,
          403,
          new TextDecoder().decode(chains.body),
        );
      },
    );

    await t.step(
      "a copied chain lists none of the project's envelopes",
      async () => {
        const path = `/swarm/gitback/envelopes/${projectId}/all`;
        assert.equal((await ask(a, path, {})).status, 401);
        const withCopy = await ask(a, path, {
          "x-vigo-chain": chainHeader,
          "x-vigo-member": copied,
        });
        assert.equal(withCopy.status, 403);
        // envoy-b, where P2 lives, presents P2's own chain and binding.
        const p2Chain = JSON.parse(
          Deno.readTextFileSync(
            `${b.home}/.vigo-gitback/${projectId}/tokens.json`,
          ),
        ).chain;
        const own = await swarmRequest(
          tlsOf(b),
          `https://${a.address}:1531${path}`,
          {
            headers: {
              "x-vigo-chain": encodeBase64(
                new TextEncoder().encode(JSON.stringify(p2Chain)),
              ),
              "x-vigo-member": memberHeaderOn(b, p2),
            },
          },
        );
        assert.equal(own.status, 200);
      },
    );

    await t.step("a copied chain delivers nothing", async () => {
      const states = JSON.parse(
        Deno.readTextFileSync(`${repoOf(a, projectId)}/vigo-refs.json`),
      ).current;
      const response = await swarmRequest(
        tls,
        `https://${b.address}:1531/swarm/gitback/push/${projectId}`,
        {
          method: "POST",
          body: new Uint8Array(0),
          headers: {
            "x-vigo-chain": chainHeader,
            "x-vigo-member": copied,
            "x-vigo-refs": encodeBase64(
              new TextEncoder().encode(JSON.stringify([states])),
            ),
          },
        },
      );
      assert.equal(
        response.status,
        403,
        new TextDecoder().decode(response.body),
      );
    });
  },
);
