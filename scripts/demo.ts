/**
 * The demo: the single-envoy puddle flow in a throwaway HOME, told as a
 * short story. Every step runs the real CLI; nothing outside the temp
 * directory is touched, and the session helper is stopped at the end.
 *
 * Run with `npx deno task demo`.
 */

import { SessionClient } from "../src/puddle/session/client.ts";
import { runCommand } from "../src/platform/process.ts";
import { exists } from "../src/platform/fs.ts";
import { parsePublicKey } from "../src/crypto/ed25519.ts";
import { toHex } from "../src/crypto/hex.ts";
import { verifyWithContext } from "../src/crypto/signed.ts";
import {
  type Envoy,
  type Fleet,
  FLEET_CHECKIN_S,
  fleetDown,
  fleetUp,
  stopAgent,
} from "./fleet.ts";
import { STALE_PERIODS } from "../src/fleet/health.ts";
import type { PuddleRow } from "../src/fleet/health.ts";
import { writePolicies } from "../src/envoy/policy.ts";
import {
  createUser,
  deleteUser,
  runAs,
  type TestUser,
  unlockAs,
  type UserSession,
} from "../tests/support/unix_users.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const VIGO = `${REPO}/scripts/vigo`;
const PASSPHRASE = "demo passphrase, never use me";

const bold = (text: string) =>
  Deno.stdout.isTerminal() ? `\x1b[1m${text}\x1b[0m` : text;

function say(text: string) {
  console.log(`\n${bold("#")} ${text}`);
}

async function run(
  env: Record<string, string>,
  args: string[],
  stdin = "",
  shownStdin = "",
  cwd?: string,
): Promise<string> {
  console.log(bold(`$ ${shownStdin}vigo ${args.join(" ")}`));
  const out = await runCommand(VIGO, { args, env, clearEnv: true, stdin, cwd });
  // An invitation is a page of JSON; the story needs only its size.
  const shown = args.includes("invite")
    ? `(invitation JSON on stdout, ${out.stdout.length} bytes)\n`
    : out.stdout;
  const text = shown + out.stderr;
  console.log(text.trimEnd().split("\n").map((l) => `  ${l}`).join("\n"));
  if (out.code !== 0) throw new Error(`\`vigo ${args.join(" ")}\` failed`);
  return out.stdout;
}

async function main() {
  const base = await Deno.makeTempDir({ prefix: "vigo-demo-" });
  const env: Record<string, string> = {
    HOME: `${base}/home/dan`,
    XDG_RUNTIME_DIR: `${base}/run/dan`,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const denoDir = Deno.env.get("DENO_DIR");
  env.DENO_DIR = denoDir ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  await Deno.mkdir(env.HOME, { recursive: true });
  await Deno.mkdir(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  const feed = `printf '<passphrase>\\n' | `;
  try {
    console.log(bold("vigo swarm demo: one puddle identity on one envoy"));
    console.log(`(throwaway HOME ${env.HOME})`);

    say("Dan creates his puddle: one Ed25519 key, wrapped under a passphrase.");
    await run(
      env,
      ["swarm", "puddle", "init"],
      `${PASSPHRASE}\n${PASSPHRASE}\n`,
      feed.replace("\\n", "\\n<again>\\n"),
    );
    for (
      const entry of [...Deno.readDirSync(`${env.HOME}/.vigo-puddle`)].sort((
        a,
        b,
      ) => a.name.localeCompare(b.name))
    ) {
      if (!entry.name.startsWith("identity")) continue;
      const info = Deno.statSync(`${env.HOME}/.vigo-puddle/${entry.name}`);
      console.log(
        `  ${(info.mode! & 0o777).toString(8)} ${
          String(info.size).padStart(3)
        } B  ~/.vigo-puddle/${entry.name}`,
      );
    }

    say("The key stays wrapped on disk; the puddle is locked.");
    await run(env, ["swarm", "puddle", "status"]);

    say(
      "Unlocking unwraps it into a detached session helper, and nowhere else.",
    );
    await run(env, ["swarm", "puddle", "unlock"], `${PASSPHRASE}\n`, feed);

    say(
      "Any of Dan's tools can now ask the helper for a signature over its socket…",
    );
    const pubkey = parsePublicKey(
      await run(env, ["swarm", "puddle", "pubkey"]),
    );
    const message = new TextEncoder().encode("push 3f2a… to vigo-web");
    const client = await SessionClient.connect(
      `${env.XDG_RUNTIME_DIR}/vigo/puddle.sock`,
      { puddleDir: `${env.HOME}/.vigo-puddle` },
    );
    let signature: Uint8Array;
    try {
      signature = await client.sign(
        "vigo-swarm/v1/puddle-session-probe",
        message,
      );
    } finally {
      client.close();
    }
    console.log(`  message:   ${new TextDecoder().decode(message)}`);
    console.log(`  signature: ${toHex(signature).slice(0, 32)}…`);
    const valid = verifyWithContext(
      pubkey,
      "vigo-swarm/v1/puddle-session-probe",
      message,
      signature,
    );
    console.log(`  verified against identity.pub: ${valid ? "yes" : "NO"}`);
    if (!valid) throw new Error("the helper's signature did not verify");
    const forged = verifyWithContext(
      pubkey,
      "vigo-swarm/v1/gitback-token",
      message,
      signature,
    );
    console.log(
      `  …and the same bytes under another context: ${
        forged ? "ACCEPTED" : "rejected"
      }`,
    );

    say("Locking scrubs the key from memory and stops the helper.");
    await run(env, ["swarm", "puddle", "lock"]);
    await run(env, ["swarm", "puddle", "status"]);

    await fleetStory(base);
  } finally {
    await new Deno.Command(VIGO, {
      args: ["swarm", "puddle", "lock"],
      env,
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).output();
    await Deno.remove(base, { recursive: true });
  }
}

/** Part two: the same identity carried to two more envoys by pairing. */
async function fleetStory(base: string) {
  console.log(
    bold("\nvigo swarm demo, part two: one puddle across three envoys"),
  );
  if (Deno.uid() !== 0) {
    say(
      "Skipped: `join` needs root for the agent's TLS key; run the demo as root to see pairing.",
    );
    return;
  }
  const dir = `${base}/fleet`;
  say(
    "A local fleet: a CA, three envoys on loopback, each with its own root, home and agent.",
  );
  // Ann, another Unix user on envoy-a, comes in part three; envoy-a's agent
  // acts only on the users its agent.yaml lists, so she is listed from the
  // start.
  const ann = createUser(base, "ann");
  let fleet;
  try {
    fleet = await fleetUp(dir, {
      envoys: 3,
      server: true,
      homes: (envoy) =>
        envoy.name === "envoy-a" ? { [ann.name]: ann.home } : {},
    });
  } catch (error) {
    deleteUser(ann);
    throw error;
  }
  try {
    for (const envoy of fleet.envoys) {
      console.log(
        `  ${envoy.name}  ${envoy.address}:1531  agent pid ${envoy.agentPid}`,
      );
    }
    const [a, b, c] = fleet.envoys;
    const feed = `printf '<passphrase>\\n<again>\\n' | `;

    say("On envoy-a, the founder envoy, Dan creates his puddle.");
    await run(
      a.env,
      ["swarm", "puddle", "init"],
      `${PASSPHRASE}\n${PASSPHRASE}\n`,
      feed,
    );

    for (const joiner of [b, c]) {
      say(`On envoy-a Dan asks for a pairing code for ${joiner.name}…`);
      const out = await run(a.env, ["swarm", "puddle", "pair"]);
      const code = /pairing code: (\d{4}-\d{4})/.exec(out)![1];
      say(
        `…and on ${joiner.name} claims it over mutual TLS, then proves his passphrase.`,
      );
      await run(
        joiner.env,
        ["swarm", "puddle", "join", "--from", "envoy-a"],
        `${code}\n${PASSPHRASE}\n`,
        `printf '${code}\\n<passphrase>\\n' | sudo `,
      );
    }

    say(
      "A used code is gone: claiming it again fails, and the agent logs who tried.",
    );
    const code = /pairing code: (\d{4}-\d{4})/.exec(
      await run(a.env, ["swarm", "puddle", "pair"]),
    )![1];
    await run(
      c.env,
      ["swarm", "puddle", "join", "--from", "envoy-a"],
      "0000-0000\n",
      "printf '0000-0000\\n' | sudo ",
    )
      .catch(() => {});
    await run(
      c.env,
      ["swarm", "puddle", "join", "--from", "envoy-a"],
      `${code}\n`,
      `printf '${code}\\n' | sudo `,
    )
      .catch(() => {});
    const warn = Deno.readTextFileSync(a.log).split("\n").filter((l) =>
      l.includes("WARN")
    ).at(-1);
    console.log(`  envoy-a agent log: ${warn}`);

    say("All three envoys unlock to the same key.");
    for (const envoy of fleet.envoys) {
      await run(
        envoy.env,
        ["swarm", "puddle", "unlock"],
        `${PASSPHRASE}\n`,
        `printf '<passphrase>\\n' | `,
      );
      await run(envoy.env, ["swarm", "puddle", "lock"]);
    }

    say("envoy-a keeps a local record of the envoys it paired.");
    await run(a.env, ["swarm", "puddle", "members"]);

    await gitbackStory(base, fleet.envoys, ann);
    await fleetServerStory(base, fleet);
    say("Done.");
  } finally {
    await fleetDown(dir);
    deleteUser(ann);
  }
}

/** Part three: a project founded from a repo, a second puddle invited. */
async function gitbackStory(base: string, envoys: Envoy[], ann: TestUser) {
  const [a, b, c] = envoys;
  console.log(bold("\nvigo swarm demo, part three: git over the swarm"));
  const bin = `${base}/bin`;
  Deno.mkdirSync(bin, { recursive: true });
  Deno.symlinkSync(VIGO, `${bin}/git-remote-gitback`);
  const gitIdentity = {
    GIT_AUTHOR_NAME: "Dan",
    GIT_AUTHOR_EMAIL: "dan@example.invalid",
    GIT_COMMITTER_NAME: "Dan",
    GIT_COMMITTER_EMAIL: "dan@example.invalid",
  };
  const env = { ...a.env, ...gitIdentity, PATH: `${bin}:${a.env.PATH}` };
  const git = (args: string[], cwd: string, e = env) => {
    const out = new Deno.Command("git", {
      args,
      cwd,
      env: e,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    })
      .outputSync();
    if (!out.success) {
      throw new Error(
        `git ${args[0]}: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    return new TextDecoder().decode(out.stdout);
  };

  say("Dan unlocks on envoy-a and founds a project from a sample repository.");
  await run(
    a.env,
    ["swarm", "puddle", "unlock"],
    `${PASSPHRASE}\n`,
    "printf '<passphrase>\\n' | ",
  );
  const work = `${base}/vigo-web`;
  Deno.mkdirSync(work);
  git(["init", "--quiet", "-b", "main"], work);
  Deno.writeTextFileSync(`${work}/README.md`, "# vigo-web\n");
  git(["add", "README.md"], work);
  git(["commit", "--quiet", "-m", "Start vigo-web"], work);
  const founded = await run(
    env,
    ["swarm", "gitback", "project", "init", "vigo-web"],
    "",
    "",
    work,
  );
  const url = /URL: +(\S+)/.exec(founded)![1];
  const projectId = url.slice("gitback://".length, "gitback://".length + 64);

  // Ann is another Unix user on envoy-a, with a puddle of her own.
  let annSession: UserSession | undefined;
  try {
    Object.assign(ann.env, gitIdentity, {
      VIGO_ROOT: a.root,
      PATH: `${bin}:${ann.env.PATH}`,
      GIT_AUTHOR_NAME: "Ann",
    });
    writePolicies(
      systemPathsUnder(a.root),
      [{ user: ann.name, home: ann.home, puddle: true, gitback: true }],
      "demo",
    );
    for (
      const p of [
        base,
        `${base}/fleet`,
        a.root,
        `${a.root}/var`,
        `${a.root}/var/run`,
      ]
    ) Deno.chmodSync(p, 0o755);
    await runAs(
      ann,
      [VIGO, "swarm", "puddle", "init"],
      `${PASSPHRASE}\n${PASSPHRASE}\n`,
    );
    // Her session lives until the end of the story, as in a login shell.
    annSession = await unlockAs(ann, PASSPHRASE);
    const annKey = (await runAs(ann, [VIGO, "swarm", "puddle", "pubkey"]))
      .stdout.trim();

    say(`Dan invites Ann's puddle (${annKey.slice(0, 20)}…) as a member.`);
    const invitation = await run(a.env, [
      "swarm",
      "gitback",
      "project",
      "invite",
      "vigo-web",
      "--puddle",
      annKey,
      "--role",
      "member",
    ]);
    Deno.writeTextFileSync(`${ann.home}/invite.json`, invitation);
    Deno.chownSync(`${ann.home}/invite.json`, ann.uid, ann.uid);

    say("Ann joins with the invitation, clones, commits and pushes.");
    const show = async (argv: string[], shown: string) => {
      console.log(bold(`$ ${shown}`));
      const r = await runAs(ann, argv);
      const text = (r.stdout + r.stderr).trimEnd();
      if (text) console.log(text.split("\n").map((l) => `  ${l}`).join("\n"));
      if (r.code !== 0) throw new Error(`${shown} failed`);
    };
    await show(
      [
        VIGO,
        "swarm",
        "gitback",
        "project",
        "join",
        projectId,
        "--invitation",
        `${ann.home}/invite.json`,
      ],
      `vigo swarm gitback project join ${
        projectId.slice(0, 12)
      }… --invitation invite.json`,
    );
    await show(
      ["git", "clone", "--quiet", url, `${ann.home}/vigo-web`],
      `git clone gitback://${projectId.slice(0, 12)}…/vigo-web`,
    );
    Deno.writeTextFileSync(`${ann.home}/vigo-web/NOTES.md`, "Ann was here.\n");
    Deno.chownSync(`${ann.home}/vigo-web/NOTES.md`, ann.uid, ann.uid);
    await show(
      ["git", "-C", `${ann.home}/vigo-web`, "add", "NOTES.md"],
      "git add NOTES.md",
    );
    await show([
      "git",
      "-C",
      `${ann.home}/vigo-web`,
      "commit",
      "--quiet",
      "-m",
      "Add notes",
    ], "git commit -m 'Add notes'");
    await show([
      "git",
      "-C",
      `${ann.home}/vigo-web`,
      "push",
      "--quiet",
      "origin",
      "main",
    ], "git push");

    say("Dan fetches Ann's commit through the swarm.");
    git(["fetch", "--quiet", "swarm"], work);
    console.log(
      git(["log", "--format=  %h %an: %s", "swarm/main"], work).trimEnd(),
    );
    await run(a.env, ["swarm", "gitback", "status"]);

    say(
      "The pushes travelled: envoy-b and envoy-c hold the same tip, sent as thin bundles.",
    );
    const tip = git(["rev-parse", "swarm/main"], work).trim();
    for (const envoy of [b, c]) {
      const repo =
        `${envoy.root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`;
      let head = "";
      for (let i = 0; i < 100 && head !== tip; i++) {
        const out = new Deno.Command("git", {
          args: ["-C", repo, "rev-parse", "-q", "--verify", "main"],
          stdout: "piped",
          stderr: "null",
        })
          .outputSync();
        head = new TextDecoder().decode(out.stdout).trim();
        if (head !== tip) await new Promise((r) => setTimeout(r, 100));
      }
      console.log(
        `  ${envoy.name}: main at ${head.slice(0, 7)}${
          head === tip ? " ✓" : " (not yet)"
        }`,
      );
    }
    const sent = Deno.readTextFileSync(a.log).split("\n").filter((l) =>
      l.includes("fan-out delivered")
    ).slice(-2);
    for (const line of sent) {
      console.log(
        `  envoy-a agent log: ${line.slice(line.indexOf("fan-out"))}`,
      );
    }

    say(
      "Dan unlocks on envoy-b. The project he founded is adopted there, by unlock or by envoy-b's agent from a peer's token chain, whichever comes first; he clones it.",
    );
    const state = `${b.env.HOME}/.vigo-gitback/${projectId}/project.json`;
    let unlock = "";
    for (let i = 0; i < 30; i++) {
      await runCommand(VIGO, {
        args: ["swarm", "puddle", "lock"],
        env: b.env,
        clearEnv: true,
      });
      unlock = (await runCommand(VIGO, {
        args: ["swarm", "puddle", "unlock"],
        env: b.env,
        clearEnv: true,
        stdin: `${PASSPHRASE}\n`,
      })).stdout;
      if (unlock.includes("vigo-web") || exists(state)) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    console.log(bold("$ printf '<passphrase>\\n' | vigo swarm puddle unlock"));
    console.log(unlock.trimEnd().split("\n").map((l) => `  ${l}`).join("\n"));
    await run(b.env, ["swarm", "gitback", "project", "list"]);
    const envB = { ...b.env, ...gitIdentity, PATH: `${bin}:${b.env.PATH}` };
    console.log(
      bold(`$ git clone gitback://${projectId.slice(0, 12)}…/vigo-web`),
    );
    git(["clone", "--quiet", url, `${base}/vigo-web-on-b`], base, envB);
    console.log(
      git(["log", "--format=  %h %an: %s"], `${base}/vigo-web-on-b`, envB)
        .trimEnd(),
    );

    await rotationStory(envoys, { git, work, url });
  } finally {
    await annSession?.lock();
  }
}

/**
 * Part four: Dan's key may have leaked; he rotates it and keeps pushing to
 * the same project id.
 */
async function rotationStory(
  envoys: Envoy[],
  repo: {
    git: (args: string[], cwd: string) => string;
    work: string;
    url: string;
  },
) {
  const [a, b, c] = envoys;
  console.log(bold("\nvigo swarm demo, part four: a key that may have leaked"));
  say(
    "Dan rotates his key on envoy-a: a new key under the same passphrase, a statement signed by both keys, and for vigo-web a delegation to the new key that seals every token the old key issued.",
  );
  const out = await run(
    a.env,
    ["swarm", "puddle", "rekey-pair"],
    `${PASSPHRASE}\n`,
    "printf '<passphrase>\\n' | ",
  );
  let code = /rekey code: (\d{4}-\d{4})/.exec(out)![1];
  for (const envoy of [b, c]) {
    say(`On ${envoy.name} Dan takes the new key with the code.`);
    await run(
      envoy.env,
      ["swarm", "puddle", "rekey", "--from", "envoy-a"],
      `${code}\n${PASSPHRASE}\n`,
      `printf '${code}\\n<passphrase>\\n' | sudo `,
    );
    if (envoy === b) {
      code = /rekey code: (\d{4}-\d{4})/.exec(
        await run(a.env, ["swarm", "puddle", "rekey-pair", "--reissue"]),
      )![1];
    }
  }
  say("The project keeps its id; its founder is now the new key.");
  const status = await runCommand(VIGO, {
    args: ["swarm", "gitback", "project", "status", "vigo-web"],
    env: a.env,
    clearEnv: true,
  });
  for (const line of status.stdout.split("\n")) {
    if (/^ {2}(project_id|delegations|founder now):/.test(line)) {
      console.log(line);
    }
  }
  say("Dan keeps pushing, signed by the new key; the other envoys follow.");
  repo.git(["pull", "--quiet", "swarm", "main"], repo.work);
  repo.git(
    ["commit", "--quiet", "--allow-empty", "-m", "after the rotation"],
    repo.work,
  );
  repo.git(["push", "--quiet", "swarm", "main"], repo.work);
  const tip = repo.git(["rev-parse", "HEAD"], repo.work).trim();
  for (const envoy of [b, c]) {
    const repoPath = `${envoy.root}/var/lib/vigo/swarm/gitback/projects/${
      /gitback:\/\/([0-9a-f]{64})\//.exec(repo.url)![1]
    }.git`;
    let head = "";
    for (let i = 0; i < 100 && head !== tip; i++) {
      const got = new Deno.Command("git", {
        args: ["-C", repoPath, "rev-parse", "-q", "--verify", "main"],
        stdout: "piped",
        stderr: "null",
      }).outputSync();
      head = new TextDecoder().decode(got.stdout).trim();
      if (head !== tip) await new Promise((r) => setTimeout(r, 100));
    }
    console.log(
      `  ${envoy.name}: main at ${head.slice(0, 7)}${
        head === tip ? " ✓" : " (not yet)"
      }`,
    );
  }
}

/**
 * Part five: the fleet server. Every agent has been checking in with it
 * since the fleet came up; Dan names himself, clones by the name, and the
 * Puddles page shows his puddle, Healthy, then Warning once an envoy stops.
 */
async function fleetServerStory(base: string, fleet: Fleet) {
  const [a, , c] = fleet.envoys;
  const server = fleet.server!;
  const web = `http://${server.address}:${server.webPort}`;
  console.log(bold("\nvigo swarm demo, part five: the fleet server"));
  say(
    `A fleet server runs beside the envoys (${server.address}:1533, its pages on ${web}, loopback only); every agent checks in with it every ${FLEET_CHECKIN_S} s.`,
  );
  say(
    "Dan unlocks his new key on envoy-b and envoy-c, as at every login (unlocking proves the key to each agent), and names himself.",
  );
  for (const envoy of fleet.envoys.slice(1)) {
    await run(
      envoy.env,
      ["swarm", "puddle", "unlock"],
      `${PASSPHRASE}\n`,
      "printf '<passphrase>\\n' | ",
    );
  }
  await run(a.env, ["swarm", "puddle", "name", "set", "dan"]);
  const key = (await run(a.env, ["swarm", "puddle", "pubkey"])).trim();

  const puddles = async () => {
    const response = await fetch(`${web}/swarm/puddle.json`);
    return (await response.json() as { puddles: PuddleRow[] }).puddles;
  };
  const until = async (what: string, check: (row?: PuddleRow) => boolean) => {
    for (let i = 0; i < 600; i++) {
      const row = (await puddles()).find((r) => r.key === key);
      if (check(row)) return row!;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the Puddles page never showed ${what}`);
  };
  const show = (row: PuddleRow) =>
    console.log(
      `  ${row.owner}  ${row.short_key}  ${row.envoys.length} envoys (${
        row.envoys.join(", ")
      })  users ${
        row.users.join(", ")
      }  unlocked ${row.unlocked_sessions}  ${row.badge}${
        row.reasons.length ? `: ${row.reasons.join("; ")}` : ""
      }`,
    );
  say("The Puddles page (/swarm/puddle) rolls his puddle up across the fleet:");
  show(
    await until(
      "dan Healthy on three envoys",
      (row) =>
        row?.owner === "dan" && row.envoys.length === 3 &&
        row.badge === "Healthy",
    ),
  );

  say(
    "The name map reaches every envoy; on envoy-c Dan clones by his name instead of the hex id.",
  );
  const map = `${c.root}/var/lib/vigo/swarm/puddle/names.json`;
  for (let i = 0; i < 600; i++) {
    try {
      if (JSON.parse(Deno.readTextFileSync(map)).names.dan) break;
    } catch {
      // Not fetched yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const bin = `${base}/bin`;
  const envC = {
    ...c.env,
    PATH: `${bin}:${c.env.PATH}`,
    GIT_AUTHOR_NAME: "Dan",
    GIT_AUTHOR_EMAIL: "dan@example.invalid",
    GIT_COMMITTER_NAME: "Dan",
    GIT_COMMITTER_EMAIL: "dan@example.invalid",
  };
  console.log(bold("$ git clone gitback://dan/vigo-web"));
  const cloned = await runCommand("git", {
    args: ["clone", "--quiet", "gitback://dan/vigo-web", `${base}/by-name`],
    env: envC,
    clearEnv: true,
    cwd: base,
  });
  if (cloned.code !== 0) throw new Error(`git clone failed: ${cloned.stderr}`);
  const log = await runCommand("git", {
    args: ["-C", `${base}/by-name`, "log", "--format=  %h %an: %s"],
  });
  console.log(log.stdout.trimEnd());
  say("The fleet's view of the project, from any envoy (as root):");
  await run(a.env, ["swarm", "gitback", "show", "vigo-web"]);

  say(
    `envoy-c goes down. After ${STALE_PERIODS} check-in periods (${
      STALE_PERIODS * FLEET_CHECKIN_S
    } s here) without a word from it, the page turns the puddle Warning.`,
  );
  await stopAgent(fleet, c);
  show(await until("Warning", (row) => row?.badge === "Warning"));
}

await main();
