/**
 * Root never builds a path from a user's text: an unprivileged user on a
 * real fleet fills the `cross_subnet_members` of their own project.json with
 * path traversals and other garbage, then pushes through gitback://. Root
 * must create or overwrite nothing outside its per-peer state directories,
 * name that state by host digests, and still deliver to the real peers,
 * also by the retry of an undelivered push.
 */

import assert from "node:assert/strict";
import {
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
  stopAgent,
} from "../scripts/fleet.ts";
import { VIGO } from "./support/cli.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  runAs,
  type TestUser,
  unlockAs,
  type UserSession,
} from "./support/unix_users.ts";
import { waitUntil } from "./support/wait.ts";
import { writePolicies } from "../src/envoy/policy.ts";
import { runCommand } from "../src/platform/process.ts";
import { hostDigest } from "../src/envoy/host_name.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const PASS = "root paths passphrase";

/** path → "kind size mtime" for everything under `dir`, links not followed. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (path: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(path)];
    } catch {
      return;
    }
    for (const entry of entries) {
      const child = `${path}/${entry.name}`;
      try {
        const info = Deno.lstatSync(child);
        out.set(
          child,
          info.isDirectory
            ? "dir"
            : `${
              info.isFile ? "file" : "other"
            } ${info.size} ${info.mtime?.getTime()}`,
        );
      } catch {
        continue;
      }
      if (entry.isDirectory) walk(child);
    }
  };
  walk(dir);
  return out;
}

async function headOf(repo: string): Promise<string | null> {
  const out = await runCommand("git", {
    args: ["-C", repo, "rev-parse", "--verify", "-q", "refs/heads/main"],
  });
  return out.code === 0 ? out.stdout.trim() : null;
}

function logLines(path: string, pattern: RegExp): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) =>
      pattern.test(l)
    );
  } catch {
    return [];
  }
}

Deno.test({
  name:
    "root paths: cross_subnet_members from a user's project.json never become root-side paths",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-rootpaths-" });
    Deno.chmodSync(dir, 0o755);
    const users: TestUser[] = [];
    let session: UserSession | undefined;
    let fleet: Fleet | undefined;
    try {
      const mallory = createUser(dir, "vgtr");
      users.push(mallory);
      // The agents act on the fleet's user and on this one.
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 2,
        homes: { [mallory.name]: mallory.home },
      });
      const [a, b] = fleet.envoys;
      const paths = systemPathsUnder(a.root);
      const base = `${paths.varLib}/swarm/gitback`;
      Deno.chmodSync(`${dir}/fleet`, 0o755);
      for (const p of [a.root, `${a.root}/var`, `${a.root}/var/run`]) {
        Deno.chmodSync(p, 0o755);
      }
      const bin = `${dir}/bin`;
      Deno.mkdirSync(bin);
      Deno.symlinkSync(VIGO, `${bin}/git-remote-gitback`);

      Object.assign(mallory.env, {
        VIGO_ROOT: a.root,
        PATH: `${bin}:${mallory.env.PATH}`,
        GIT_AUTHOR_NAME: "M",
        GIT_AUTHOR_EMAIL: "m@example.invalid",
        GIT_COMMITTER_NAME: "M",
        GIT_COMMITTER_EMAIL: "m@example.invalid",
      });
      writePolicies(paths, [
        { user: mallory.name, home: mallory.home, puddle: true, gitback: true },
      ], "test");
      const as = async (argv: string[], stdin = "") => {
        const out = await runAs(mallory, argv, stdin);
        assert.equal(out.code, 0, `${argv.join(" ")}: ${out.stderr}`);
        return out.stdout;
      };

      // The user founds a project of their own and publishes it.
      await as([VIGO, "swarm", "puddle", "init"], `${PASS}\n${PASS}\n`);
      session = await unlockAs(mallory, PASS);
      const work = `${mallory.home}/work`;
      await as(["git", "init", "--quiet", "-b", "main", work]);
      await as(["sh", "-c", `echo one > ${work}/file`]);
      await as(["git", "-C", work, "add", "file"]);
      await as(["git", "-C", work, "commit", "--quiet", "-m", "one"]);
      const init = await as([
        VIGO,
        "swarm",
        "gitback",
        "project",
        "init",
        "work",
        "--repo",
        work,
      ]);
      const projectId = /gitback:\/\/([0-9a-f]{64})\//.exec(init)![1];
      const bRepo =
        `${b.root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`;
      const firstHead = (await as(["git", "-C", work, "rev-parse", "HEAD"]))
        .trim();
      await waitUntil(
        "the first push on envoy-b",
        async () => await headOf(bRepo) === firstHead,
      );
      const delivered = /fan-out delivered .*peer=envoy-b/;
      await waitUntil(
        "the first fan-out",
        () => logLines(a.log, delivered).length >= 1,
      );

      // What a traversal would hit: files root owns, outside the per-peer
      // state directories, each with known content.
      const victim = "f".repeat(64);
      const targets: Record<string, string> = {
        [`${paths.varLib}/swarm/x.json`]: "sentinel x\n",
        [`${base}/meta/${victim}.json`]:
          '{"handle":"victim","scope":"members-only"}\n',
        [`${paths.varLib}/usercrate-policy/${fleet.user}.json`]: Deno
          .readTextFileSync(
            `${paths.varLib}/usercrate-policy/${fleet.user}.json`,
          ),
      };
      for (const [path, text] of Object.entries(targets)) {
        Deno.writeTextFileSync(path, text);
      }
      const up = (n: number) => "../".repeat(n);
      const hostile: unknown[] = [
        `${up(3)}x`, // pending/<pid>/../../../x → <varLib>/swarm/x.json
        `${up(2)}meta/${victim}`, // another project's recorded scope
        `${up(4)}usercrate-policy/${fleet.user}`, // a usercrate policy
        `${up(10)}escaped`, // out of VIGO_ROOT altogether
        // A URL's worth: a real peer, a path and a query holding a traversal.
        `${b.address}:1531/swarm/gitback/push/${projectId}?x=/${
          up(7)
        }meta/${victim}`,
        "newdir/sub/x",
        "/abs/path",
        "..",
        ".",
        "",
        "a".repeat(300),
        `${"a".repeat(64)}.example`,
        "evil\nname",
        "tab\tname",
        "-lead",
        "trail.",
        "dot..dot",
        42,
        { host: "envoy-b" },
        null,
      ];
      // A real peer, named by its address: still delivered to.
      const valid = b.address;
      const projectJson =
        `${mallory.home}/.vigo-gitback/${projectId}/project.json`;
      const project = JSON.parse(
        await as(["cat", projectJson]),
      );
      project.cross_subnet_members = [...hostile, valid];
      // The user edits their own file, as themselves.
      await as(["tee", projectJson], JSON.stringify(project, null, 2) + "\n");

      const before = snapshot(a.root);
      await as(["sh", "-c", `echo two >> ${work}/file`]);
      await as(["git", "-C", work, "commit", "--quiet", "-am", "two"]);
      await as(["git", "-C", work, "push", "--quiet", "swarm", "main"]);
      const head = (await as(["git", "-C", work, "rev-parse", "HEAD"])).trim();
      await waitUntil(
        "the second push on envoy-b",
        async () => await headOf(bRepo) === head,
      );
      // Every result of one fan-out is logged in one loop, after every peer
      // answered or failed; envoy-b's line (or, if the loop broke off, the
      // error that ended it) comes last.
      const validLine = new RegExp(
        `fan-out delivered .*peer=${valid.replaceAll(".", "\\.")} `,
      );
      await waitUntil(
        "the second fan-out",
        () =>
          logLines(a.log, validLine).length >= 1 &&
          (logLines(a.log, delivered).length >= 2 ||
            logLines(a.log, /ERROR fan-out failed/).length >= 1),
        60_000,
      );

      for (const [path, text] of Object.entries(targets)) {
        assert.equal(Deno.readTextFileSync(path), text, `${path} was written`);
      }
      assert.throws(() => Deno.lstatSync(`${dir}/escaped.json`));

      // Only digest-named files in the per-peer directories, each naming
      // its peer inside.
      for (const kind of ["acks", "pending"]) {
        let entries: Deno.DirEntry[] = [];
        try {
          entries = [...Deno.readDirSync(`${base}/${kind}/${projectId}`)];
        } catch {
          // None of this kind.
        }
        for (const entry of entries) {
          assert.ok(entry.isFile, `${kind}/${entry.name} is a file`);
          assert.match(entry.name, /^[0-9a-f]{64}\.json$/, kind);
          const peer = JSON.parse(
            Deno.readTextFileSync(`${base}/${kind}/${projectId}/${entry.name}`),
          ).peer;
          assert.equal(`${hostDigest(peer)}.json`, entry.name);
        }
      }
      for (const peer of ["envoy-b", valid]) {
        const ack = JSON.parse(
          Deno.readTextFileSync(
            `${base}/acks/${projectId}/${hostDigest(peer)}.json`,
          ),
        );
        assert.equal(ack.peer, peer);
        assert.ok(ack.tips.includes(head), `${peer} acknowledged ${head}`);
      }

      // Nothing else under VIGO_ROOT appeared or changed, beyond the
      // project's repository, its per-peer state and the announce cache.
      const allowed = [
        `${base}/projects/${projectId}.git/`,
        `${base}/acks/${projectId}/`,
        `${base}/pending/${projectId}/`,
        `${base}/gitback-announced.json`,
        `${a.root}/var/run/`,
        // The agent's record of the pusher's proven puddle key, by uid.
        `${paths.varLib}/swarm/puddle/bindings/${mallory.uid}.json`,
      ];
      const stray: string[] = [];
      for (const [path, state] of snapshot(a.root)) {
        const old = before.get(path);
        if (old === state || (old === "dir" && state === "dir")) continue;
        if (allowed.some((p) => path.startsWith(p) || `${path}/` === p)) {
          continue;
        }
        stray.push(`${path} (${old ?? "new"} → ${state})`);
      }
      assert.deepEqual(stray, []);
      assert.match(
        Deno.readTextFileSync(a.log),
        /cross_subnet_members entries ignored .*not_host_names=20/,
      );

      // A peer that is down gets a digest-named pending record, naming it
      // inside; the retry, which takes the peer from there, delivers once
      // it is back, and clears the record.
      await stopAgent(fleet, b);
      await as(["sh", "-c", `echo three >> ${work}/file`]);
      await as(["git", "-C", work, "commit", "--quiet", "-am", "three"]);
      await as(["git", "-C", work, "push", "--quiet", "swarm", "main"]);
      const missed = (await as(["git", "-C", work, "rev-parse", "HEAD"]))
        .trim();
      const pendingFor = (peer: string) =>
        `${base}/pending/${projectId}/${hostDigest(peer)}.json`;
      await waitUntil("pending records for envoy-b", () => {
        try {
          return ["envoy-b", valid].every((peer) =>
            JSON.parse(Deno.readTextFileSync(pendingFor(peer))).peer === peer
          );
        } catch {
          return false;
        }
      });
      await startAgent(fleet, b);
      await waitUntil(
        "the retried delivery",
        async () => await headOf(bRepo) === missed,
      );
      await waitUntil(
        "the pending records cleared",
        () =>
          ["envoy-b", valid].every((peer) => {
            try {
              Deno.lstatSync(pendingFor(peer));
              return false;
            } catch {
              return true;
            }
          }),
      );
    } finally {
      await session?.lock();
      if (fleet) await fleetDown(`${dir}/fleet`);
      for (const user of users) deleteUser(user);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
