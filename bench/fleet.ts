/**
 * Fleet server benchmarks at the scale of 1,000 envoys with 5 users each:
 * check-ins per second over real mutual TLS (every envoy with its own
 * certificate from a real fleet CA, each check-in a new connection) against
 * the rate that fleet needs at the default period, the server's own work
 * per check-in (parse, verify claims, record), and the time to build the
 * Puddles and Gitback pages at that size.
 *
 * @module
 */

import { createFleetCa, issueEnvoyCertificate } from "../src/ca/ca.ts";
import { startSwarmServer } from "../src/swarm/swarm_server.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { openFleetStore } from "../src/fleet/store.ts";
import { fleetRoutes } from "../src/fleet/routes.ts";
import { storeWebSource } from "../src/fleet/server.ts";
import { parseTraits, type Traits } from "../src/swarm/traits.ts";
import {
  renderGitbackPage,
  renderPuddlesPage,
} from "../src/fleet/web/pages.ts";
import { signNameClaim } from "../src/puddle/names.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { seedSigner, type Signer } from "../src/crypto/signed_object.ts";
import { toHex } from "../src/crypto/hex.ts";
import { boundedAll } from "../src/swarm/peer_work.ts";
import type { Logger } from "../src/platform/log.ts";
import { fmt, median, type Section } from "./report.ts";

const ENVOYS = 1000;
const USERS = 5;
/** Envoys that carry each puddle (so 1,000 × 5 copies are 500 puddles). */
const COPIES = 10;
const PROJECTS_PER_USER = 2;
const CLIENT_CONCURRENCY = 16;
const DEFAULT_CHECKIN_S = 60;
const quiet: Logger = { info() {}, warn() {}, error() {} };

function randomHex(bytes: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The puddles of the simulated fleet: user u's puddle number p. */
function puddleSigners(copies: number): Signer[] {
  return Array.from(
    { length: (ENVOYS / copies) * USERS },
    () => seedSigner(generateSeed()),
  );
}

async function traitsOf(
  envoy: number,
  at: number,
  puddles: Signer[],
  claims: Map<Signer, unknown>,
  copies = COPIES,
): Promise<Traits> {
  const group = Math.floor(envoy / copies);
  const users = [];
  for (let u = 0; u < USERS; u++) {
    const signer = puddles[group * USERS + u];
    const key = formatPublicKey(signer.publicKey);
    if (!claims.has(signer)) {
      claims.set(signer, await signNameClaim(signer, `user-${group}-${u}`, 1));
    }
    users.push({
      // One Unix user per puddle: the same person on every envoy of a group.
      user: `u${group}-${u}`,
      puddle: {
        pubkey: key,
        wrapped_sha256: "a".repeat(64),
        unlocked: u % 2 === 0,
        name_claim: claims.get(signer) as never,
        pair_pending: false,
        rekey_pending: false,
        retired: [],
      },
      gitback: {
        projects: Array.from({ length: PROJECTS_PER_USER }, (_, p) => ({
          project_id: toHex(
            new TextEncoder().encode(`${group}-${u}-${p}`.padEnd(32, ".")),
          ),
          handle: `project-${p}`,
          scope: "swarm-wide" as const,
          heads: { "refs/heads/main": randomHex(20) },
          repo_bytes: 1 << 20,
          revokes: 0,
          leaves: 0,
          delegations: 0,
          tombstoned: false,
          signed_seq: 1,
          members: [key],
        })),
      },
    });
  }
  return { v: 1, envoy: `envoy-${envoy}`, at, users };
}

/** The results of {@link boundedAll}, or its first error thrown. */
function settled<R>(results: (R | Error)[]): R[] {
  const failed = results.find((r) => r instanceof Error);
  if (failed) throw failed;
  return results as R[];
}

/** Runs the fleet benchmarks. */
export async function benchFleet(): Promise<Section> {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-bench-fleet-" });
  try {
    const ca = await createFleetCa({ commonName: "vigo bench fleet CA" });
    const server = await issueEnvoyCertificate({
      caKeyPem: ca.keyPem,
      caCertPem: ca.certPem,
      hostname: "fleet-server",
      ips: ["127.0.0.1"],
    });
    console.error(`bench: fleet: issuing ${ENVOYS} envoy certificates…`);
    const certs = settled(
      await boundedAll(
        Array.from({ length: ENVOYS }, (_, i) => i),
        8,
        (i) =>
          issueEnvoyCertificate({
            caKeyPem: ca.keyPem,
            caCertPem: ca.certPem,
            hostname: `envoy-${i}`,
          }),
      ),
    );
    const puddles = puddleSigners(COPIES);
    const claims = new Map<Signer, unknown>();
    const now = Math.floor(Date.now() / 1000);
    const documents: Uint8Array[] = [];
    for (let i = 0; i < ENVOYS; i++) {
      documents.push(
        new TextEncoder().encode(
          JSON.stringify(await traitsOf(i, now, puddles, claims)),
        ),
      );
    }

    // The server's own work per check-in, no network: parse (with the
    // claims' signatures) and record, into a fresh store.
    const direct = openFleetStore(`${dir}/direct.db`);
    const directStart = performance.now();
    for (let i = 0; i < ENVOYS; i++) {
      direct.recordCheckIn(
        parseTraits(documents[i], { certificateHost: `envoy-${i}` }),
        now,
      );
    }
    const directMs = performance.now() - directStart;
    direct.close();

    // The same over real mutual TLS: each envoy its own certificate and a
    // new connection per check-in, 16 in flight.
    const store = openFleetStore(`${dir}/fleet.db`);
    const listener = await startSwarmServer({
      listen: "127.0.0.1",
      port: 0,
      caPem: ca.certPem,
      certPem: server.certPem,
      keyPem: server.keyPem,
      routes: fleetRoutes({
        store,
        checkinSeconds: DEFAULT_CHECKIN_S,
        log: quiet,
      }),
      log: quiet,
    });
    let networkMs = 0;
    try {
      const url = `https://127.0.0.1:${listener.port}/fleet/checkin`;
      const start = performance.now();
      settled(
        await boundedAll(
          Array.from({ length: ENVOYS }, (_, i) => i),
          CLIENT_CONCURRENCY,
          async (i) => {
            const response = await swarmRequest(
              {
                caPem: ca.certPem,
                certPem: certs[i].certPem,
                keyPem: certs[i].keyPem,
              },
              url,
              { method: "POST", body: documents[i], timeoutMs: 60_000 },
            );
            if (response.status !== 200) {
              throw new Error(`check-in ${i}: HTTP ${response.status}`);
            }
          },
        ),
      );
      networkMs = performance.now() - start;
    } finally {
      await listener.close();
    }

    // The pages at that size, from the store the check-ins filled.
    const source = storeWebSource(store, { checkinSeconds: DEFAULT_CHECKIN_S });
    const puddleMs: number[] = [];
    const gitbackMs: number[] = [];
    let puddleRows = 0;
    let projectRows = 0;
    let puddleBytes = 0;
    for (let run = 0; run < 3; run++) {
      let start = performance.now();
      const rows = source.puddles(now);
      const html = renderPuddlesPage(rows, source.info(now));
      puddleMs.push(performance.now() - start);
      puddleRows = rows.length;
      puddleBytes = html.length;
      start = performance.now();
      const projects = source.gitback(now);
      renderGitbackPage(projects, source.info(now));
      gitbackMs.push(performance.now() - start);
      projectRows = projects.length;
    }
    store.close();

    // The worst case for the Puddles page: every user of every envoy a
    // puddle of their own.
    const wide = openFleetStore(`${dir}/wide.db`);
    const own = puddleSigners(1);
    const ownClaims = new Map<Signer, unknown>();
    for (let i = 0; i < ENVOYS; i++) {
      wide.recordCheckIn(await traitsOf(i, now, own, ownClaims, 1), now);
    }
    const wideSource = storeWebSource(wide, {
      checkinSeconds: DEFAULT_CHECKIN_S,
    });
    const wideMs: number[] = [];
    let wideRows = 0;
    for (let run = 0; run < 3; run++) {
      const start = performance.now();
      const rows = wideSource.puddles(now);
      renderPuddlesPage(rows, wideSource.info(now));
      wideMs.push(performance.now() - start);
      wideRows = rows.length;
    }
    wide.close();

    const needed = ENVOYS / DEFAULT_CHECKIN_S;
    const overTls = ENVOYS / (networkMs / 1000);
    const serverOnly = ENVOYS / (directMs / 1000);
    return {
      title: "Fleet server",
      method:
        `${ENVOYS} simulated envoys, ${USERS} users each (every user a puddle carried by ${COPIES} envoys, so ${puddleRows} puddles; ${PROJECTS_PER_USER} projects per user, ${projectRows} projects), one check-in each. Over mutual TLS every envoy presents its own certificate from a real fleet CA and opens a new connection, ${CLIENT_CONCURRENCY} in flight; clients and server share this machine's cores, so the figure is a lower bound. The reference is the rate such a fleet needs at the default period (${DEFAULT_CHECKIN_S} s): ${
          fmt(needed, 1)
        } check-ins/s. The server-only row is the first check-in of every envoy (a puddle's claim is verified on the first envoy that reports it and remembered, as the server does); the mutual-TLS row follows it, as every later period does. Page times build the rows from the store and render the HTML (median of 3).`,
      rows: [
        {
          what: "check-ins/s over mutual TLS",
          ours: `${fmt(overTls, 0)}/s`,
          reference: `${fmt(needed, 1)}/s needed`,
          ratio: `${fmt(overTls / needed, 1)}×`,
          target: "≥ 1× (sustains the fleet)",
          met: overTls >= needed ? "yes" : "no",
        },
        {
          what:
            "check-ins/s, server work only (parse, verify claims, record; each claim verified once, then remembered)",
          ours: `${fmt(serverOnly, 0)}/s`,
          reference: `${fmt(needed, 1)}/s needed`,
          ratio: `${fmt(serverOnly / needed, 1)}×`,
          target: "≥ 1×",
          met: serverOnly >= needed ? "yes" : "no",
        },
        {
          what: `Puddles page, ${puddleRows} puddles (${
            fmt(puddleBytes / 1024, 0)
          } KiB of HTML)`,
          ours: `${fmt(median(puddleMs), 0)} ms`,
          reference: "1,000 ms",
          ratio: `${fmt(median(puddleMs) / 1000)}×`,
          target: "≤ 1×",
          met: median(puddleMs) <= 1000 ? "yes" : "no",
        },
        {
          what: `Puddles page, ${wideRows} puddles (every user its own)`,
          ours: `${fmt(median(wideMs), 0)} ms`,
          reference: "1,000 ms",
          ratio: `${fmt(median(wideMs) / 1000)}×`,
          target: "≤ 1×",
          met: median(wideMs) <= 1000 ? "yes" : "no",
        },
        {
          what: `Gitback page, ${projectRows} projects`,
          ours: `${fmt(median(gitbackMs), 0)} ms`,
          reference: "1,000 ms",
          ratio: `${fmt(median(gitbackMs) / 1000)}×`,
          target: "≤ 1×",
          met: median(gitbackMs) <= 1000 ? "yes" : "no",
        },
      ],
    };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
