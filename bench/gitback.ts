/**
 * Gitback benchmarks: clone and push of a generated repository (over
 * 100 MB) through git-remote-gitback and the agent, against plain git over
 * `file://`; and token-chain verifications per second.
 *
 * @module
 */

import { fleetDown, fleetUp } from "../scripts/fleet.ts";
import { runCommand } from "../src/platform/process.ts";
import { generateSeed } from "../src/crypto/ed25519.ts";
import { projectId } from "../src/gitback/project_id.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  verifyChain,
} from "../src/gitback/tokens.ts";
import { fmt, median, type Section } from "./report.ts";
import { canStartSshd, type Sshd, startSshd } from "./sshd.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";
import { PURE_JS_ENGINE, useVerifyEngine } from "../src/crypto/ed25519.ts";
import { useNativeVerification } from "../src/crypto/ed25519_native.ts";
import {
  decodeDelegation,
  signDelegation,
} from "../src/gitback/delegations.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const VIGO = `${REPO}/scripts/vigo`;
const RUNS = 3;
const FILES = 110;
const FILE_BYTES = 1024 * 1024;

async function exec(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
  stdin = "",
) {
  const start = performance.now();
  const out = await runCommand(cmd, { args, env, cwd, clearEnv: true, stdin });
  const ms = performance.now() - start;
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${out.stderr}`);
  }
  return { ms, stdout: out.stdout };
}

/** Builds a work tree of FILES incompressible files in ten commits. */
async function generateRepo(
  dir: string,
  env: Record<string, string>,
): Promise<number> {
  await exec("git", ["init", "--quiet", "-b", "main", dir], env);
  let bytes = 0;
  for (let i = 0; i < FILES; i++) {
    const data = new Uint8Array(FILE_BYTES);
    for (let at = 0; at < data.length; at += 65536) {
      crypto.getRandomValues(data.subarray(at, at + 65536));
    }
    Deno.writeFileSync(`${dir}/blob-${String(i).padStart(3, "0")}.bin`, data);
    bytes += data.length;
    if (i % 11 === 10) {
      await exec("git", ["add", "."], env, dir);
      await exec("git", ["commit", "--quiet", "-m", `batch ${i}`], env, dir);
    }
  }
  return bytes;
}

const SMALL_RUNS = 7;

interface Triple {
  ours: number;
  file: number;
  ssh: number;
}

interface SmallResults {
  clone: Triple;
  fetch: Triple;
  push: Triple;
  lsRemote: Triple;
  startMs: number;
}

/**
 * A 1 MiB repository on the three transports: clone, then rounds of one
 * new commit pushed to each and fetched back from a clone of each; medians
 * in ms. The file:// and ssh:// remotes are two bare repositories with the
 * same history.
 */
async function smallOperations(
  base: string,
  env: Record<string, string>,
  sshd: Sshd | null,
  sshEnv: Record<string, string>,
): Promise<SmallResults | null> {
  if (!sshd) return null;
  const work = `${base}/small`;
  await exec("git", ["init", "--quiet", "-b", "main", work], env);
  const blob = new Uint8Array(1024 * 1024);
  for (let at = 0; at < blob.length; at += 65536) {
    crypto.getRandomValues(blob.subarray(at, at + 65536));
  }
  Deno.writeFileSync(`${work}/blob.bin`, blob);
  await exec("git", ["add", "."], env, work);
  await exec("git", ["commit", "--quiet", "-m", "one MiB"], env, work);
  const init = await exec(
    VIGO,
    ["swarm", "gitback", "project", "init", "small", "--no-push"],
    env,
    work,
  );
  const remotes = {
    ours: { url: /URL: +(\S+)/.exec(init.stdout)![1], env },
    file: { url: `file://${base}/small-file.git`, env },
    ssh: { url: sshd.url(`${base}/small-ssh.git`), env: sshEnv },
  };
  for (const bare of ["small-file.git", "small-ssh.git"]) {
    await exec("git", ["init", "--quiet", "--bare", `${base}/${bare}`], env);
  }
  for (const r of Object.values(remotes)) {
    await exec("git", ["push", "--quiet", r.url, "main"], r.env, work);
  }
  const samples = () => ({
    ours: [] as number[],
    file: [] as number[],
    ssh: [] as number[],
  });
  const clone = samples();
  const fetch = samples();
  const push = samples();
  const lsRemote = samples();
  const start: number[] = [];
  const names = ["ours", "file", "ssh"] as const;
  for (const name of names) {
    const r = remotes[name];
    await exec(
      "git",
      ["clone", "--quiet", r.url, `${base}/keep-${name}`],
      r.env,
    );
  }
  for (let i = 0; i < SMALL_RUNS; i++) {
    for (const name of names) {
      const r = remotes[name];
      const dest = `${base}/sc-${name}-${i}`;
      clone[name].push(
        (await exec("git", ["clone", "--quiet", "--bare", r.url, dest], r.env))
          .ms,
      );
      await Deno.remove(dest, { recursive: true });
      lsRemote[name].push((await exec("git", ["ls-remote", r.url], r.env)).ms);
    }
    start.push((await exec(VIGO, ["version"], env)).ms);
    Deno.writeTextFileSync(`${work}/round.txt`, `round ${i}\n`);
    await exec("git", ["add", "round.txt"], env, work);
    await exec("git", ["commit", "--quiet", "-m", `round ${i}`], env, work);
    for (const name of names) {
      const r = remotes[name];
      push[name].push(
        (await exec("git", ["push", "--quiet", r.url, "main"], r.env, work)).ms,
      );
      fetch[name].push(
        (await exec(
          "git",
          ["fetch", "--quiet", "origin"],
          r.env,
          `${base}/keep-${name}`,
        )).ms,
      );
    }
  }
  const triple = (s: ReturnType<typeof samples>): Triple => ({
    ours: median(s.ours),
    file: median(s.file),
    ssh: median(s.ssh),
  });
  return {
    clone: triple(clone),
    fetch: triple(fetch),
    push: triple(push),
    lsRemote: triple(lsRemote),
    startMs: median(start),
  };
}

/** Clone and push through gitback vs file://, side by side. */
export async function benchGitback(): Promise<Section> {
  const base = await Deno.makeTempDir({ prefix: "vigo-bench-git-" });
  const fleetDir = `${base}/fleet`;
  let fleetStarted = false;
  let small: SmallResults | null = null;
  let sshd: Sshd | null = null;
  try {
    const fleet = await fleetUp(fleetDir, {
      envoys: 1,
    });
    fleetStarted = true;
    const [a] = fleet.envoys;
    const bin = `${base}/bin`;
    await Deno.mkdir(bin);
    await Deno.symlink(VIGO, `${bin}/git-remote-gitback`);
    const env = {
      ...a.env,
      PATH: `${bin}:${a.env.PATH}`,
      GIT_AUTHOR_NAME: "bench",
      GIT_AUTHOR_EMAIL: "bench@example.invalid",
      GIT_COMMITTER_NAME: "bench",
      GIT_COMMITTER_EMAIL: "bench@example.invalid",
    };
    await exec(VIGO, ["swarm", "puddle", "init"], env, undefined, "pw\npw\n");
    await exec(VIGO, ["swarm", "puddle", "unlock"], env, undefined, "pw\n");
    const work = `${base}/work`;
    const bytes = await generateRepo(work, env);

    const ours = { push: [] as number[], clone: [] as number[] };
    const ref = { push: [] as number[], clone: [] as number[] };
    const overSsh: number[] = [];
    let lastUrl = "";
    sshd = canStartSshd() ? await startSshd(`${base}/sshd`) : null;
    const sshEnv = sshd ? { ...env, GIT_SSH_COMMAND: sshd.gitSshCommand } : env;
    for (let i = 0; i < RUNS; i++) {
      // Reference: a fresh bare repository over file://.
      const bare = `${base}/ref-${i}.git`;
      await exec("git", ["init", "--quiet", "--bare", bare], env);
      ref.push.push(
        (await exec(
          "git",
          ["push", "--quiet", `file://${bare}`, "main"],
          env,
          work,
        )).ms,
      );
      ref.clone.push(
        (await exec("git", [
          "clone",
          "--quiet",
          "--bare",
          `file://${bare}`,
          `${base}/refc-${i}.git`,
        ], env)).ms,
      );

      if (sshd) {
        overSsh.push(
          (await exec("git", [
            "clone",
            "--quiet",
            "--bare",
            sshd.url(bare),
            `${base}/sshc-${i}.git`,
          ], sshEnv)).ms,
        );
        await Deno.remove(`${base}/sshc-${i}.git`, { recursive: true });
      }

      // Ours: a fresh project, whose first push creates the bare repository.
      const init = await exec(
        VIGO,
        ["swarm", "gitback", "project", "init", `bench-${i}`, "--no-push"],
        env,
        work,
      );
      const url = /URL: +(\S+)/.exec(init.stdout)![1];
      lastUrl = url;
      ours.push.push(
        (await exec("git", ["push", "--quiet", url, "main"], env, work)).ms,
      );
      ours.clone.push(
        (await exec("git", [
          "clone",
          "--quiet",
          "--bare",
          url,
          `${base}/oursc-${i}.git`,
        ], env)).ms,
      );
      for (
        const dir of [`${base}/refc-${i}.git`, `${base}/oursc-${i}.git`, bare]
      ) {
        await Deno.remove(dir, { recursive: true });
      }
    }
    // The agent's peak memory while it serves clones of the large project:
    // one, then three at once (the kernel's high-water mark, reset first).
    const peak = async (clones: number) => {
      Deno.writeTextFileSync(`/proc/${a.agentPid}/clear_refs`, "5");
      await Promise.all(
        Array.from({ length: clones }, (_, k) =>
          exec("git", [
            "clone",
            "--quiet",
            "--bare",
            lastUrl,
            `${base}/mem-${clones}-${k}.git`,
          ], env)),
      );
      const status = Deno.readTextFileSync(`/proc/${a.agentPid}/status`);
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
    };
    const peakOne = await peak(1);
    const peakThree = await peak(3);
    small = await smallOperations(base, env, sshd, sshEnv);
    const versusSsh = (what: string, o: number, r: number, f: number) => {
      const ratio = o / r;
      return {
        what,
        ours: `${fmt(o / 1000, 3)} s`,
        reference: `${fmt(r / 1000, 3)} s (git, ssh://); file:// ${
          fmt(f / 1000, 3)
        } s, ours ${fmt(o / f)}× that`,
        ratio: `${fmt(ratio)}×`,
        target: "< 1× (faster than ssh)",
        met: ratio < 1 ? "yes" as const : "no" as const,
      };
    };
    const row = (what: string, o: number[], r: number[]) => {
      const ratio = median(o) / median(r);
      return {
        what,
        ours: `${fmt(median(o) / 1000)} s`,
        reference: `${fmt(median(r) / 1000)} s (git, file://)`,
        ratio: `${fmt(ratio)}×`,
        target: "≤ 1.15×",
        met: ratio <= 1.15 ? "yes" as const : "no" as const,
      };
    };
    return {
      title: "Clone and push through gitback",
      method:
        `A generated repository of ${FILES} incompressible 1 MiB files in ten commits (${
          fmt(bytes / 1048576, 0)
        } MiB). ` +
        `Each of ${RUNS} rounds pushes it into a fresh bare repository and clones that back (\`--bare\`), ` +
        "once with plain git over `file://`, once over `ssh://` to a throwaway `sshd` on a loopback port (clone only), and once through `gitback://` (remote helper → agent socket with its signed challenge → git upload-pack/receive-pack); medians. " +
        `Then a 1 MiB repository on each of the three: clone, \`ls-remote\`, and ${SMALL_RUNS} rounds of pushing one new commit to each and fetching it into a clone of each; medians. Then the agent's peak RSS (VmHWM, reset before) while it serves clones of the large repository.`,
      rows: [
        row("push, first into an empty repository", ours.push, ref.push),
        row("clone (bare)", ours.clone, ref.clone),
        ...(sshd && small
          ? [
            versusSsh(
              `clone (bare), ${fmt(bytes / 1048576, 0)} MiB`,
              median(ours.clone),
              median(overSsh),
              median(ref.clone),
            ),
            versusSsh(
              "clone, 1 MiB repository (fixed cost)",
              small.clone.ours,
              small.clone.ssh,
              small.clone.file,
            ),
            versusSsh(
              "fetch of one new commit",
              small.fetch.ours,
              small.fetch.ssh,
              small.fetch.file,
            ),
            versusSsh(
              "push of one commit",
              small.push.ours,
              small.push.ssh,
              small.push.file,
            ),
          ]
          : []),
        {
          what: "agent peak RSS, one clone of the large repository",
          ours: `${fmt(peakOne, 0)} MiB`,
          reference: "—",
          ratio: "—",
          target: "reported",
          met: "—",
        },
        {
          what: "agent peak RSS, three concurrent clones",
          ours: `${fmt(peakThree, 0)} MiB`,
          reference: "—",
          ratio: "—",
          target: "reported",
          met: "—",
        },
      ],
      notes: small
        ? [
          `Where a small clone's time goes (medians): starting the launcher and Deno for the remote helper ${
            fmt(small.startMs, 0)
          } ms; \`git ls-remote\` (start, handshake with the agent, signed challenge, ref advertisement) ${
            fmt(small.lsRemote.ours, 0)
          } ms through gitback against ${
            fmt(small.lsRemote.file, 0)
          } ms over file:// and ${
            fmt(small.lsRemote.ssh, 0)
          } ms over ssh://. The 110 MiB clone's pack goes from upload-pack to git without a relay (agent/fetch_handoff.ts), so a clone adds nothing to the agent's memory: the peak RSS rows equal its resident size before the clones (after relaying the pushes above).`,
        ]
        : [
          "openssh-server is not installed (`.ci/run` installs it) or this is not root: no ssh rows.",
        ],
    };
  } finally {
    await sshd?.stop();
    if (fleetStarted) await fleetDown(fleetDir);
    await Deno.remove(base, { recursive: true });
  }
}

/** Chains verified per second by `verify`, over two seconds after a warm-up. */
async function verificationsPerSecond(
  verify: () => Promise<unknown>,
): Promise<number> {
  for (let i = 0; i < 50; i++) await verify();
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < 2000) {
    await verify();
    count++;
  }
  return count / ((performance.now() - start) / 1000);
}

/**
 * Token-chain verifications per second (founder → admin → member), with no
 * founder delegation and with five (the cap), side by side.
 */
export async function benchTokens(): Promise<Section> {
  const genesis = seedSigner(generateSeed());
  const admin = seedSigner(generateSeed());
  const member = seedSigner(generateSeed());
  const id = await projectId(genesis.publicKey, "bench");
  const root = await mintBootstrapToken(genesis, "bench");
  const mid = await mintChildToken(genesis, [root], {
    subject: admin.publicKey,
    role: "admin",
  });
  const leaf = await mintChildToken(admin, [root, mid], {
    subject: member.publicKey,
    role: "member",
  });
  const chain = [root, mid, leaf];
  // Five rotations of the founder key; the first seals what genesis issued.
  const delegations: unknown[] = [];
  let founder = genesis;
  let previous: string | null = null;
  for (let position = 1; position <= 5; position++) {
    const next = seedSigner(generateSeed());
    const delegation = await signDelegation(founder, {
      projectId: id,
      position,
      previous,
      to: next.publicKey,
      sealed: position === 1 ? [decodeToken(root).id, decodeToken(mid).id] : [],
    });
    delegations.push(delegation);
    previous = decodeDelegation(delegation).id;
    founder = next;
  }
  const plainJs = await verificationsPerSecond(() =>
    verifyChain(chain, { projectId: id, presenter: member.publicKey })
  );
  // As the agent verifies: the native engine, the same strict rule.
  useNativeVerification();
  let plain: number;
  let delegated: number;
  try {
    plain = await verificationsPerSecond(() =>
      verifyChain(chain, { projectId: id, presenter: member.publicKey })
    );
    delegated = await verificationsPerSecond(() =>
      verifyChain(chain, {
        projectId: id,
        presenter: member.publicKey,
        delegations,
      })
    );
  } finally {
    useVerifyEngine(PURE_JS_ENGINE);
  }
  const perChain = (perSec: number) =>
    `${fmt(perSec, 0)}/s (${fmt(1000 / perSec, 3)} ms each)`;
  return {
    title: "Token chain verification",
    method:
      "A three-link chain (founder → admin → member), verified in full (decoding, canonical check, anchor, three strict Ed25519 signatures) for two seconds, as the agent verifies (native engine); then the same chain after five rotations of the founder key, which adds the walk of five delegations (five more signatures and the seal check); and the first chain with the pure-JavaScript engine the short-lived faces use, all in the same run.",
    rows: [{
      what: "chains verified per second, no delegation",
      ours: perChain(plain),
      reference: `${perChain(plainJs)} with the pure-JavaScript engine`,
      ratio: `${fmt(plain / plainJs, 1)}× faster`,
      target: "reported",
      met: "—",
    }, {
      what: "chains verified per second, 5 delegations",
      ours: perChain(delegated),
      reference: `${perChain(plain)} without delegations`,
      ratio: `${fmt(plain / delegated)}× the time`,
      target: "reported",
      met: "—",
    }],
  };
}
