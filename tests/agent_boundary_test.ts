/**
 * The root agent against a hostile local user: each step performs an attack
 * as a real unprivileged Unix user (mallory) on a live envoy and shows that
 * it fails. See docs/security.md for the threat model these cover.
 */

import assert from "node:assert/strict";
import tls from "node:tls";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import {
  type Envoy,
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
} from "../scripts/fleet.ts";
import { processGone, REPO, VIGO, vigo, withGitback } from "./support/cli.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  runAs,
  type TestUser,
  unlockAs,
} from "./support/unix_users.ts";
import { waitUntil } from "./support/wait.ts";
import { catchUpPassesAfter, foundProject } from "./support/fleet_steps.ts";
import { writePolicies } from "../src/envoy/policy.ts";
import { runCommand } from "../src/platform/process.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const PASS = "boundary passphrase";
const PROBE = `${REPO}/tests/support/socket_probe.ts`;
const DENO = `${REPO}/scripts/deno`;

function pathsOf(envoy: Envoy) {
  return systemPathsUnder(envoy.root);
}

/** Lets other users reach the agent's socket, as on a real machine. */
function openToUsers(dir: string, envoy: Envoy) {
  Deno.mkdirSync(`${envoy.root}/var/run`, { recursive: true });
  for (
    const p of [
      dir,
      `${dir}/fleet`,
      `${dir}/fleet/${envoy.name}`,
      envoy.root,
      `${envoy.root}/var`,
      `${envoy.root}/var/run`,
    ]
  ) {
    Deno.chmodSync(p, 0o755);
  }
}

/** Makes the envoy act on the fleet user and `users`, and nobody else. */
function manage(envoy: Envoy, users: TestUser[]) {
  const file = `${envoy.root}/etc/vigo/agent.yaml`;
  const config = parseYaml(Deno.readTextFileSync(file)) as {
    homes: Record<string, string>;
    managed_users?: string;
  };
  for (const user of users) config.homes[user.name] = user.home;
  config.managed_users = "homes";
  Deno.writeTextFileSync(file, toYaml(config));
  writePolicies(
    pathsOf(envoy),
    users.map((u) => ({
      user: u.name,
      home: u.home,
      puddle: true,
      gitback: true,
    })),
    "test",
  );
}

/** Runs the raw socket probe as `user`; returns its first output line. */
async function probe(user: TestUser | null, args: string[]): Promise<string> {
  const argv = [DENO, "run", "--allow-all", "--quiet", PROBE, ...args];
  const result = user
    ? await runAs(user, argv)
    : await runCommand(argv[0], { args: argv.slice(1) });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split("\n")[0];
}

function mkfifo(user: TestUser, path: string) {
  return runAs(user, ["mkfifo", path]);
}

function agentAlive(envoy: Envoy): boolean {
  try {
    Deno.kill(envoy.agentPid!, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "the agent holds against a hostile local user",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-boundary-" });
    const users: TestUser[] = [];
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 1,
        start: false,
      });
      const [a] = fleet.envoys;
      openToUsers(dir, a);
      const mallory = createUser(dir, "vgbm");
      const bob = createUser(dir, "vgbb");
      users.push(mallory, bob);
      const withGit = withGitback(dir);
      mallory.env = withGit({ ...mallory.env, VIGO_ROOT: a.root });
      bob.env = { ...bob.env, VIGO_ROOT: a.root };
      // Bob is a user of the machine the envoy does not look after.
      manage(a, [mallory]);
      await startAgent(fleet, a);
      const socket = `${a.root}/var/run/vigo/gitback.sock`;

      // The fleet user founds a project mallory is not part of.
      const secretId = await foundProject(a, dir, "secret-plan", PASS);

      assert.equal(
        (await runAs(
          mallory,
          [VIGO, "swarm", "puddle", "init"],
          `${PASS}\n${PASS}\n`,
        )).code,
        0,
      );

      /**
       * Makes sure the agent answers before an attack, restarting one that
       * an earlier attack killed or hung, so that each step stands alone.
       */
      const ensureAgent = async () => {
        const answer = await probe(null, ["hold", socket, "0"]).catch(() => "");
        if (answer.startsWith('{"ok":true')) return;
        try {
          Deno.kill(a.agentPid!, "SIGKILL");
        } catch {
          // Already gone.
        }
        await waitUntil("the old agent to go", () => processGone(a.agentPid!));
        await startAgent(fleet!, a);
      };

      /** Waits for `n` whole sweeps of every managed home. */
      const sweeps = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const marker = `${a.home}/.vigo-gitback/${"0".repeat(63)}${i}`;
          Deno.mkdirSync(marker, { recursive: true });
          await waitUntil("a sweep", () => {
            try {
              Deno.statSync(marker);
              return false;
            } catch {
              return true;
            }
          });
        }
      };

      const fifoAttack = async (
        base: string,
        x: string,
        y: string,
        z: string,
      ) => {
        await mkfifo(mallory, `${base}/${x}/project.json`);
        await mkfifo(mallory, `${base}/${x}/tokens.json`);
        await mkfifo(mallory, `${mallory.home}/fifo`);
        await runAs(mallory, [
          "ln",
          "-s",
          `${mallory.home}/fifo`,
          `${base}/${y}/project.json`,
        ]);
        await mkfifo(mallory, `${base}/${z}/revoke.pending`);
        await mkfifo(mallory, `${mallory.home}/.vigo-puddle/session.unlocked`);
        // Mallory asks for her status: the agent reads her project.json.
        const mine = JSON.parse(await probe(mallory, ["hold", socket, "0"]));
        assert.equal(mine.ok, true);
        // Everyone else is still served, and the reactors still run.
        const all = JSON.parse(await probe(null, ["hold", socket, "0"]));
        assert.equal(all.ok, true);
        await sweeps(2);
        assert.ok(agentAlive(a));
      };

      const sweepAttack = async (victim: string, base: string) => {
        // One project directory that is a symlink into bob's state…
        await runAs(mallory, ["mkdir", "-p", base]);
        await runAs(mallory, [
          "ln",
          "-s",
          victim,
          `${base}/${"b".repeat(64)}`,
        ]);
        await sweeps(2);
        // …then the whole gitback directory.
        await runAs(mallory, ["rm", "-rf", base]);
        await runAs(mallory, [
          "ln",
          "-s",
          `${bob.home}/.vigo-gitback`,
          base,
        ]);
        await sweeps(2);
        for (const name of ["revoke.pending", "leave.pending"]) {
          assert.equal(
            Deno.readTextFileSync(`${victim}/${name}`),
            "[]\n",
            `${name} of bob was touched`,
          );
        }
      };

      await t.step(
        "hanging up before the answer ends that connection only",
        async () => {
          await ensureAgent();
          const connect = JSON.stringify({
            op: "connect",
            service: "git-upload-pack",
            project_id: "a".repeat(64),
            handle: "x",
            chain: [],
          });
          await probe(mallory, ["hangup", socket, '{"op":"status"}', "40"]);
          await probe(mallory, ["hangup", socket, connect, "40"]);
          // The swarm port too, from a real peer certificate.
          const etc = `${a.root}/etc/vigo`;
          for (let i = 0; i < 20; i++) {
            await new Promise<void>((resolve) => {
              const s = tls.connect({
                host: a.address,
                port: 1531,
                ca: Deno.readTextFileSync(`${etc}/ca.crt`),
                cert: Deno.readTextFileSync(`${etc}/tls.crt`),
                key: Deno.readTextFileSync(`${etc}/tls.key`),
                servername: a.name,
              }, () => {
                s.write("GET /swarm/health HTTP/1.1\r\nhost: x\r\n\r\n");
                s.destroy();
                resolve();
              });
              s.on("error", () => resolve());
            });
          }
          const answer = JSON.parse(
            await probe(mallory, ["hold", socket, "0"]),
          );
          assert.equal(answer.ok, true);
          assert.ok(agentAlive(a), "the agent died");
        },
      );

      await t.step(
        "a FIFO or symlink where the agent reads never blocks it",
        async () => {
          await ensureAgent();
          const base = `${mallory.home}/.vigo-gitback`;
          const [x, y, z] = ["1", "2", "3"].map((c) => c.repeat(64));
          for (const id of [x, y, z]) {
            assert.equal(
              (await runAs(mallory, ["mkdir", "-p", `${base}/${id}`])).code,
              0,
            );
          }
          try {
            await fifoAttack(base, x, y, z);
          } finally {
            await runAs(mallory, ["rm", "-rf", base, `${mallory.home}/fifo`]);
            await runAs(mallory, [
              "rm",
              "-f",
              `${mallory.home}/.vigo-puddle/session.unlocked`,
            ]);
          }
        },
      );

      await t.step(
        "the sweep never deletes another user's queue through a symlink",
        async () => {
          await ensureAgent();
          const victim = `${bob.home}/.vigo-gitback/${"b".repeat(64)}`;
          assert.equal(
            (await runAs(bob, ["mkdir", "-p", victim])).code,
            0,
          );
          for (const name of ["revoke.pending", "leave.pending"]) {
            assert.equal(
              (await runAs(bob, ["sh", "-c", `echo '[]' > ${victim}/${name}`]))
                .code,
              0,
            );
          }
          const base = `${mallory.home}/.vigo-gitback`;
          try {
            await sweepAttack(victim, base);
          } finally {
            await runAs(mallory, ["rm", "-rf", base]);
          }
        },
      );

      await t.step(
        "status shows a user only their own projects, and is complete",
        async () => {
          await ensureAgent();
          const mine = JSON.parse(await probe(mallory, ["hold", socket, "0"]));
          assert.equal(mine.ok, true);
          assert.ok(!JSON.stringify(mine).includes(secretId));
          assert.ok(!JSON.stringify(mine).includes("secret-plan"));
          const all = JSON.parse(await probe(null, ["hold", socket, "0"]));
          assert.ok(JSON.stringify(all).includes(secretId));
          const cli = await runAs(mallory, [
            VIGO,
            "swarm",
            "gitback",
            "status",
          ]);
          assert.equal(cli.code, 0, cli.stderr);
          assert.doesNotMatch(cli.stdout, /secret-plan/);
          assert.doesNotMatch(cli.stdout, /partial data/);
        },
      );

      await t.step(
        "overlong handshake lines are refused by their length",
        async () => {
          await ensureAgent();
          const line = JSON.stringify({
            op: "connect",
            service: "git-upload-pack",
            project_id: secretId,
            handle: "secret-plan",
            chain: ["x".repeat(260 * 1024)],
          });
          const file = `${dir}/long-line`;
          Deno.writeTextFileSync(file, line + "\n");
          Deno.chmodSync(file, 0o644);
          const answer = JSON.parse(
            await probe(mallory, ["ask", socket, file]),
          );
          assert.equal(answer.ok, false);
          assert.match(answer.error, /longer than 262144 bytes/);
        },
      );

      await t.step(
        "one user cannot hold more than their share of connections",
        async () => {
          await ensureAgent();
          const answer = JSON.parse(
            await probe(mallory, ["hold", socket, "8"]),
          );
          assert.equal(answer.ok, false);
          assert.match(answer.error, /connections open \(the limit\)/);
          // Others are still served.
          const root = JSON.parse(await probe(null, ["hold", socket, "0"]));
          assert.equal(root.ok, true);
          // Closed connections give their slots back.
          await waitUntil(
            "mallory's slots to free up",
            async () =>
              JSON.parse(await probe(mallory, ["hold", socket, "7"])).ok ===
                true,
          );
        },
      );

      await t.step(
        "a push that stores nothing creates no repository",
        async () => {
          await ensureAgent();
          await unlockAs(mallory, PASS);
          const empty = `${mallory.home}/empty`;
          await runAs(mallory, ["git", "init", "--quiet", empty]);
          const init = await runCommand("runuser", {
            args: [
              "-u",
              mallory.name,
              "--",
              "env",
              "-i",
              ...Object.entries(mallory.env).map(([k, v]) => `${k}=${v}`),
              VIGO,
              "swarm",
              "gitback",
              "project",
              "init",
              "junk",
              "--no-push",
            ],
            cwd: empty,
          });
          assert.equal(init.code, 0, init.stderr);
          const url = /(gitback:\/\/[0-9a-f]{64}\/\S+)/.exec(init.stdout)![1];
          const id = url.slice(10, 74);
          for (let i = 0; i < 3; i++) {
            const push = await runAs(mallory, [
              "git",
              "-C",
              empty,
              "push",
              url,
              `:refs/heads/nothing-${i}`,
            ]);
            assert.match(
              push.stderr + push.stdout,
              /nothing|non-existent|delete/i,
            );
          }
          const projects = `${a.root}/var/lib/vigo/swarm/gitback/projects`;
          const names = () =>
            [...Deno.readDirSync(projects)].map((e) => e.name);
          // The agent tidies up after the client has its answer.
          await waitUntil(
            "staging repositories to be removed",
            () => !names().some((n) => n.startsWith(".staging-")),
          );
          assert.ok(
            !names().includes(`${id}.git`),
            "an empty repository was made",
          );
        },
      );
    } finally {
      if (fleet) await fleetDown(fleet.dir);
      for (const user of users) deleteUser(user);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a key written into identity.pub is not proof: nothing is adopted for it",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-proof-" });
    const users: TestUser[] = [];
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 2,
        start: false,
      });
      const [a, b] = fleet.envoys;
      openToUsers(dir, b);
      const mallory = createUser(dir, "vgpm");
      users.push(mallory);
      mallory.env = { ...mallory.env, VIGO_ROOT: b.root };
      manage(b, [mallory]);
      for (const envoy of fleet.envoys) await startAgent(fleet, envoy);

      // The fleet user founds a project on envoy-a.
      const id = await foundProject(a, dir, "shared", PASS);
      const victimKey = (await vigo(a.env, ["swarm", "puddle", "pubkey"]))
        .stdout.trim();

      // On envoy-b, mallory claims the founder's key by writing it down.
      assert.equal(
        (await runAs(
          mallory,
          [VIGO, "swarm", "puddle", "init"],
          `${PASS}\n${PASS}\n`,
        )).code,
        0,
      );
      assert.equal(
        (await runAs(mallory, [
          "sh",
          "-c",
          `echo ${victimKey} > ${mallory.home}/.vigo-puddle/identity.pub`,
        ])).code,
        0,
      );
      // Envoy-b confirms the project, then runs whole catch-up passes.
      await catchUpPassesAfter(b, id, 3);
      assert.throws(
        () => Deno.statSync(`${mallory.home}/.vigo-gitback/${id}`),
        Deno.errors.NotFound,
        "the agent adopted the founder's chain for mallory",
      );
    } finally {
      if (fleet) await fleetDown(fleet.dir);
      for (const user of users) deleteUser(user);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
