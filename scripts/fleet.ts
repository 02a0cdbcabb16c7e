/**
 * A local fleet on one machine: a CA, N envoys each with its own VIGO_ROOT,
 * loopback address and user home, and their agents running in the
 * background. Used by hand through `scripts/fleet` and by the tests.
 *
 *   scripts/fleet up <dir> [--envoys N] [--first-address K] [--home USER=HOME …] [--server]
 *   scripts/fleet down <dir>
 *
 * With `--server` (or {@link FleetOptions.server}) a fleet server runs too,
 * on its own address after the envoys', and every agent checks in with it.
 *
 * `up` writes `<dir>/<envoy>.env`; `(. <dir>/envoy-a.env; scripts/vigo …)`
 * then acts on envoy A. `down` stops exactly the processes `up` started.
 *
 * Every agent runs with `managed_users: homes`: it acts only on the fleet's
 * user (at the envoy's home) and the users given with `--home` (or
 * {@link FleetOptions.homes}), never on the machine's other accounts or on
 * another fleet's users.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { stringify as toYaml } from "yaml";
import { createFleetCa, issueEnvoyCertificate } from "../src/ca/ca.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { writePolicies } from "../src/envoy/policy.ts";
import { writeFileAtomic, writeTextAtomic } from "../src/platform/fs.ts";
import { userByUid } from "../src/platform/users.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const VIGO = `${REPO}/scripts/vigo`;
/** The swarm port every envoy listens on. */
export const SWARM_PORT = 1531;

/** One envoy of a local fleet. */
export interface Envoy {
  name: string;
  address: string;
  root: string;
  home: string;
  runtime: string;
  /** Environment for CLI commands acting on this envoy. */
  env: Record<string, string>;
  agentPid?: number;
  log: string;
}

/** The fleet server of a local fleet. */
export interface FleetServer {
  name: string;
  address: string;
  root: string;
  /** Environment for `vigo server` and `vigo config publish` there. */
  env: Record<string, string>;
  /** Its web pages: `http://<address>:<webPort>/swarm/puddle`. */
  webPort: number;
  pid?: number;
  log: string;
}

/** What `up` records in `<dir>/fleet.json`. */
export interface Fleet {
  dir: string;
  user: string;
  envoys: Envoy[];
  server?: FleetServer;
}

/** Reactor periods short enough for tests to watch them work. */
const FAST_REACTORS = { sweep_s: 1, catchup_s: 2, gossip_s: 3, names_s: 5 };
/** The fleet server's check-in port and a local fleet's check-in period. */
export const FLEET_SERVER_PORT = 1533;
export const FLEET_CHECKIN_S = 2;
const FLEET_WEB_PORT = 8533;

function envoyName(index: number): string {
  return `envoy-${String.fromCharCode(97 + index)}`;
}

function addressFree(address: string): boolean {
  try {
    const listener = Deno.listen({ hostname: address, port: SWARM_PORT });
    listener.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * `count` consecutive loopback addresses, 127.A.B.2 onwards, with the swarm
 * port free on each, in a block picked at random among 25 600.
 */
export function freeLoopbackBlock(count: number): string[] {
  for (let attempt = 0; attempt < 50; attempt++) {
    const a = 100 + Math.floor(Math.random() * 100);
    const b = Math.floor(Math.random() * 256);
    const block = Array.from(
      { length: count },
      (_, i) => `127.${a}.${b}.${2 + i}`,
    );
    if (block.every(addressFree)) return block;
  }
  throw new Error(`no block of ${count} free loopback addresses found.`);
}

/** Options for {@link fleetUp}. */
export interface FleetOptions {
  envoys: number;
  /**
   * Envoy i listens on 127.0.0.(firstAddress + i). Without it, on
   * 127.A.B.(2 + i) for a random free block, so that fleets of tests that
   * run side by side (two suites on one machine) do not meet.
   */
  firstAddress?: number;
  /** Start the agents (default true). */
  start?: boolean;
  /**
   * Further users each envoy's agent acts on, name → home, written into
   * agent.yaml's `homes:` beside the fleet's own user (which cannot be
   * overridden here). A function gives each envoy its own map. Agents act
   * on no one else (`managed_users: homes`), so a test that uses real Unix
   * users creates them first and lists them here.
   */
  homes?:
    | Record<string, string>
    | ((envoy: Envoy) => Record<string, string>);
  /** Run a fleet server too, and have every agent check in with it. */
  server?: boolean;
}

function envFile(envoy: { env: Record<string, string> }): string {
  return Object.entries(envoy.env)
    .filter(([key]) => key !== "PATH")
    .map(([key, value]) => `export ${key}=${JSON.stringify(value)}`)
    .join("\n") + "\n";
}

/** Issues `name`'s certificate for `address` and writes the TLS files to `etc`. */
async function enrol(
  etc: string,
  ca: { keyPem: string; certPem: string },
  name: string,
  address: string,
): Promise<void> {
  const cert = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: name,
    ips: [address],
  });
  writeTextAtomic(`${etc}/ca.crt`, ca.certPem, 0o644);
  writeTextAtomic(`${etc}/tls.crt`, cert.certPem, 0o644);
  writeFileAtomic(
    `${etc}/tls.key`,
    new TextEncoder().encode(cert.keyPem),
    0o600,
  );
}

/** Builds a fleet under `dir` and (by default) starts its agents. */
export async function fleetUp(
  dir: string,
  options: FleetOptions,
): Promise<Fleet> {
  if (options.envoys < 1 || options.envoys > 26) {
    throw new Error("a local fleet has between 1 and 26 envoys.");
  }
  const count = options.envoys + (options.server ? 1 : 0);
  const addresses = options.firstAddress === undefined
    ? freeLoopbackBlock(count)
    : Array.from(
      { length: count },
      (_, i) => `127.0.0.${options.firstAddress! + i}`,
    );
  await Deno.mkdir(dir, { recursive: true });
  dir = await Deno.realPath(dir);
  const user = userByUid(Deno.uid() ?? 0)?.name ?? "root";
  const envoys: Envoy[] = [];
  for (let i = 0; i < options.envoys; i++) {
    const name = envoyName(i);
    const address = addresses[i];
    if (!addressFree(address)) {
      throw new Error(
        `${address}:${SWARM_PORT} is in use; stop what holds it or pass --first-address.`,
      );
    }
    const base = `${dir}/${name}`;
    const envoy: Envoy = {
      name,
      address,
      root: `${base}/root`,
      home: `${base}/home/${user}`,
      runtime: `${base}/run`,
      log: `${base}/agent.log`,
      env: {},
    };
    envoy.env = {
      VIGO_ROOT: envoy.root,
      HOME: envoy.home,
      XDG_RUNTIME_DIR: envoy.runtime,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ??
        `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
    };
    envoys.push(envoy);
  }

  const ca = await createFleetCa({
    // A CA name is at most 64 characters: name the fleet by its directory.
    commonName: `vigo local fleet CA (${
      dir.replace(/\/+$/, "").split("/").pop()!.slice(-32)
    })`,
  });
  const hosts = Object.fromEntries(envoys.map((e) => [e.name, e.address]));
  let server: FleetServer | undefined;
  if (options.server) {
    const base = `${dir}/fleet-server`;
    server = {
      name: "fleet-server",
      address: addresses[options.envoys],
      root: `${base}/root`,
      env: {},
      webPort: FLEET_WEB_PORT,
      log: `${base}/server.log`,
    };
    server.env = {
      VIGO_ROOT: server.root,
      HOME: `${base}/home`,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: Deno.env.get("DENO_DIR") ??
        `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
    };
    hosts[server.name] = server.address;
  }
  for (const envoy of envoys) {
    const etc = `${envoy.root}/etc/vigo`;
    await Deno.mkdir(etc, { recursive: true });
    await Deno.mkdir(envoy.home, { recursive: true });
    await Deno.mkdir(envoy.runtime, { recursive: true, mode: 0o700 });
    Deno.chmodSync(envoy.runtime, 0o700);
    await enrol(etc, ca, envoy.name, envoy.address);
    const extra = typeof options.homes === "function"
      ? options.homes(envoy)
      : options.homes ?? {};
    if (Object.hasOwn(extra, user)) {
      throw new Error(
        `${user} is the fleet's own user; its home on ${envoy.name} is ${envoy.home}.`,
      );
    }
    for (const [name, home] of Object.entries(extra)) {
      if (!home.startsWith("/")) {
        throw new Error(
          `the home of ${name} must be an absolute path, not ${
            JSON.stringify(home)
          }.`,
        );
      }
    }
    writeTextAtomic(
      `${etc}/agent.yaml`,
      toYaml({
        hostname: envoy.name,
        listen: envoy.address,
        port: SWARM_PORT,
        hosts,
        swarm: { gitback: { enabled: ["*"] } },
        // Only the users named here: never the machine's, never another
        // fleet's (see docs/operations.md).
        managed_users: "homes",
        homes: { [user]: envoy.home, ...extra },
        reactors: server
          ? { ...FAST_REACTORS, checkin_s: FLEET_CHECKIN_S }
          : FAST_REACTORS,
        announce: { period_s: 1, stale_s: 10 },
        ...(server
          ? { server: { host: server.name, port: FLEET_SERVER_PORT } }
          : {}),
      }),
      0o644,
    );
    writePolicies(
      systemPathsUnder(envoy.root),
      [{ user, home: envoy.home, puddle: true, gitback: true }],
      "scripts/fleet",
    );
    writeTextAtomic(`${dir}/${envoy.name}.env`, envFile(envoy), 0o644);
  }
  if (server) {
    const etc = `${server.root}/etc/vigo`;
    await Deno.mkdir(etc, { recursive: true });
    await Deno.mkdir(server.env.HOME, { recursive: true });
    await enrol(etc, ca, server.name, server.address);
    writeTextAtomic(
      `${etc}/server.yaml`,
      toYaml({
        hostname: server.name,
        listen: server.address,
        port: FLEET_SERVER_PORT,
        web: { listen: server.address, port: server.webPort },
        checkin_s: FLEET_CHECKIN_S,
      }),
      0o644,
    );
    writeTextAtomic(`${dir}/${server.name}.env`, envFile(server), 0o644);
  }
  // The CA key is not needed after enrolment; keep it for adding envoys.
  writeFileAtomic(`${dir}/ca.key`, new TextEncoder().encode(ca.keyPem), 0o600);
  writeTextAtomic(`${dir}/ca.crt`, ca.certPem, 0o644);

  const fleet: Fleet = { dir, user, envoys, server };
  saveFleet(fleet);
  if (options.start !== false) {
    if (server) await startServer(fleet);
    for (const envoy of envoys) await startAgent(fleet, envoy);
  }
  return fleet;
}

function saveFleet(fleet: Fleet): void {
  writeTextAtomic(
    `${fleet.dir}/fleet.json`,
    JSON.stringify(fleet, null, 2) + "\n",
    0o644,
  );
}

/** Reads the fleet that `up` recorded in `dir`. */
export function loadFleet(dir: string): Fleet {
  return JSON.parse(Deno.readTextFileSync(`${dir}/fleet.json`)) as Fleet;
}

/**
 * Starts `vigo <daemon>` detached, its output appended to `log`; returns
 * its pid (the shell execs it, so the pid is the daemon's).
 */
function spawnDaemon(
  daemon: "agent" | "server",
  env: Record<string, string>,
  log: string,
): number {
  const child = new Deno.Command("sh", {
    args: ["-c", `exec "$0" ${daemon} >>"$1" 2>&1`, VIGO, log],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  child.unref();
  return child.pid;
}

/** Starts one envoy's agent in the background and waits until it answers. */
export async function startAgent(fleet: Fleet, envoy: Envoy): Promise<void> {
  envoy.agentPid = spawnDaemon("agent", envoy.env, envoy.log);
  saveFleet(fleet);
  await waitForAgent(envoy);
}

/**
 * Starts the fleet's server in the background and waits until its web
 * pages answer (they come up after the check-in port).
 */
export async function startServer(fleet: Fleet): Promise<void> {
  const server = fleet.server;
  if (!server) throw new Error("this fleet has no server.");
  server.pid = spawnDaemon("server", server.env, server.log);
  saveFleet(fleet);
  const url = `http://${server.address}:${server.webPort}/swarm/puddle.json`;
  await waitForDaemon("the fleet server", server.pid, server.log, async () => {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status;
  });
}

/** Polls the agent's health route until it answers over mutual TLS. */
export async function waitForAgent(
  envoy: Envoy,
  timeoutMs = 30_000,
): Promise<void> {
  const etc = `${envoy.root}/etc/vigo`;
  const tls = {
    caPem: Deno.readTextFileSync(`${etc}/ca.crt`),
    certPem: Deno.readTextFileSync(`${etc}/tls.crt`),
    keyPem: Deno.readTextFileSync(`${etc}/tls.key`),
  };
  await waitForDaemon(
    `the agent of ${envoy.name}`,
    envoy.agentPid,
    envoy.log,
    async () =>
      (await swarmRequest(
        tls,
        `https://${envoy.address}:${SWARM_PORT}/swarm/health`,
        { timeoutMs: 2_000 },
      )).status,
    timeoutMs,
  );
}

/**
 * Polls `probe` (an HTTP status) until it answers 200; fails at once when
 * the daemon at `pid` exited, and after `timeoutMs` otherwise, naming its
 * log.
 */
async function waitForDaemon(
  what: string,
  pid: number | undefined,
  log: string,
  probe: () => Promise<number>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (pid && !alive(pid)) throw new Error(`${what} exited; see ${log}.`);
    try {
      const status = await probe();
      if (status === 200) return;
      lastError = `HTTP ${status}`;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer (${lastError}); see ${log}.`);
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function stopPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && alive(pid); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (alive(pid)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Stops one envoy's agent. */
export async function stopAgent(fleet: Fleet, envoy: Envoy): Promise<void> {
  if (envoy.agentPid) await stopPid(envoy.agentPid);
  envoy.agentPid = undefined;
  saveFleet(fleet);
}

/**
 * Stops exactly what `up` started: each agent, and any session helper a
 * user unlocked inside the fleet's homes.
 */
export async function fleetDown(dir: string): Promise<void> {
  const fleet = loadFleet(dir);
  for (const envoy of fleet.envoys) {
    if (envoy.agentPid) await stopPid(envoy.agentPid);
    try {
      const pid = Number(
        Deno.readTextFileSync(`${envoy.home}/.vigo-puddle/session.unlocked`)
          .trim(),
      );
      if (pid > 0) await stopPid(pid);
    } catch {
      // No session helper.
    }
    envoy.agentPid = undefined;
  }
  if (fleet.server?.pid) await stopPid(fleet.server.pid);
  if (fleet.server) fleet.server.pid = undefined;
  saveFleet(fleet);
}

async function main(args: string[]): Promise<number> {
  const usage =
    "usage: scripts/fleet up <dir> [--envoys N] [--first-address K] [--home USER=HOME …] [--server] | down <dir>";
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      envoys: { type: "string" },
      "first-address": { type: "string" },
      home: { type: "string", multiple: true },
      server: { type: "boolean" },
    },
  });
  const [verb, dir] = positionals;
  if (!dir || (verb !== "up" && verb !== "down")) {
    console.error(usage);
    return 2;
  }
  if (verb === "down") {
    await fleetDown(dir);
    console.log(`fleet in ${dir} stopped`);
    return 0;
  }
  const homes: Record<string, string> = {};
  for (const pair of values.home ?? []) {
    const at = pair.indexOf("=");
    if (at < 1) {
      console.error(`--home takes USER=HOME, not ${JSON.stringify(pair)}`);
      console.error(usage);
      return 2;
    }
    homes[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const fleet = await fleetUp(dir, {
    envoys: Number(values.envoys ?? 3),
    homes,
    firstAddress: values["first-address"]
      ? Number(values["first-address"])
      : undefined,
    server: values.server === true,
  });
  for (const envoy of fleet.envoys) {
    console.log(
      `${envoy.name}  ${envoy.address}:${SWARM_PORT}  agent pid ${envoy.agentPid}  env ${fleet.dir}/${envoy.name}.env`,
    );
  }
  if (fleet.server) {
    console.log(
      `${fleet.server.name}  ${fleet.server.address}:${FLEET_SERVER_PORT}  server pid ${fleet.server.pid}  web http://${fleet.server.address}:${fleet.server.webPort}/swarm/puddle`,
    );
  }
  console.log(
    `act on an envoy:  (. ${fleet.dir}/envoy-a.env; scripts/vigo swarm puddle status)`,
  );
  console.log(`stop the fleet:   scripts/fleet down ${fleet.dir}`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
