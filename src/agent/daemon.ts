/**
 * `vigo agent`: the per-envoy root daemon. It serves the swarm port over
 * mutual TLS, the local git socket, and runs the reactors, until SIGTERM.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { removeIfExists, writeTextAtomic } from "../platform/fs.ts";
import { loadAgentConfig } from "../envoy/config.ts";
import { createLogger } from "../platform/log.ts";
import { readSwarmTls } from "../swarm/swarm_client.ts";
import { checkOwnCertificate } from "../swarm/own_certificate.ts";
import { startSwarmServer } from "../swarm/swarm_server.ts";
import { swarmRoutes } from "./routes.ts";
import { startGitSocket } from "./git_socket.ts";
import { startSweep } from "./sweep.ts";
import { fanOut } from "./fanout.ts";
import { PeerIndex, startAnnouncer } from "./announce.ts";
import { startCatchUp } from "./catchup.ts";
import { gossipEnvelope, startReconcile } from "./gossip.ts";
import { startFleetLink } from "./fleet_link.ts";
import { resetIngestTempDir } from "../gitback/repo.ts";
import { useNativeVerification } from "../crypto/ed25519_native.ts";

/**
 * Runs the agent in the foreground until SIGTERM or SIGINT: loads agent.yaml,
 * checks the TLS material, serves the swarm port, the git socket and the
 * reactors, and writes `<varRun>/agent.pid` (removed on a clean stop).
 * Rejects, with a sentence saying what to fix, when it cannot start.
 */
export async function runAgent(
  options: { paths: SystemPaths; configFile?: string },
): Promise<void> {
  const log = createLogger();
  // Listen for the stop signals first: one that arrives while starting up
  // still ends in a clean stop.
  const stopped = Promise.withResolvers<string>();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stopped.resolve(signal));
  }
  // Every push, delivery, catch-up and gossip message verifies chains: the
  // daemon uses the native engine (the same strict rule).
  useNativeVerification();
  const config = loadAgentConfig(options.paths, options.configFile);
  const tls = readSwarmTls(config);
  checkOwnCertificate({ ...config, configName: "agent.yaml" }, tls);
  const index = new PeerIndex(config.announce.staleSeconds * 1000);
  // Bodies a crash left half-received or half-ingested go before any
  // delivery can arrive.
  const leftovers = resetIngestTempDir(config.paths);
  if (leftovers > 0) {
    log.info("removed unfinished deliveries", { count: leftovers });
  }
  const server = await startSwarmServer({
    listen: config.listen,
    port: config.port,
    ...tls,
    routes: swarmRoutes(config, log),
    log,
  });
  const gitSocket = await startGitSocket({
    config,
    log,
    // Replicate in the background; the pusher does not wait for peers.
    onPush: (projectId, chain) => {
      fanOut(config, log, projectId, chain, index).catch((error) =>
        log.error("fan-out failed", {
          project: projectId,
          error: (error as Error).message,
        })
      );
    },
  });
  const sweep = startSweep(config, log, (projectId, kind, envelope) => {
    gossipEnvelope(config, log, index, projectId, kind, envelope).catch((
      error,
    ) =>
      log.error("gossip failed", {
        project: projectId,
        error: (error as Error).message,
      })
    );
  });
  const reconcile = startReconcile(config, log, index);
  const announcer = await startAnnouncer(config, log, index);
  const catchUp = startCatchUp(config, log, index);
  // Check-ins, policy and names from the fleet server, if agent.yaml names one.
  const fleetLink = startFleetLink(config, log);
  Deno.mkdirSync(config.paths.varRun, { recursive: true, mode: 0o755 });
  const pidFile = `${config.paths.varRun}/agent.pid`;
  writeTextAtomic(pidFile, `${Deno.pid}\n`, 0o644);
  log.info("agent listening", {
    hostname: config.hostname,
    address: `${config.listen}:${server.port}`,
    git_socket: gitSocket.path,
  });

  const reason = await stopped.promise;
  log.info("agent stopping", { signal: reason });
  sweep.stop();
  catchUp.stop();
  reconcile.stop();
  announcer.stop();
  fleetLink.stop();
  // Open connections get at most 5 s; then the process exits regardless.
  let grace: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all([server.close(), gitSocket.close()]),
    new Promise((resolve) => grace = setTimeout(resolve, 5_000)),
  ]);
  clearTimeout(grace);
  removeIfExists(pidFile);
  log.info("agent stopped");
}
