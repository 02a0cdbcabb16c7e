/**
 * Replication benchmarks on a five-envoy local fleet: the bytes a one-commit
 * push puts on the wire to each peer (thin bundle) against a full bundle of
 * a 200+ MiB repository, and the time from `git push` until every envoy
 * shows the new tip.
 *
 * @module
 */

import { fleetDown, fleetUp } from "../scripts/fleet.ts";
import { runCommand } from "../src/platform/process.ts";
import { fmt, type Section } from "./report.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const VIGO = `${REPO}/scripts/vigo`;
const FILES = 210;
/**
 * The same benchmark before pushes carried signed ref states (commit
 * 0fa80e7), for the side by side: body bytes and latency from that
 * commit's report; its headers were the pusher's one-link chain for the
 * handle `big` and the scope word, 926 B counted as here (name, value and
 * 4 bytes of framing each).
 */
const BEFORE_SIGNED = {
  commit: "0fa80e7",
  body: 447,
  headers: 926,
  visibleMs: 337,
};
const ENVOYS = 5;

async function must(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
  stdin = "",
) {
  const out = await runCommand(cmd, { args, env, clearEnv: true, cwd, stdin });
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")}: ${out.stderr}`);
  }
  return out.stdout.trim();
}

async function headOn(root: string, projectId: string): Promise<string> {
  const out = await runCommand("git", {
    args: [
      "-C",
      `${root}/var/lib/vigo/swarm/gitback/projects/${projectId}.git`,
      "rev-parse",
      "-q",
      "--verify",
      "refs/heads/main",
    ],
  });
  return out.stdout.trim();
}

/** Thin vs full bundle bytes, and push-to-visible time on all envoys. */
export async function benchReplication(): Promise<Section> {
  const base = await Deno.makeTempDir({ prefix: "vigo-bench-repl-" });
  const fleetDir = `${base}/fleet`;
  let started = false;
  try {
    const fleet = await fleetUp(fleetDir, {
      envoys: ENVOYS,
    });
    started = true;
    const [a, ...peers] = fleet.envoys;
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
    await must(VIGO, ["swarm", "puddle", "init"], env, undefined, "pw\npw\n");
    await must(VIGO, ["swarm", "puddle", "unlock"], env, undefined, "pw\n");
    const work = `${base}/work`;
    await must("git", ["init", "--quiet", "-b", "main", work], env);
    for (let i = 0; i < FILES; i++) {
      const data = new Uint8Array(1024 * 1024);
      for (let at = 0; at < data.length; at += 65536) {
        crypto.getRandomValues(data.subarray(at, at + 65536));
      }
      await Deno.writeFile(`${work}/blob-${i}.bin`, data);
      if (i % 21 === 20) {
        await must("git", ["add", "."], env, work);
        await must("git", ["commit", "--quiet", "-m", `batch ${i}`], env, work);
      }
    }
    const init = await must(
      VIGO,
      ["swarm", "gitback", "project", "init", "big", "--no-push"],
      env,
      work,
    );
    const url = /URL: +(\S+)/.exec(init)![1];
    const projectId = url.slice("gitback://".length, "gitback://".length + 64);
    await must("git", ["push", "--quiet", url, "main"], env, work);
    const first = await must("git", ["rev-parse", "HEAD"], env, work);
    for (let i = 0; i < 3000; i++) {
      const heads = await Promise.all(
        peers.map((p) => headOn(p.root, projectId)),
      );
      if (heads.every((h) => h === first)) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    // The full bundle a naive fan-out would send, for comparison.
    const fullFile = `${base}/full.bundle`;
    await must(
      "git",
      ["bundle", "create", "--quiet", fullFile, "--all"],
      env,
      work,
    );
    const fullBytes = (await Deno.stat(fullFile)).size;

    // A one-commit push, timed until every envoy shows it.
    await Deno.writeTextFile(`${work}/CHANGELOG`, "one more line\n");
    await must("git", ["add", "CHANGELOG"], env, work);
    await must("git", ["commit", "--quiet", "-m", "one commit"], env, work);
    const tip = await must("git", ["rev-parse", "HEAD"], env, work);
    const logBefore = (await Deno.readTextFile(a.log)).length;
    const start = performance.now();
    await must("git", ["push", "--quiet", url, "main"], env, work);
    let visibleMs = NaN;
    for (let i = 0; i < 6000; i++) {
      const heads = await Promise.all(
        peers.map((p) => headOn(p.root, projectId)),
      );
      if (heads.every((h) => h === tip)) {
        visibleMs = performance.now() - start;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 300));
    const delivered = (await Deno.readTextFile(a.log)).slice(logBefore).split(
      "\n",
    )
      .filter((l) => l.includes("fan-out delivered"));
    const thin = delivered.map((l) =>
      Number(/bytes=(\d+)/.exec(l)?.[1] ?? NaN)
    );
    const perPeer = Math.max(...thin);
    const headers = delivered.map((l) =>
      Number(/header_bytes=(\d+)/.exec(l)?.[1] ?? NaN)
    );
    const headersPerPeer = Math.max(...headers);
    const ratio = perPeer / fullBytes;
    return {
      title: "Replication",
      method:
        `A ${ENVOYS}-envoy local fleet (loopback, mutual TLS). A repository of ${FILES} incompressible 1 MiB files is pushed to envoy-a and fanned out; then a one-commit push. ` +
        `The reference is the full \`git bundle --all\` the seed's fan-out sends on every push. Bytes are the bundle bodies each peer received, from envoy-a's log.`,
      rows: [
        {
          what: `1-commit push, bytes per peer (${thin.length} peers, ${
            delivered.filter((l) => l.includes("bundle=thin")).length
          } thin)`,
          ours: `${perPeer} B`,
          reference: `${fmt(fullBytes / 1048576, 1)} MiB full bundle`,
          ratio: `${fmt(ratio * 100, 4)} %`,
          target: "≤ 1 %",
          met: ratio <= 0.01 ? "yes" : "no",
        },
        {
          what:
            "1-commit push, headers per peer (chain, signed ref state, binding, scope)",
          ours: `${headersPerPeer} B`,
          reference: `${BEFORE_SIGNED.headers} B (chain and scope)`,
          ratio: `${fmt(headersPerPeer / BEFORE_SIGNED.headers, 2)}×`,
          target: "reported",
          met: "—",
        },
        {
          what: `1-commit push, body and headers per peer`,
          ours: `${perPeer + headersPerPeer} B`,
          reference: `${
            BEFORE_SIGNED.body + BEFORE_SIGNED.headers
          } B before signed ref states (${BEFORE_SIGNED.commit})`,
          ratio: `${
            fmt(
              (perPeer + headersPerPeer) /
                (BEFORE_SIGNED.body + BEFORE_SIGNED.headers),
              2,
            )
          }×`,
          target: "reported",
          met: "—",
        },
        {
          what: `push → new tip visible on all ${ENVOYS} envoys`,
          ours: `${fmt(visibleMs, 0)} ms`,
          reference:
            `${BEFORE_SIGNED.visibleMs} ms before signed ref states (${BEFORE_SIGNED.commit})`,
          ratio: `${fmt(visibleMs / BEFORE_SIGNED.visibleMs, 2)}×`,
          target: "reported",
          met: "—",
        },
      ],
    };
  } finally {
    if (started) await fleetDown(fleetDir);
    await Deno.remove(base, { recursive: true });
  }
}
