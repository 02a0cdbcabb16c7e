/**
 * Puddle benchmarks: unwrapping against the native argon2 CLI, and the SIGN
 * round trip through the session helper against signing in-process.
 *
 * @module
 */

import {
  loadNativeArgon2,
  unwrapSeed,
  WASM_ARGON2,
  wrapSeed,
} from "../src/crypto/wrap.ts";
import { generateSeed } from "../src/crypto/ed25519.ts";
import { signWithContext } from "../src/crypto/signed.ts";
import { SessionClient } from "../src/puddle/session/client.ts";
import { runCommand } from "../src/platform/process.ts";
import { fmt, median, type Section, stats } from "./report.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const VIGO = `${REPO}/scripts/vigo`;
const RUNS = 7;

function hasArgon2(): boolean {
  try {
    return new Deno.Command("argon2", {
      args: ["-h"],
      stdout: "null",
      stderr: "null",
    }).outputSync().code !== 127;
  } catch {
    return false;
  }
}

async function timeNative(args: string[]): Promise<number> {
  const start = performance.now();
  await runCommand("argon2", { args, stdin: "benchmark passphrase" });
  return performance.now() - start;
}

async function run(env: Record<string, string>, args: string[], stdin = "") {
  const out = await runCommand(VIGO, { args, env, clearEnv: true, stdin });
  if (out.code !== 0) throw new Error(`vigo ${args.join(" ")}: ${out.stderr}`);
}

/** Unwrap (Argon2id 64 MiB, t=3, p=1) vs `argon2 -id -m 16 -t 3 -p 1`. */
export async function benchUnlock(): Promise<Section> {
  const passphrase = new TextEncoder().encode("benchmark passphrase");
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const wrapped = await wrapSeed(generateSeed(), passphrase, salt);
  (await unwrapSeed(wrapped, passphrase, salt)).fill(0); // warm-up: load the engine
  const ours: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    (await unwrapSeed(wrapped, passphrase, salt)).fill(0);
    ours.push(performance.now() - start);
  }
  // The fallback where the native addon cannot load, for comparison.
  const params = { memoryKiB: 65536, passes: 3, lanes: 1 };
  (await WASM_ARGON2.derive(passphrase, salt, params)).fill(0);
  const wasm: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    (await WASM_ARGON2.derive(passphrase, salt, params)).fill(0);
    wasm.push(performance.now() - start);
  }
  const engine = (await loadNativeArgon2())?.name ?? WASM_ARGON2.name;
  const rows: Section["rows"] = [];
  const ourMs = median(ours);
  if (hasArgon2()) {
    const saltText = "benchmarksalt123";
    await timeNative([
      saltText,
      "-id",
      "-t",
      "3",
      "-m",
      "16",
      "-p",
      "1",
      "-l",
      "32",
      "-r",
    ]);
    const native: number[] = [];
    const startup: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      native.push(
        await timeNative([
          saltText,
          "-id",
          "-t",
          "3",
          "-m",
          "16",
          "-p",
          "1",
          "-l",
          "32",
          "-r",
        ]),
      );
      startup.push(
        await timeNative([
          saltText,
          "-id",
          "-t",
          "1",
          "-m",
          "10",
          "-p",
          "1",
          "-l",
          "32",
          "-r",
        ]),
      );
    }
    const nativeMs = median(native);
    const ratio = ourMs / nativeMs;
    rows.push({
      what: `Argon2id 64 MiB, 3 passes, 1 lane (median of 7), ${engine}`,
      ours: `${fmt(ourMs, 0)} ms`,
      reference: `${fmt(nativeMs, 0)} ms (argon2 CLI; ${
        fmt(median(startup), 0)
      } ms of it is process start)`,
      ratio: `${fmt(ratio)}×`,
      target: "≤ 1.5×",
      met: ratio <= 1.5 ? "yes" : "no",
    });
    rows.push({
      what: `the same, ${WASM_ARGON2.name} (the fallback)`,
      ours: `${fmt(median(wasm), 0)} ms`,
      reference: `${fmt(nativeMs, 0)} ms (argon2 CLI)`,
      ratio: `${fmt(median(wasm) / nativeMs)}×`,
      target: "reported",
      met: "—",
    });
  } else {
    rows.push({
      what: "Argon2id 64 MiB, 3 passes, 1 lane",
      ours: `${fmt(ourMs, 0)} ms`,
      reference: "argon2 CLI not installed",
      ratio: "—",
      target: "≤ 1.5×",
      met: "—",
    });
  }

  // The whole `unlock` command, spawn to exit, helper start included.
  const base = await Deno.makeTempDir({ prefix: "vigo-bench-" });
  const env = benchEnv(base);
  try {
    await run(env, ["swarm", "puddle", "init"], "pw\npw\n");
    const cli: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      await run(env, ["swarm", "puddle", "unlock"], "pw\n");
      cli.push(performance.now() - start);
      await run(env, ["swarm", "puddle", "lock"]);
    }
    rows.push({
      what: "`vigo swarm puddle unlock`, end to end (median of 5)",
      ours: `${fmt(median(cli), 0)} ms`,
      reference: "—",
      ratio: "—",
      target: "reported",
      met: "—",
    });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
  return {
    title: "Unlock",
    method:
      "Our unwrap (Argon2id, then XChaCha20-Poly1305) in-process against the native `argon2` CLI with the same parameters, each timed 7 times after a warm-up; medians. The native time includes its process start, shown separately.",
    rows,
  };
}

function benchEnv(base: string): Record<string, string> {
  Deno.mkdirSync(`${base}/home`, { recursive: true });
  Deno.mkdirSync(`${base}/run`, { recursive: true, mode: 0o700 });
  return {
    HOME: `${base}/home`,
    XDG_RUNTIME_DIR: `${base}/run`,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    DENO_DIR: Deno.env.get("DENO_DIR") ??
      `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
  };
}

/** SIGN through the helper socket vs signing in-process. */
export async function benchSign(): Promise<Section> {
  const base = await Deno.makeTempDir({ prefix: "vigo-bench-" });
  const env = benchEnv(base);
  const payload = crypto.getRandomValues(new Uint8Array(100));
  const context = "vigo-swarm/v1/puddle-session-probe" as const;
  try {
    await run(env, ["swarm", "puddle", "init"], "pw\npw\n");
    await run(env, ["swarm", "puddle", "unlock"], "pw\n");
    const socket = `${env.XDG_RUNTIME_DIR}/vigo/puddle.sock`;

    const puddleDir = `${env.HOME}/.vigo-puddle`;
    const client = await SessionClient.connect(socket, { puddleDir });
    const persistent: number[] = [];
    try {
      for (let i = 0; i < 200; i++) await client.sign(context, payload);
      for (let i = 0; i < 2000; i++) {
        const start = performance.now();
        await client.sign(context, payload);
        persistent.push(performance.now() - start);
      }
    } finally {
      client.close();
    }
    const perConnection: number[] = [];
    for (let i = 0; i < 500; i++) {
      const start = performance.now();
      const c = await SessionClient.connect(socket, { puddleDir });
      await c.sign(context, payload);
      c.close();
      perConnection.push(performance.now() - start);
    }
    const seed = generateSeed();
    const count = 2000;
    const start = performance.now();
    for (let i = 0; i < count; i++) signWithContext(seed, context, payload);
    const inProcessPerSec = count / ((performance.now() - start) / 1000);
    seed.fill(0);

    const p = stats(persistent);
    const c = stats(perConnection);
    const helperPerSec = 1000 / p.mean;
    return {
      title: "SIGN through the session helper",
      method:
        "A real session helper started by `unlock`; 100-byte payloads. One persistent connection (2000 requests after 200 warm-up) and a new connection per request (500); in-process signing of the same payload as the reference.",
      rows: [
        {
          what: "round trip, persistent connection",
          ours: `p50 ${fmt(p.p50, 3)} ms, p99 ${fmt(p.p99, 3)} ms`,
          reference: "—",
          ratio: "—",
          target: "p50 ≤ 1 ms",
          met: p.p50 <= 1 ? "yes" : "no",
        },
        {
          what: "round trip, connection per request",
          ours: `p50 ${fmt(c.p50, 3)} ms, p99 ${fmt(c.p99, 3)} ms`,
          reference: "—",
          ratio: "—",
          target: "p50 ≤ 1 ms",
          met: c.p50 <= 1 ? "yes" : "no",
        },
        {
          what: "signatures per second",
          ours: `${fmt(helperPerSec, 0)}/s through the helper`,
          reference: `${fmt(inProcessPerSec, 0)}/s in-process`,
          ratio: `${fmt(inProcessPerSec / helperPerSec)}× slower`,
          target: "reported",
          met: "—",
        },
      ],
    };
  } finally {
    await run(env, ["swarm", "puddle", "lock"]).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
}
