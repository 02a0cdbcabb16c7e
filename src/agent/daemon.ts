/**
 * `vigo agent`: the per-envoy root daemon. It serves the swarm port over
 * mutual TLS, the local git socket, and runs the reactors, until SIGTERM.
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import type { SystemPaths } from "../platform/paths.ts";
import { removeIfExists, writeTextAtomic } from "../platform/fs.ts";
import { type AgentConfig, loadAgentConfig } from "../envoy/config.ts";
import { createLogger } from "../platform/log.ts";
import { readSwarmTls, type SwarmTls } from "../swarm/swarm_client.ts";
import { startSwarmServer } from "../swarm/swarm_server.ts";
import { swarmRoutes } from "./routes.ts";
import { startGitSocket } from "./git_socket.ts";
import { startSweep } from "./sweep.ts";
import { fanOut } from "./fanout.ts";
import { PeerIndex, startAnnouncer } from "./announce.ts";
import { startCatchUp } from "./catchup.ts";
import { gossipEnvelope, startReconcile } from "./gossip.ts";
import { resetIngestTempDir } from "../gitback/repo.ts";

/**
 * Checks this envoy's TLS material before serving with it: the key is owned
 * by the agent's user (root in production) and private, the certificate
 * belongs to the key, was issued by the fleet CA, is within its validity,
 * and names this envoy (CN = `hostname` in agent.yaml).
 */
export function checkOwnCertificate(config: AgentConfig, tls: SwarmTls): void {
  const uid = Deno.uid();
  const owner = Deno.statSync(config.tls.key).uid;
  if (uid !== null && owner !== uid) {
    throw new Error(
      `${config.tls.key} is owned by uid ${owner}, not by the agent (uid ${uid}); run \`chown root: ${config.tls.key}\`.`,
    );
  }
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(tls.certPem);
    ca = new X509Certificate(tls.caPem);
  } catch {
    throw new Error(
      `${config.tls.cert} or ${config.tls.ca} is not a valid certificate; issue it again with \`vigo ca issue\`.`,
    );
  }
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(tls.keyPem));
  } catch {
    // An unreadable key is reported like a mismatch.
  }
  if (!matches) {
    throw new Error(
      `${config.tls.key} is not the key of ${config.tls.cert}; copy both from the same \`vigo ca issue\`.`,
    );
  }
  if (!cert.verify(ca.publicKey)) {
    throw new Error(
      `${config.tls.cert} was not issued by the fleet CA in ${config.tls.ca}; issue it again on the CA host.`,
    );
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now || Date.parse(cert.validFrom) > now) {
    throw new Error(
      `${config.tls.cert} is valid only from ${cert.validFrom} to ${cert.validTo}; issue a new one with \`vigo ca issue ${config.hostname}\`.`,
    );
  }
  if (cert.checkHost(config.hostname) === undefined) {
    throw new Error(
      `${config.tls.cert} is for ${
        cert.subject.replace(/^CN=/, "")
      }, but agent.yaml says hostname ${config.hostname}; fix one of them.`,
    );
  }
}

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
  const config = loadAgentConfig(options.paths, options.configFile);
  const tls = readSwarmTls(config);
  checkOwnCertificate(config, tls);
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
