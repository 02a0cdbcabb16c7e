/**
 * Friendly names through the real CLI and git on a fleet envoy: a puddle
 * claims a name, `git clone gitback://<name>/<handle>` resolves it through
 * the envoy's name map or the user's own claim, and bad or colliding names
 * and ambiguous maps are refused with nothing written.
 */

import assert from "node:assert/strict";
import { VIGO, vigo, withGitback } from "./support/cli.ts";
import { foundProject, puddleKey } from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { runCommand } from "../src/platform/process.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";

const PASS = "names passphrase";

fleetTest(
  "friendly names: claim, clone by name, and refusals",
  { prefix: "vigo-names-", envoys: 1 },
  async ({ dir, fleet, t }) => {
    const [a] = fleet.envoys;
    const projectId = await foundProject(a, dir, "work", PASS);
    const me = await puddleKey(a);
    Deno.mkdirSync(`${dir}/tools`);
    const withGit = withGitback(`${dir}/tools`);
    const claimFile = `${a.home}/.vigo-puddle/name-claim.json`;
    const mapFile = `${a.root}/var/lib/vigo/swarm/puddle/names.json`;
    const writeMap = (names: Record<string, string[]>) => {
      Deno.mkdirSync(`${a.root}/var/lib/vigo/swarm/puddle`, {
        recursive: true,
      });
      Deno.writeTextFileSync(mapFile, JSON.stringify({ version: 1, names }));
    };
    const clone = (url: string, dest: string) =>
      runCommand("git", {
        args: ["clone", "--quiet", url, `${dir}/${dest}`],
        env: withGit(a.env),
        clearEnv: true,
        cwd: dir,
      });
    const other = formatPublicKey(seedSigner(generateSeed()).publicKey);

    await t.step("bad names are refused and nothing is written", async () => {
      for (const bad of ["Dan", "d", "dan-", "9lives", "a".repeat(33)]) {
        const out = await vigo(a.env, ["swarm", "puddle", "name", "set", bad]);
        assert.equal(out.code, 1, bad);
        assert.match(out.stderr, /not a valid name/);
      }
      assert.throws(() => Deno.statSync(claimFile));
    });

    await t.step(
      "a name another puddle holds in the map is refused",
      async () => {
        writeMap({ ann: [other] });
        const out = await vigo(a.env, [
          "swarm",
          "puddle",
          "name",
          "set",
          "ann",
        ]);
        assert.equal(out.code, 1);
        assert.match(out.stderr, /already claimed by .* nothing was changed/);
        assert.throws(() => Deno.statSync(claimFile));
      },
    );

    await t.step("dan claims his name and clones by it", async () => {
      const set = await vigo(a.env, ["swarm", "puddle", "name", "set", "dan"]);
      assert.equal(set.code, 0, set.stderr);
      assert.equal(Deno.statSync(claimFile).mode! & 0o777, 0o644);
      const show = JSON.parse(
        (await vigo(a.env, ["swarm", "puddle", "name", "show", "--json"]))
          .stdout,
      );
      assert.deepEqual([show.name, show.key], ["dan", me]);
      // Not in the map: it resolves from his own claim.
      const own = await clone("gitback://dan/work", "by-own-claim");
      assert.equal(own.code, 0, own.stderr);
      // In the map: it resolves from there.
      writeMap({ dan: [me] });
      const mapped = await clone("gitback://dan/work", "by-map");
      assert.equal(mapped.code, 0, mapped.stderr);
      const founded = await runCommand(VIGO, {
        args: ["swarm", "gitback", "project", "init", "more", "--no-push"],
        env: withGit(a.env),
        clearEnv: true,
        cwd: `${dir}/by-map`,
      });
      assert.equal(founded.code, 0, founded.stderr);
      assert.match(
        founded.stdout,
        /Name: +gitback:\/\/dan\/more\n +URL: +gitback:\/\/[0-9a-f]{64}\/more/,
      );
    });

    await t.step("a name two puddles claim resolves to neither", async () => {
      writeMap({ dan: [me, other] });
      const out = await clone("gitback://dan/work", "ambiguous");
      assert.notEqual(out.code, 0);
      assert.match(out.stderr, /claimed by 2 puddles/);
      assert.match(out.stderr, new RegExp(`gitback://<project_id>/<handle>`));
      // The hex form still works.
      const hex = await clone(`gitback://${projectId}/work`, "by-hex");
      assert.equal(hex.code, 0, hex.stderr);
    });

    await t.step("clear removes the claim", async () => {
      const out = await vigo(a.env, ["swarm", "puddle", "name", "clear"]);
      assert.equal(out.code, 0, out.stderr);
      assert.throws(() => Deno.statSync(claimFile));
    });

    await t.step("without a fleet server there is no fleet view", async () => {
      const out = await vigo(a.env, ["swarm", "gitback", "show", "work"]);
      assert.equal(out.code, 1);
      assert.match(out.stderr, /no fleet server is configured on this envoy/);
      assert.match(out.stderr, /hint: add `server: \{ host: <server host> \}`/);
    });
  },
);
