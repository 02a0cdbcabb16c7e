/**
 * Push fan-out across a three-envoy fleet: a push on A lands on B and C,
 * later pushes travel as thin bundles, a peer that was down catches up with
 * the next push, and bad deliveries change nothing.
 */

import assert from "node:assert/strict";
import { childRuns } from "./support/procs.ts";
import { parse, stringify } from "yaml";
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
import { exists } from "../src/platform/fs.ts";
import { waitUntil } from "./support/wait.ts";
import { memberHeaderOn } from "./support/member_binding.ts";
import { repoOf, tipOn, tlsOf } from "./support/envoy_files.ts";
import { initAndUnlockPuddle } from "./support/fleet_steps.ts";
import { gitIn } from "./support/git.ts";

const PASS = "replication passphrase";

async function waitForHead(
  envoy: Envoy,
  projectId: string,
  id: string,
): Promise<void> {
  await waitUntil(
    `${envoy.name} to have ${id}`,
    async () => await tipOn(envoy, projectId) === id,
  );
}

/** Waits until `envoy`'s agent log has at least `count` lines matching. */
async function waitForLog(
  envoy: Envoy,
  pattern: RegExp,
  count = 1,
): Promise<string[]> {
  let lines: string[] = [];
  await waitUntil(`${count} lines matching ${pattern} in ${envoy.log}`, () => {
    lines = Deno.readTextFileSync(envoy.log).split("\n").filter((l) =>
      pattern.test(l)
    );
    return lines.length >= count;
  });
  return lines;
}

/**
 * True while `agentPid` runs git on `repo` to apply a bundle (`bundle
 * verify` or `fetch`): the receiver is in the middle of an ingest.
 */
function ingesting(agentPid: number, repo: string): boolean {
  return childRuns(
    agentPid,
    (argv) =>
      argv.includes(repo) &&
      (argv.includes("fetch") || argv.includes("bundle")),
  );
}

Deno.test({
  name:
    "replication: fan-out with thin bundles, catch-up on the next push, bad bundles refused",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-repl-" });
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 4,
        start: false,
      });
      const [a, b, c] = fleet.envoys;
      // envoy-d is new to the fleet: the others do not list it, and it stays
      // down until the catch-up step. Only its announcements can make it known.
      for (const envoy of [a, b, c]) {
        const file = `${envoy.root}/etc/vigo/agent.yaml`;
        const config = parse(Deno.readTextFileSync(file));
        delete config.hosts["envoy-d"];
        Deno.writeTextFileSync(file, stringify(config));
        await startAgent(fleet, envoy);
      }
      const env = withGitback(dir)(a.env);
      await initAndUnlockPuddle(a, PASS);
      const work = `${dir}/work`;
      Deno.mkdirSync(work);
      const git = gitIn(env, work);
      await git("init", "--quiet", "-b", "main");
      Deno.writeTextFileSync(`${work}/file`, "one\n");
      await git("add", "file");
      await git("commit", "--quiet", "-m", "one");
      const init = await runCommand(VIGO, {
        args: ["swarm", "gitback", "project", "init", "work"],
        env,
        clearEnv: true,
        cwd: work,
      });
      assert.equal(init.code, 0, init.stderr);
      const projectId = /gitback:\/\/([0-9a-f]{64})\//.exec(init.stdout)![1];
      const commit = async (text: string) => {
        Deno.writeTextFileSync(`${work}/file`, `${text}\n`, { append: true });
        await git("commit", "--quiet", "-am", text);
        await git("push", "--quiet", "swarm", "main");
        return await git("rev-parse", "HEAD");
      };

      await t.step("the first push lands on B and C", async () => {
        const head = await git("rev-parse", "HEAD");
        await waitForHead(b, projectId, head);
        await waitForHead(c, projectId, head);
      });

      await t.step("a one-commit push moves only a thin bundle", async () => {
        const delivered = /fan-out delivered .*peer=envoy-[bc]/;
        const before = (await waitForLog(a, delivered, 2)).length;
        const head = await commit("two");
        await waitForHead(b, projectId, head);
        await waitForHead(c, projectId, head);
        const lines = await waitForLog(a, delivered, before + 2);
        const last = lines.slice(-2);
        assert.equal(last.length, 2);
        for (const line of last) assert.match(line, /bundle=thin/);
      });

      await t.step(
        "a peer that was down during a push catches up once it is back",
        async () => {
          await stopAgent(fleet!, c);
          const missed = await commit("three");
          await waitForHead(b, projectId, missed);
          assert.notEqual(await tipOn(c, projectId), missed);
          await startAgent(fleet!, c);
          // Without another push: the missed delivery is retried.
          await waitForHead(c, projectId, missed);
          await waitForLog(a, /fan-out delivered .*peer=envoy-c/, 3);
          const head = await commit("four");
          await waitForHead(b, projectId, head);
          await waitForHead(c, projectId, head);
          const fsck = await runCommand("git", {
            args: [
              "-C",
              repoOf(c, projectId),
              "fsck",
              "--no-progress",
            ],
          });
          assert.equal(fsck.code, 0, fsck.stderr);
        },
      );

      await t.step(
        "a fresh envoy paired later gets the repo by DR catch-up, with no push",
        async () => {
          // envoy-d joins the fleet after everything above: it knows the
          // others, they learn of it from its announcements.
          const d = fleet!.envoys.find((e) => e.name === "envoy-d")!;
          await startAgent(fleet!, d);
          const pair = await vigo(a.env, ["swarm", "puddle", "pair"]);
          const code = /pairing code: (\d{4}-\d{4})/.exec(pair.stdout)![1];
          const join = await vigo(d.env, [
            "swarm",
            "puddle",
            "join",
            "--from",
            "envoy-a",
          ], `${code}\n${PASS}\n`);
          assert.equal(join.code, 0, join.stderr);
          // The project reaches d's local state by one of two paths, whichever
          // runs first: unlock adopts the projects this puddle founded that
          // peers announce, and d's agent adopts from a peer's chain.
          const state = `${d.home}/.vigo-gitback/${projectId}/project.json`;
          await waitUntil("envoy-d to adopt the project", async () => {
            await vigo(d.env, ["swarm", "puddle", "lock"]);
            const unlock = await vigo(
              d.env,
              ["swarm", "puddle", "unlock"],
              `${PASS}\n`,
            );
            assert.equal(unlock.code, 0, unlock.stderr);
            return /adopted: work/.test(unlock.stdout) || exists(state);
          }, 60_000);
          assert.equal(JSON.parse(Deno.readTextFileSync(state)).handle, "work");
          await waitForHead(d, projectId, await git("rev-parse", "HEAD"));
          await waitForLog(d, /INFO catch-up pulled project=/);
        },
      );

      await t.step(
        "members-only projects land only where a member is",
        async () => {
          const d = fleet!.envoys.find((e) => e.name === "envoy-d")!;
          const privateWork = `${dir}/private`;
          Deno.mkdirSync(privateWork);
          for (
            const args of [["init", "--quiet", "-b", "main"], [
              "commit",
              "--quiet",
              "--allow-empty",
              "-m",
              "p",
            ]]
          ) {
            assert.equal(
              (await runCommand("git", {
                args,
                env,
                clearEnv: true,
                cwd: privateWork,
              })).code,
              0,
            );
          }
          const made = await runCommand(VIGO, {
            args: [
              "swarm",
              "gitback",
              "project",
              "init",
              "private",
              "--scope",
              "members-only",
            ],
            env,
            clearEnv: true,
            cwd: privateWork,
          });
          assert.equal(made.code, 0, made.stderr);
          const privateId =
            /gitback:\/\/([0-9a-f]{64})\//.exec(made.stdout)![1];
          const tip = (await runCommand("git", {
            args: ["rev-parse", "HEAD"],
            env,
            clearEnv: true,
            cwd: privateWork,
          }))
            .stdout.trim();
          // envoy-d carries the same puddle (it joined above): a member.
          await waitForHead(d, privateId, tip);
          // Both refusals are in before the repositories are looked at.
          for (const other of [b, c]) {
            await waitForLog(
              a,
              new RegExp(
                `fan-out failed project=${privateId} peer=${other.name} .*members-only`,
              ),
            );
          }
          for (const other of [b, c]) {
            assert.equal(await tipOn(other, privateId), null, other.name);
          }
        },
      );

      await t.step(
        "a receiver killed in the middle of an ingest is consistent after restart",
        async () => {
          const big = new Uint8Array(24 * 1024 * 1024);
          for (let at = 0; at < big.length; at += 65536) {
            crypto.getRandomValues(big.subarray(at, at + 65536));
          }
          Deno.writeFileSync(`${work}/big.bin`, big);
          await git("add", "big.bin");
          await git("commit", "--quiet", "-m", "big");
          const bundleFile = `${dir}/big.bundle`;
          await git("bundle", "create", "--quiet", bundleFile, "--all");
          const chain = JSON.parse(
            Deno.readTextFileSync(
              `${a.home}/.vigo-gitback/${projectId}/tokens.json`,
            ),
          ).chain;
          const before = await tipOn(b, projectId);
          const repo = repoOf(b, projectId);
          let settled = false;
          const delivery = swarmRequest(
            tlsOf(a),
            `https://${b.address}:1531/swarm/gitback/push/${projectId}`,
            {
              method: "POST",
              body: Deno.readFileSync(bundleFile),
              headers: {
                "x-vigo-chain": encodeBase64(
                  new TextEncoder().encode(JSON.stringify(chain)),
                ),
              },
            },
          ).catch(() => null).finally(() => settled = true);
          // Kill b once it runs git on the bundle. (Should the delivery end
          // before the poll sees git, the kill comes after the ingest; the
          // checks below hold either way.)
          const agentPid = b.agentPid!;
          const deadline = Date.now() + 60_000;
          while (!settled && !ingesting(agentPid, repo)) {
            assert.ok(Date.now() < deadline, "the delivery never reached b");
            await new Promise((r) => setTimeout(r, 5));
          }
          Deno.kill(agentPid, "SIGKILL");
          await delivery;
          await startAgent(fleet!, b);
          // Whatever the kill interrupted, refs point at complete objects
          // (once a git the kill orphaned has finished).
          await waitUntil(
            "b's repository to be connected",
            async () =>
              (await runCommand("git", {
                args: [
                  "-C",
                  repo,
                  "fsck",
                  "--no-progress",
                  "--connectivity-only",
                ],
              })).code === 0,
          );
          const fsck = await runCommand("git", {
            args: ["-C", repo, "fsck", "--no-progress"],
          });
          assert.equal(fsck.code, 0, fsck.stderr);
          const after = await tipOn(b, projectId);
          assert.ok(
            after === before || after === await git("rev-parse", "HEAD"),
            `head is ${after}`,
          );
          // The next push brings it up to date.
          const head = await commit("after the kill");
          await waitForHead(b, projectId, head);
        },
      );

      await t.step(
        "corrupt, truncated and unauthorized deliveries change nothing",
        async () => {
          const tls = tlsOf(a);
          const url =
            `https://${b.address}:1531/swarm/gitback/push/${projectId}`;
          const chain = JSON.parse(
            Deno.readTextFileSync(
              `${a.home}/.vigo-gitback/${projectId}/tokens.json`,
            ),
          ).chain;
          // The current signed ref state, as a's agent recorded it: a real
          // state, so each case reaches the check it is about.
          const signed = JSON.parse(
            Deno.readTextFileSync(
              `${repoOf(a, projectId)}/vigo-refs.json`,
            ),
          ).current;
          const chainOnly = {
            "x-vigo-chain": encodeBase64(
              new TextEncoder().encode(JSON.stringify(chain)),
            ),
          };
          const header = {
            ...chainOnly,
            "x-vigo-member": memberHeaderOn(a),
            "x-vigo-refs": encodeBase64(
              new TextEncoder().encode(JSON.stringify([signed])),
            ),
          };
          const before = await tipOn(b, projectId);
          const bundleFile = `${dir}/full.bundle`;
          await git("bundle", "create", "--quiet", bundleFile, "--all");
          const bundle = Deno.readFileSync(bundleFile);

          const corrupt = bundle.slice();
          corrupt[corrupt.length - 30] ^= 0xff;
          const cases: [string, Uint8Array, Record<string, string>, number][] =
            [
              [
                "garbage",
                new TextEncoder().encode("not a bundle"),
                header,
                400,
              ],
              [
                "truncated",
                bundle.subarray(0, Math.floor(bundle.length / 2)),
                header,
                400,
              ],
              ["corrupt", corrupt, header, 400],
              ["no chain", bundle, {}, 401],
              [
                "no signed ref state",
                bundle,
                { ...chainOnly, "x-vigo-member": header["x-vigo-member"] },
                401,
              ],
              ["no member binding", bundle, chainOnly, 403],
              ["chain for another project", bundle, header, 403],
            ];
          for (const [what, body, headers, status] of cases) {
            const target = what === "chain for another project"
              ? `https://${b.address}:1531/swarm/gitback/push/${"a".repeat(64)}`
              : url;
            const response = await swarmRequest(tls, target, {
              method: "POST",
              body,
              headers,
            });
            assert.equal(response.status, status, what);
            assert.equal(await tipOn(b, projectId), before, what);
          }
          // A body declared larger than the 1 GiB cap is refused unread.
          const conn = await Deno.connectTls({
            hostname: b.address,
            port: 1531,
            caCerts: [tls.caPem],
            cert: tls.certPem,
            key: tls.keyPem,
          });
          await conn.write(new TextEncoder().encode(
            `POST /swarm/gitback/push/${projectId} HTTP/1.1\r\nHost: ${b.address}\r\n` +
              `Content-Length: 2000000000\r\nx-vigo-chain: ${
                header["x-vigo-chain"]
              }\r\nx-vigo-refs: ${header["x-vigo-refs"]}\r\nx-vigo-member: ${
                header["x-vigo-member"]
              }\r\n\r\n`,
          ));
          const reply = new Uint8Array(512);
          const n = await conn.read(reply);
          conn.close();
          assert.match(
            new TextDecoder().decode(reply.subarray(0, n ?? 0)),
            /^HTTP\/1\.1 413/,
          );
          assert.equal(await tipOn(b, projectId), before, "oversized");
          assert.throws(() =>
            Deno.statSync(
              repoOf(b, "a".repeat(64)),
            )
          );
        },
      );
    } finally {
      if (fleet) await fleetDown(`${dir}/fleet`);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
