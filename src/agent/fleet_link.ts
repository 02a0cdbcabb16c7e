/**
 * The agent's side of the fleet server (agent.yaml `server:`): it checks
 * in with this envoy's traits every `reactors.checkin_s`, converges the
 * usercrate policy to the one the server publishes, and refreshes the name
 * map every `reactors.names_s`.
 *
 * Every exchange is mutual TLS with this envoy's certificate, to the
 * address `hosts:` gives the server's name, after a handshake has shown
 * that the certificate there was issued by the fleet CA for that very name
 * (a `fetch` checks a certificate only against the address). Nothing the
 * server sends is applied unless it parses strictly: a policy must also
 * carry the digest the check-in announced. A server that is down or
 * answers wrongly costs a WARN per distinct error, never the agent.
 *
 * `<varLib>/fleet-policy.json` (0644) records the policy last applied
 * from the server: `{"digest","published_at","applied_at","users":[names]}`.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import type { Logger } from "../platform/log.ts";
import {
  readFileBounded,
  writeFileAtomic,
  writeTextAtomic,
} from "../platform/fs.ts";
import { addressOf, type AgentConfig } from "../envoy/config.ts";
import {
  MAX_PUBLISHED_POLICY_BYTES,
  parsePublishedPolicy,
  policyUsers,
  readPolicy,
  removePolicy,
  writePolicies,
} from "../envoy/policy.ts";
import {
  readSwarmTls,
  swarmRequest,
  type SwarmResponse,
  type SwarmTls,
} from "../swarm/swarm_client.ts";
import { startReactor } from "../swarm/reactor.ts";
import {
  connectToHost,
  HostCertificateError,
} from "../swarm/host_certificate.ts";
import {
  MAX_NAME_MAP_BYTES,
  nameMapPath,
  parseNameMap,
} from "../puddle/names.ts";
import { collectTraits } from "./traits_collect.ts";

/** Deadline of one exchange with the fleet server. */
export const FLEET_TIMEOUT_MS = 10_000;
/** Largest check-in answer read. */
export const MAX_CHECKIN_ANSWER_BYTES = 64 * 1024;
/** What a policy applied from the fleet server records as its `source`. */
export const FLEET_SOURCE_PREFIX = "fleet server";
/** Largest fleet-policy.json read (4096 user names fit). */
const MAX_RECORD_BYTES = 1024 * 1024;
/** Longest error text of the server's repeated in a log line. */
const MAX_ERROR_CHARS = 300;
const DIGEST = /^[0-9a-f]{64}$/;
const RESULTS = ["recorded", "repeated", "out-of-order"] as const;

/** The server's answer to a check-in, and what this envoy did about it. */
export interface CheckInOutcome {
  result: typeof RESULTS[number];
  /** The check-in period the server judges staleness by, seconds. */
  checkinSeconds: number;
  /** The digest of the published policy, or null when none is published. */
  policy: string | null;
  /**
   * `none`: nothing published; `current`: already applied; `converged`:
   * applied now; `refused`: the policy served was refused (`policyError`).
   */
  policyAction: "none" | "current" | "converged" | "refused";
  /** Why the policy was refused. */
  policyError?: string;
}

/** What fleet-policy.json holds. */
export interface FleetPolicyRecord {
  digest: string;
  published_at: string;
  applied_at: string;
  /** The users the policy listed, by name. */
  users: string[];
}

/** Where the policy last applied from the fleet server is recorded. */
export function fleetPolicyPath(paths: SystemPaths): string {
  return `${paths.varLib}/fleet-policy.json`;
}

/** The record of the policy last applied from the server; null when none. */
export function readFleetPolicyRecord(
  paths: SystemPaths,
): FleetPolicyRecord | null {
  try {
    const value = JSON.parse(
      new TextDecoder().decode(
        readFileBounded(fleetPolicyPath(paths), MAX_RECORD_BYTES),
      ),
    ) as Partial<FleetPolicyRecord> | null;
    if (
      typeof value?.digest !== "string" || !DIGEST.test(value.digest) ||
      !Array.isArray(value.users)
    ) return null;
    return {
      digest: value.digest,
      published_at: String(value.published_at ?? ""),
      applied_at: String(value.applied_at ?? ""),
      users: value.users.filter((u): u is string => typeof u === "string"),
    };
  } catch {
    return null;
  }
}

function serverOf(config: AgentConfig): { host: string; port: number } {
  if (!config.server) {
    throw new Error(
      "agent.yaml names no fleet server; add `server: {host: <name>}` and its address under `hosts:`.",
    );
  }
  return config.server;
}

function fleetUrl(config: AgentConfig, path: string): string {
  const { host, port } = serverOf(config);
  const address = addressOf(config, host);
  return `https://${
    address.includes(":") ? `[${address}]` : address
  }:${port}${path}`;
}

/**
 * Resolves once the listener at the server's address has shown a fleet CA
 * certificate issued for the server's name (DNS name and CN), in a
 * handshake that presents this envoy's own; rejects with the reason.
 */
async function confirmServerCertificate(
  config: AgentConfig,
  material: SwarmTls,
): Promise<void> {
  const { host, port } = serverOf(config);
  const address = addressOf(config, host);
  try {
    (await connectToHost(material, host, address, port, FLEET_TIMEOUT_MS))
      .destroy();
  } catch (error) {
    const reason = (error as Error).message;
    throw new Error(
      error instanceof HostCertificateError && error.wrongHost
        ? `the certificate at ${address}:${port} is not for the fleet server ${host} (${reason}); check \`server:\` and \`hosts:\` in agent.yaml.`
        : `the fleet server ${host} is unreachable at ${address}:${port} (${reason}).`,
    );
  }
}

/** The error text a refusal from the server carries, shortened for a log. */
function refusalText(response: SwarmResponse): string {
  let text = "";
  try {
    const error = (response.json() as { error?: unknown } | null)?.error;
    if (typeof error === "string") text = error;
  } catch {
    // Not JSON: the status says enough.
  }
  return text.length > MAX_ERROR_CHARS
    ? `${text.slice(0, MAX_ERROR_CHARS)}…`
    : text;
}

async function fleetRequest(
  config: AgentConfig,
  material: SwarmTls,
  path: string,
  init: {
    method?: string;
    body?: Uint8Array;
    headers?: Record<string, string>;
    maxResponseBytes: number;
  },
): Promise<SwarmResponse> {
  const { host } = serverOf(config);
  const response = await swarmRequest(material, fleetUrl(config, path), {
    ...init,
    timeoutMs: FLEET_TIMEOUT_MS,
    peer: host,
  });
  if (response.status !== 200) {
    const text = refusalText(response);
    throw new Error(
      `the fleet server ${host} answered ${
        init.method ?? "GET"
      } ${path} with HTTP ${response.status}${
        text ? `: ${text.replace(/\.$/, "")}` : ""
      }.`,
    );
  }
  return response;
}

function parseAnswer(host: string, response: SwarmResponse) {
  let value: unknown;
  try {
    value = response.json();
  } catch {
    value = null;
  }
  const answer = value as {
    result?: unknown;
    checkin_s?: unknown;
    policy?: unknown;
  } | null;
  if (
    typeof answer !== "object" || answer === null ||
    !RESULTS.includes(answer.result as typeof RESULTS[number]) ||
    typeof answer.checkin_s !== "number" || !(answer.checkin_s > 0) ||
    !(answer.policy === null ||
      (typeof answer.policy === "string" && DIGEST.test(answer.policy)))
  ) {
    throw new Error(
      `the fleet server ${host} answered the check-in with something other than {"result","checkin_s","policy"}.`,
    );
  }
  return {
    result: answer.result as typeof RESULTS[number],
    checkinSeconds: answer.checkin_s,
    policy: answer.policy as string | null,
  };
}

/**
 * Applies the published policy whose digest the check-in announced, unless
 * it is the one recorded as applied: fetched, parsed strictly, its digest
 * the announced one; then every user it lists gets their policy file, the
 * files an earlier fleet policy wrote for users it no longer lists are
 * removed (files from `vigo config apply` are left alone), and the digest
 * is recorded. Throws, having applied nothing, when the policy is refused.
 */
async function convergePolicy(
  config: AgentConfig,
  log: Logger,
  material: SwarmTls,
  digest: string,
): Promise<"current" | "converged"> {
  const { paths } = config;
  if (readFleetPolicyRecord(paths)?.digest === digest) return "current";
  const { host } = serverOf(config);
  const response = await fleetRequest(config, material, "/fleet/policy", {
    maxResponseBytes: MAX_PUBLISHED_POLICY_BYTES,
  });
  const policy = parsePublishedPolicy(response.body);
  if (policy.digest !== digest) {
    throw new Error(
      `the fleet server ${host} announced policy ${digest} but served ${policy.digest}; nothing was applied.`,
    );
  }
  const source = `${FLEET_SOURCE_PREFIX} ${host}`;
  writePolicies(paths, policy.users, source);
  const listed = new Set(policy.users.map((u) => u.user));
  let removed = 0;
  for (const user of policyUsers(paths)) {
    if (listed.has(user)) continue;
    if (!readPolicy(paths, user)?.source.startsWith(FLEET_SOURCE_PREFIX)) {
      continue;
    }
    if (removePolicy(paths, user)) removed++;
  }
  const record: FleetPolicyRecord = {
    digest: policy.digest,
    published_at: policy.published_at,
    applied_at: new Date().toISOString(),
    users: policy.users.map((u) => u.user),
  };
  Deno.mkdirSync(paths.varLib, { recursive: true, mode: 0o755 });
  writeTextAtomic(
    fleetPolicyPath(paths),
    JSON.stringify(record, null, 2) + "\n",
    0o644,
  );
  log.info("policy converged", {
    server: host,
    digest: policy.digest,
    users: policy.users.length,
    removed,
  });
  return "converged";
}

/**
 * One check-in: `POST /fleet/checkin` with this envoy's traits
 * (agent/traits_collect.ts), then, when the answer announces a policy
 * other than the one applied, its convergence. Rejects with a sentence
 * when the server cannot be reached, refuses the check-in or answers
 * something else; a refused policy is reported in the outcome instead
 * (the check-in itself went through).
 */
export async function checkInOnce(
  config: AgentConfig,
  log: Logger,
  material: SwarmTls,
): Promise<CheckInOutcome> {
  const { host } = serverOf(config);
  await confirmServerCertificate(config, material);
  const traits = await collectTraits(config, Math.floor(Date.now() / 1000));
  const response = await fleetRequest(config, material, "/fleet/checkin", {
    method: "POST",
    body: new TextEncoder().encode(JSON.stringify(traits)),
    headers: { "content-type": "application/json" },
    maxResponseBytes: MAX_CHECKIN_ANSWER_BYTES,
  });
  const answer = parseAnswer(host, response);
  if (answer.policy === null) return { ...answer, policyAction: "none" };
  try {
    const action = await convergePolicy(config, log, material, answer.policy);
    return { ...answer, policyAction: action };
  } catch (error) {
    return {
      ...answer,
      policyAction: "refused",
      policyError: (error as Error).message,
    };
  }
}

/** Makes `dir` exist and lets every user into it (names.json is public). */
function ensurePublicDir(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const info = Deno.statSync(dir);
  // A private parent made by a recursive mkdir elsewhere (the bindings
  // directory below it is 0700) would hide the map from its readers.
  if (((info.mode ?? 0) & 0o055) !== 0o055) Deno.chmodSync(dir, 0o755);
}

/**
 * Fetches the name map (`GET /fleet/names`), parses it strictly and, when
 * it differs from the one held, writes the very bytes received to
 * `names.json` (0644). Returns how many names it holds. Rejects, leaving
 * the file held as it is, when the map cannot be fetched or is malformed.
 */
export async function refreshNamesOnce(
  config: AgentConfig,
  log: Logger,
  material: SwarmTls,
): Promise<number> {
  const { host } = serverOf(config);
  await confirmServerCertificate(config, material);
  const response = await fleetRequest(config, material, "/fleet/names", {
    maxResponseBytes: MAX_NAME_MAP_BYTES,
  });
  let map;
  try {
    map = parseNameMap(response.body);
  } catch (error) {
    throw new Error(
      `the fleet server ${host} sent a name map that was refused: ${
        (error as Error).message
      }`,
    );
  }
  const path = nameMapPath(config.paths.varLib);
  const dir = path.slice(0, path.lastIndexOf("/"));
  ensurePublicDir(dir.slice(0, dir.lastIndexOf("/")));
  ensurePublicDir(dir);
  let held: Uint8Array | null = null;
  try {
    held = readFileBounded(path, MAX_NAME_MAP_BYTES);
  } catch {
    // None yet.
  }
  const same = held !== null && held.length === response.body.length &&
    held.every((byte, i) => byte === response.body[i]);
  if (!same) {
    writeFileAtomic(path, response.body, 0o644);
    log.info("name map updated", { server: host, names: map.size });
  }
  return map.size;
}

/**
 * Warns about each distinct failure once, until a success; then says the
 * trouble is over.
 */
class Troubles {
  #seen = new Set<string>();
  constructor(
    private log: Logger,
    private what: string,
    private host: string,
  ) {}

  failed(error: unknown): void {
    const message = (error as Error).message;
    if (this.#seen.has(message)) return;
    if (this.#seen.size >= 16) this.#seen.clear();
    this.#seen.add(message);
    this.log.warn(`${this.what} failed`, { server: this.host, error: message });
  }

  succeeded(): void {
    if (this.#seen.size === 0) return;
    this.#seen.clear();
    this.log.info(`${this.what} works again`, { server: this.host });
  }
}

/** Runs `work` now and every `seconds`, never two at once, never throwing. */
function repeat(
  name: string,
  seconds: number,
  log: Logger,
  work: () => Promise<void>,
): { stop(): void } {
  let running = false;
  const once = async () => {
    if (running) return;
    running = true;
    try {
      await work();
    } catch (error) {
      log.error(`${name} failed`, { error: (error as Error).message });
    } finally {
      running = false;
    }
  };
  once();
  return startReactor(name, seconds, log, once);
}

/**
 * Starts the check-in and name-map reactors when agent.yaml names a fleet
 * server (`server:`), each running once at once and then every
 * `reactors.checkin_s` and `reactors.names_s`; does nothing otherwise.
 */
export function startFleetLink(
  config: AgentConfig,
  log: Logger,
): { stop(): void } {
  if (!config.server) return { stop() {} };
  const { host } = config.server;
  const checkIns = new Troubles(log, "fleet check-in", host);
  const policies = new Troubles(log, "fleet policy", host);
  const names = new Troubles(log, "fleet name map", host);
  const periods = new Set<number>();
  const checkIn = repeat(
    "fleet check-in",
    config.reactors.checkinSeconds,
    log,
    async () => {
      let outcome: CheckInOutcome;
      try {
        outcome = await checkInOnce(config, log, readSwarmTls(config));
      } catch (error) {
        checkIns.failed(error);
        return;
      }
      checkIns.succeeded();
      if (
        outcome.checkinSeconds !== config.reactors.checkinSeconds &&
        !periods.has(outcome.checkinSeconds)
      ) {
        periods.add(outcome.checkinSeconds);
        log.warn("fleet server expects another check-in period", {
          server: host,
          server_checkin_s: outcome.checkinSeconds,
          checkin_s: config.reactors.checkinSeconds,
        });
      }
      if (outcome.policyAction === "refused") {
        policies.failed(new Error(outcome.policyError));
      } else if (outcome.policyAction !== "none") {
        policies.succeeded();
      }
    },
  );
  const refresh = repeat(
    "fleet name map",
    config.reactors.namesSeconds,
    log,
    async () => {
      try {
        await refreshNamesOnce(config, log, readSwarmTls(config));
        names.succeeded();
      } catch (error) {
        names.failed(error);
      }
    },
  );
  log.info("fleet link started", {
    server: host,
    address: `${addressOf(config, host)}:${config.server.port}`,
  });
  return {
    stop() {
      checkIn.stop();
      refresh.stop();
    },
  };
}
