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

/** Clone and push through gitback vs file://, side by side. */
export async function benchGitback(): Promise<Section> {
  const base = await Deno.makeTempDir({ prefix: "vigo-bench-git-" });
  const fleetDir = `${base}/fleet`;
  let fleetStarted = false;
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

      // Ours: a fresh project, whose first push creates the bare repository.
      const init = await exec(
        VIGO,
        ["swarm", "gitback", "project", "init", `bench-${i}`, "--no-push"],
        env,
        work,
      );
      const url = /URL: +(\S+)/.exec(init.stdout)![1];
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
        "once with plain git over `file://` and once through `gitback://` (remote helper → agent socket with its signed challenge → git upload-pack/receive-pack); medians.",
      rows: [
        row("push, first into an empty repository", ours.push, ref.push),
        row("clone (bare)", ours.clone, ref.clone),
      ],
    };
  } finally {
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
