/**
 * Many envoys on one machine stay apart: two local fleets run side by side
 * beside a real user of the machine, and each agent acts only on the users
 * its agent.yaml names (`managed_users: homes`). Neither fleet sweeps the
 * other's user nor the machine's, however many sweeps pass.
 */

import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  type Envoy,
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
} from "../scripts/fleet.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  type TestUser,
} from "./support/unix_users.ts";
import { waitUntil } from "./support/wait.ts";
import { generateSeed } from "../src/crypto/ed25519.ts";
import { toHex } from "../src/crypto/hex.ts";
import { mintLeave, verifyLeave } from "../src/gitback/envelopes.ts";
import { projectId as makeProjectId } from "../src/gitback/project_id.ts";
import { mintBootstrapToken, mintChildToken } from "../src/gitback/tokens.ts";
import { exists } from "../src/platform/fs.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";

/** Sweeps each fleet is watched through (each proves the one before ended). */
const ROUNDS = 3;

function chownTree(path: string, uid: number): void {
  Deno.chownSync(path, uid, uid);
  if (Deno.statSync(path).isDirectory) {
    for (const entry of Deno.readDirSync(path)) {
      chownTree(`${path}/${entry.name}`, uid);
    }
  }
}

/**
 * Puts `files` into `~/.vigo-gitback/<projectId>/` of `user` in one rename,
 * owned by the user, so that a sweep never sees the directory half made (it
 * removes an empty project directory, and refuses files the user does not
 * own).
 */
function placeProject(
  user: TestUser,
  projectId: string,
  files: Record<string, string>,
): void {
  const gitback = `${user.home}/.vigo-gitback`;
  if (!exists(gitback)) {
    Deno.mkdirSync(gitback, { mode: 0o700 });
    Deno.chownSync(gitback, user.uid, user.uid);
  }
  const stage = Deno.makeTempDirSync({ dir: user.home, prefix: "stage-" });
  const dir = `${stage}/${projectId}`;
  Deno.mkdirSync(dir, { mode: 0o700 });
  for (const [name, text] of Object.entries(files)) {
    Deno.writeTextFileSync(`${dir}/${name}`, text, { mode: 0o600 });
  }
  chownTree(dir, user.uid);
  Deno.renameSync(dir, `${gitback}/${projectId}`);
  Deno.removeSync(stage);
}

/**
 * A project founded by a throwaway puddle, whose members can leave it: a
 * LEAVE carries the leaver's chain.
 */
async function freshProject(handle: string) {
  const founder = seedSigner(generateSeed());
  const projectId = await makeProjectId(founder.publicKey, handle);
  const root = await mintBootstrapToken(founder, handle);
  return { founder, projectId, root };
}

/** A valid LEAVE of a fresh member of `project`, and its id. */
async function freshLeave(
  project: Awaited<ReturnType<typeof freshProject>>,
): Promise<{ envelope: unknown; id: string }> {
  const signer = seedSigner(generateSeed());
  const token = await mintChildToken(project.founder, [project.root], {
    subject: signer.publicKey,
    role: "member",
  });
  const { projectId } = project;
  const envelope = await mintLeave(signer, {
    projectId,
    chain: [project.root, token],
  });
  return { envelope, id: (await verifyLeave(envelope, { projectId })).id };
}

function storedEnvelopes(envoy: Envoy): Record<string, string[]> {
  const base = `${envoy.root}/var/lib/vigo/swarm/gitback/envelopes`;
  const out: Record<string, string[]> = {};
  let projects: Deno.DirEntry[] = [];
  try {
    projects = [...Deno.readDirSync(base)];
  } catch {
    return out;
  }
  for (const project of projects) {
    for (const kind of ["leaves", "revokes"]) {
      try {
        for (
          const entry of Deno.readDirSync(`${base}/${project.name}/${kind}`)
        ) {
          (out[`${project.name}/${kind}`] ??= []).push(entry.name);
        }
      } catch {
        // None of this kind.
      }
    }
  }
  for (const list of Object.values(out)) list.sort();
  return out;
}

Deno.test({
  name:
    "two fleets and a host user on one machine: no agent acts on a user it does not list",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-isolation-" });
    Deno.chmodSync(dir, 0o755);
    const users: TestUser[] = [];
    const fleets: Fleet[] = [];
    try {
      // A real user of the machine, listed by no fleet, with a project and
      // envelopes queued for a sweep: nothing here may change.
      const host = createUser(dir, "vgih");
      users.push(host);
      const founder = seedSigner(generateSeed());
      const hostProject = await makeProjectId(founder.publicKey, "host-work");
      const bootstrap = await mintBootstrapToken(founder, "host-work");
      const hostFiles: Record<string, string> = {
        "project.json": JSON.stringify({
          version: 1,
          project_id: hostProject,
          handle: "host-work",
          founder: `ed25519:${toHex(founder.publicKey)}`,
          scope: "swarm-wide",
          members: [`ed25519:${toHex(founder.publicKey)}`],
          cross_subnet_members: [],
          created_at: new Date().toISOString(),
          tombstoned_at: null,
        }) + "\n",
        "tokens.json": JSON.stringify({ version: 1, chain: [bootstrap] }) +
          "\n",
        "leave.pending": JSON.stringify([
          await mintLeave(founder, {
            projectId: hostProject,
            chain: [bootstrap],
          }),
        ]) + "\n",
        "revoke.pending": JSON.stringify([{ body: "e30=", sig: "00" }]) + "\n",
      };
      placeProject(host, hostProject, hostFiles);
      const hostDir = `${host.home}/.vigo-gitback/${hostProject}`;

      // Each fleet's own real user, listed in that fleet's agent.yaml only.
      const userA = createUser(dir, "vgia");
      users.push(userA);
      const userB = createUser(dir, "vgib");
      users.push(userB);
      for (
        const [name, user] of [
          ["a", userA],
          ["b", userB],
        ] as const
      ) {
        fleets.push(
          await fleetUp(`${dir}/fleet-${name}`, {
            envoys: 1,
            homes: { [user.name]: user.home },
            start: false,
          }),
        );
      }
      const [a, b] = fleets.map((f) => f.envoys[0]);
      for (const [fleet, envoy] of [[fleets[0], a], [fleets[1], b]] as const) {
        const config = parse(
          Deno.readTextFileSync(`${envoy.root}/etc/vigo/agent.yaml`),
        );
        assert.equal(config.managed_users, "homes");
        await startAgent(fleet, envoy);
      }

      // Each round queues a fresh LEAVE in each fleet user's home and waits
      // until a sweep has taken it (the sweep removes the emptied project
      // directory). A sweep pass visits every home it manages, so by the
      // last round each agent has finished ROUNDS - 1 whole passes since it
      // started, after the host user's files were in place.
      const fleetProjectA = await freshProject("fleet-a-work");
      const fleetProjectB = await freshProject("fleet-b-work");
      const projectA = fleetProjectA.projectId;
      const projectB = fleetProjectB.projectId;
      const expected: Record<string, string[]> = { a: [], b: [] };
      for (let round = 1; round <= ROUNDS; round++) {
        for (
          const [key, user, project, founded] of [
            ["a", userA, projectA, fleetProjectA],
            ["b", userB, projectB, fleetProjectB],
          ] as const
        ) {
          const leave = await freshLeave(founded);
          expected[key].push(`${leave.id}.json`);
          placeProject(user, project, {
            "leave.pending": JSON.stringify([leave.envelope]) + "\n",
          });
        }
        await waitUntil(
          `sweep ${round} in both fleets`,
          () =>
            !exists(`${userA.home}/.vigo-gitback/${projectA}`) &&
            !exists(`${userB.home}/.vigo-gitback/${projectB}`),
        );
      }

      // Each fleet stored exactly its own user's envelopes.
      assert.deepEqual(storedEnvelopes(a), {
        [`${projectA}/leaves`]: expected.a.sort(),
      });
      assert.deepEqual(storedEnvelopes(b), {
        [`${projectB}/leaves`]: expected.b.sort(),
      });
      // Neither agent so much as looked at the other's user or the host user.
      const logs = [
        [a, [userB.name, host.name, projectB, hostProject]],
        [b, [userA.name, host.name, projectA, hostProject]],
      ] as const;
      for (const [envoy, strangers] of logs) {
        const log = Deno.readTextFileSync(envoy.log);
        for (const stranger of strangers) {
          assert.equal(
            log.includes(stranger),
            false,
            `${envoy.log} mentions ${stranger}:\n${log}`,
          );
        }
        assert.equal(
          log.split("\n").filter((l) =>
            / INFO sweep stored envelopes count=1$/.test(l)
          ).length,
          ROUNDS,
          `${envoy.log}:\n${log}`,
        );
      }
      // The host user's files are all there, byte for byte, still theirs.
      assert.deepEqual(
        [...Deno.readDirSync(hostDir)].map((e) => e.name).sort(),
        Object.keys(hostFiles).sort(),
      );
      for (const [name, text] of Object.entries(hostFiles)) {
        assert.equal(Deno.readTextFileSync(`${hostDir}/${name}`), text, name);
        assert.equal(Deno.statSync(`${hostDir}/${name}`).uid, host.uid, name);
      }
      for (const envoy of [a, b]) {
        assert.equal(
          exists(
            `${envoy.root}/var/lib/vigo/swarm/gitback/projects/${hostProject}.git`,
          ),
          false,
          envoy.name,
        );
      }
    } finally {
      for (const fleet of fleets) await fleetDown(fleet.dir);
      for (const user of users) deleteUser(user);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
