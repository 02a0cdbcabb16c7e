/**
 * The fleet server on a real local fleet: three agents check in over mutual
 * TLS, Dan's puddle shows Healthy on three envoys in the store, the web
 * pages (loaded in a real headless chromium) and `vigo swarm gitback show`;
 * his friendly name reaches every envoy and clones resolve it; refused
 * traits change nothing; a published usercrate reaches every agent; and a
 * stopped envoy turns the puddle Warning.
 */

import assert from "node:assert/strict";
import { vigo, withGitback } from "./support/cli.ts";
import { foundProject, pairPuddle, puddleKey } from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { tlsOf } from "./support/envoy_files.ts";
import { waitForPath, waitUntil } from "./support/wait.ts";
import { chromiumPath, domOf, screenshot } from "./support/browser.ts";
import { FLEET_SERVER_PORT, stopAgent } from "../scripts/fleet.ts";
import { runCommand } from "../src/platform/process.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { openFleetStore } from "../src/fleet/store.ts";
import { fleetStorePath } from "../src/fleet/server_config.ts";
import { signNameClaim } from "../src/puddle/names.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";
import type { PuddleRow } from "../src/fleet/health.ts";
import type { GitbackRow } from "../src/fleet/gitback_mesh.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const PASS = "fleet server passphrase";
/** Check-ins every 2 s: an envoy is stale after 6 s; rows settle well within this. */
const SETTLE_MS = 60_000;

fleetTest(
  "fleet server: check-ins, names, pages, publishing and staleness",
  { prefix: "vigo-fleet-server-", envoys: 3, server: true },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    const server = fleet.server!;
    const web = `http://${server.address}:${server.webPort}`;
    const checkinUrl =
      `https://${server.address}:${FLEET_SERVER_PORT}/fleet/checkin`;
    const storePath = fleetStorePath(systemPathsUnder(server.root));
    const getJson = async <T>(path: string): Promise<T> => {
      const response = await fetch(`${web}${path}`);
      assert.equal(response.status, 200, path);
      return await response.json() as T;
    };
    const puddles = async () =>
      (await getJson<{ puddles: PuddleRow[] }>("/swarm/puddle.json")).puddles;
    const projects = async () =>
      (await getJson<{ projects: GitbackRow[] }>("/swarm/gitback.json"))
        .projects;
    const profile = `${dir}/browser`;

    const projectId = await foundProject(a, dir, "work", PASS);
    await pairPuddle(a, b, PASS);
    await pairPuddle(a, c, PASS);
    const me = await puddleKey(a);

    await t.step(
      "Dan names himself; his puddle is Healthy on three envoys",
      async () => {
        const set = await vigo(a.env, [
          "swarm",
          "puddle",
          "name",
          "set",
          "dan",
        ]);
        assert.equal(set.code, 0, set.stderr);
        let last: PuddleRow[] = [];
        await waitUntil("dan's puddle Healthy on three envoys", async () => {
          last = await puddles();
          const row = last.find((r) => r.key === me);
          return row?.owner === "dan" && row.envoys.length === 3 &&
            row.badge === "Healthy";
        }, SETTLE_MS).catch((error) => {
          throw new Error(`${error.message}: ${JSON.stringify(last)}`);
        });
        const row = last.find((r) => r.key === me)!;
        assert.deepEqual(row.envoys, ["envoy-a", "envoy-b", "envoy-c"]);
        assert.equal(row.unlocked_sessions, 3);
        assert.equal(row.short_key, me.slice(0, "ed25519:".length + 12));
      },
    );

    await t.step(
      "the name map reaches envoy-b, which clones by friendly URL",
      async () => {
        const map = `${b.root}/var/lib/vigo/swarm/puddle/names.json`;
        await waitUntil("envoy-b's names.json to name dan", () => {
          try {
            return JSON.parse(Deno.readTextFileSync(map)).names.dan?.[0] === me;
          } catch {
            return false;
          }
        }, SETTLE_MS);
        assert.equal(Deno.statSync(map).mode! & 0o777, 0o644);
        // envoy-b has no claim of its own: the map alone resolves the name.
        assert.throws(() =>
          Deno.statSync(`${b.home}/.vigo-puddle/name-claim.json`)
        );
        await waitForPath(`${b.home}/.vigo-gitback/${projectId}/tokens.json`);
        Deno.mkdirSync(`${dir}/tools-b`);
        const clone = await runCommand("git", {
          args: ["clone", "--quiet", "gitback://dan/work", `${dir}/by-name`],
          env: withGitback(`${dir}/tools-b`)(b.env),
          clearEnv: true,
          cwd: dir,
        });
        assert.equal(clone.code, 0, clone.stderr);
        const log = await runCommand("git", {
          args: ["-C", `${dir}/by-name`, "log", "--format=%s"],
        });
        assert.equal(log.stdout.trim(), "one");
      },
    );

    await t.step(
      "the gitbackmesh and `gitback show` see three replicas in sync",
      async () => {
        let last: GitbackRow[] = [];
        await waitUntil("work in sync on three envoys", async () => {
          last = await projects();
          const row = last.find((p) => p.project_id === projectId);
          return row?.envoys.length === 3 && row.badge === "Healthy" &&
            row.envoys.every((e) => e.state === "in sync");
        }, SETTLE_MS).catch((error) => {
          throw new Error(`${error.message}: ${JSON.stringify(last)}`);
        });
        const row = last.find((p) => p.project_id === projectId)!;
        assert.equal(row.friendly_url, "gitback://dan/work");
        assert.deepEqual(row.members, [me]);

        const shown = await vigo(a.env, ["swarm", "gitback", "show", "work"]);
        assert.equal(shown.code, 0, shown.stderr);
        assert.match(shown.stdout, /Project work \(swarm-wide\)\s+Healthy/);
        assert.match(shown.stdout, /Name: gitback:\/\/dan\/work/);
        for (const envoy of ["envoy-a", "envoy-b", "envoy-c"]) {
          assert.match(shown.stdout, new RegExp(`${envoy}\\s+in sync`));
        }
        assert.match(shown.stdout, new RegExp(`${me} \\(founder\\)`));
        const json = await vigo(a.env, [
          "swarm",
          "gitback",
          "show",
          projectId,
          "--json",
        ]);
        assert.equal(JSON.parse(json.stdout).project_id, projectId);
        const unknown = await vigo(a.env, ["swarm", "gitback", "show", "nope"]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /no envoy reports a project "nope"/);
      },
    );

    await t.step("the pages, in a real headless browser", async () => {
      assert.ok(chromiumPath(), "chromium is installed (.ci/run does it)");
      const dom = await domOf(`${web}/swarm/puddle`, profile);
      const row = new RegExp(
        `<tr class="puddle" data-key="${me}" data-badge="Healthy">([\\s\\S]*?)</tr>`,
      ).exec(dom);
      assert.ok(row, dom);
      assert.match(row[1], /<td class="owner">dan<\/td>/);
      assert.match(row[1], /<td class="envoys" data-count="3">/);
      assert.match(row[1], /badge-healthy">Healthy</);
      const gitback = await domOf(`${web}/swarm/gitback`, profile);
      assert.match(
        gitback,
        new RegExp(`data-project="${projectId}" data-badge="Healthy"`),
      );
      assert.equal(
        [...gitback.matchAll(/data-state="in sync"/g)].length,
        3,
        gitback,
      );
      const detail = await domOf(`${web}/swarm/gitback/${projectId}`, profile);
      assert.match(detail, new RegExp(`<li data-key="${me}"`));
      const bytes = await screenshot(
        `${web}/swarm/puddle`,
        `${dir}/puddles.png`,
        profile,
      );
      assert.ok(bytes > 1000, `a screenshot of ${bytes} bytes`);
    });

    await t.step("the pages answer only by a loopback name", async () => {
      // What a page on a rebound DNS name makes the browser send: fetch()
      // would put the real host back, so the request is written by hand.
      const conn = await Deno.connect({
        hostname: server.address,
        port: server.webPort,
      });
      await conn.write(
        new TextEncoder().encode(
          `GET /swarm/puddle.json HTTP/1.1\r\nHost: vigo.example:${server.webPort}\r\nConnection: close\r\n\r\n`,
        ),
      );
      const answer = new TextDecoder().decode(
        await new Response(conn.readable).arrayBuffer(),
      );
      assert.match(answer, /^HTTP\/1\.1 421 /);
      assert.doesNotMatch(answer, /ed25519:/);
    });

    await t.step("refused traits change nothing", async () => {
      const store = openFleetStore(storePath);
      const snapshot = () => JSON.stringify(store.traitsOf("envoy-b"));
      const names = () => JSON.stringify(store.nameMap());
      try {
        const before = [snapshot(), names()];
        const traitsOfB = store.traitsOf("envoy-b")!;
        const post = (body: Uint8Array | string) =>
          swarmRequest(tlsOf(a), checkinUrl, {
            method: "POST",
            body,
            headers: { "content-type": "application/json" },
          });
        const forB = await post(
          JSON.stringify({ ...traitsOfB, at: traitsOfB.at + 3600 }),
        );
        assert.equal(forB.status, 403);
        assert.match(forB.json<{ error: string }>().error, /envoy-b/);
        const garbage = await post("{not json");
        assert.equal(garbage.status, 400);
        const huge = await post(new Uint8Array(300 * 1024).fill(32));
        assert.equal(huge.status, 413);
        const stranger = seedSigner(generateSeed());
        const forged = await post(JSON.stringify({
          v: 1,
          envoy: "envoy-a",
          at: Math.floor(Date.now() / 1000) + 3600,
          users: [{
            user: "mallory",
            puddle: {
              pubkey: me,
              wrapped_sha256: "0".repeat(64),
              unlocked: true,
              name_claim: await signNameClaim(stranger, "dan", 1),
              pair_pending: false,
              rekey_pending: false,
              retired: [],
            },
            gitback: null,
          }],
        }));
        assert.equal(forged.status, 400);
        assert.match(
          forged.json<{ error: string }>().error,
          new RegExp(`signed by ${formatPublicKey(stranger.publicKey)}`),
        );
        assert.deepEqual([snapshot(), names()], before);
        assert.ok(
          !store.traitsOf("envoy-a")!.users.some((u) => u.user === "mallory"),
        );
      } finally {
        store.close();
      }
    });

    await t.step("a published usercrate reaches every agent", async () => {
      const crates = `${dir}/crates`;
      Deno.mkdirSync(crates);
      const crate = (user: string) =>
        `resources:\n- type: user\n  username: ${user}\n  home: /home/${user}\n  puddle: true\n  gitback: true\n`;
      const policyOf = (envoy: typeof a, user: string) =>
        `${envoy.root}/var/lib/vigo/usercrate-policy/${user}.json`;
      Deno.writeTextFileSync(`${crates}/broken.vgo`, "resources: [");
      const refused = await vigo(server.env, ["config", "publish", crates]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /nothing was published/);
      Deno.removeSync(`${crates}/broken.vgo`);

      Deno.writeTextFileSync(`${crates}/ann.vgo`, crate("ann"));
      const published = await vigo(server.env, ["config", "publish", crates]);
      assert.equal(published.code, 0, published.stderr);
      assert.match(published.stdout, /Published 1 user\(s\) from 1 file\(s\)/);
      for (const envoy of [a, b, c]) {
        await waitForPath(policyOf(envoy, "ann"), SETTLE_MS);
        const policy = JSON.parse(
          Deno.readTextFileSync(policyOf(envoy, "ann")),
        );
        assert.equal(policy.gitback, true);
        assert.equal(policy.source, "fleet server fleet-server");
      }

      // A new publication replaces the old: ann goes, bob comes; the fleet
      // user's own policy, applied from a file, stays.
      Deno.removeSync(`${crates}/ann.vgo`);
      Deno.writeTextFileSync(`${crates}/bob.yaml`, crate("bob"));
      const again = await vigo(server.env, ["config", "publish", crates]);
      assert.equal(again.code, 0, again.stderr);
      for (const envoy of [a, b, c]) {
        await waitForPath(policyOf(envoy, "bob"), SETTLE_MS);
        await waitUntil(`${envoy.name} to drop ann`, () => {
          try {
            Deno.statSync(policyOf(envoy, "ann"));
            return false;
          } catch {
            return true;
          }
        }, SETTLE_MS);
        Deno.statSync(policyOf(envoy, fleet.user));
      }
    });

    await t.step("a stopped envoy turns the puddle Warning", async () => {
      await stopAgent(fleet, c);
      let last: PuddleRow[] = [];
      await waitUntil("dan's puddle Warning for envoy-c", async () => {
        last = await puddles();
        const row = last.find((r) => r.key === me);
        return row?.badge === "Warning" &&
          row.reasons.some((reason) => reason.includes("envoy-c"));
      }, SETTLE_MS).catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify(last)}`);
      });
      const dom = await domOf(`${web}/swarm/puddle`, profile);
      assert.match(dom, new RegExp(`data-key="${me}" data-badge="Warning"`));
    });
  },
);
