/**
 * `vigo server`: the fleet server daemon. It takes agents' check-ins over
 * mutual TLS into the fleet store, hands out the name map and the
 * published usercrate policy, and serves the read-only web pages on a
 * loopback address, until SIGTERM.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { removeIfExists, writeTextAtomic } from "../platform/fs.ts";
import { createLogger } from "../platform/log.ts";
import { useNativeVerification } from "../crypto/ed25519_native.ts";
import { readSwarmTls } from "../swarm/swarm_client.ts";
import { startSwarmServer } from "../swarm/swarm_server.ts";
import { checkOwnCertificate } from "../swarm/own_certificate.ts";
import {
  fleetStorePath,
  loadServerConfig,
  type ServerConfig,
} from "./server_config.ts";
import { type FleetStore, openFleetStore } from "./store.ts";
import { fleetRoutes } from "./routes.ts";
import { gitbackRows, projectView } from "./gitback_mesh.ts";
import { startWebServer, type WebSource } from "./web/web_server.ts";

/** The pages' data, read from the store on each request. */
export function storeWebSource(
  store: FleetStore,
  config: Pick<ServerConfig, "checkinSeconds">,
): WebSource {
  const period = config.checkinSeconds;
  return {
    puddles: (now) => store.puddles(now, period),
    gitback: (now) =>
      gitbackRows(store.latestTraits(), store.nameMap().names, now, period),
    project: (id, now) =>
      projectView(
        store.latestTraits(),
        store.nameMap().names,
        now,
        period,
        id,
      ),
    info: (now) => ({
      generatedAt: new Date(now * 1000).toISOString(),
      envoys: store.envoyCount(),
      periodS: period,
    }),
  };
}

/** Opens the fleet store at its place under `paths` (directory 0700). */
export function openServerStore(paths: SystemPaths): FleetStore {
  const path = fleetStorePath(paths);
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), {
    recursive: true,
    mode: 0o700,
  });
  return openFleetStore(path);
}

/**
 * Runs the fleet server in the foreground until SIGTERM or SIGINT, writing
 * `<varRun>/server.pid` (removed on a clean stop). Rejects, with a sentence
 * saying what to fix, when it cannot start.
 */
export async function runFleetServer(
  options: { paths: SystemPaths; configFile?: string },
): Promise<void> {
  const log = createLogger("server");
  const stopped = Promise.withResolvers<string>();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stopped.resolve(signal));
  }
  // Name claims are verified at every envoy's first check-in.
  useNativeVerification();
  const config = loadServerConfig(options.paths, options.configFile);
  const tls = readSwarmTls(config);
  checkOwnCertificate({ ...config, configName: "server.yaml" }, tls);
  const store = openServerStore(config.paths);
  try {
    const swarm = await startSwarmServer({
      listen: config.listen,
      port: config.port,
      ...tls,
      routes: fleetRoutes({
        store,
        checkinSeconds: config.checkinSeconds,
        log,
      }),
      log,
    });
    const web = await startWebServer({
      listen: config.web.listen,
      port: config.web.port,
      source: storeWebSource(store, config),
      log,
    });
    Deno.mkdirSync(config.paths.varRun, { recursive: true, mode: 0o755 });
    const pidFile = `${config.paths.varRun}/server.pid`;
    writeTextAtomic(pidFile, `${Deno.pid}\n`, 0o644);
    log.info("fleet server listening", {
      hostname: config.hostname,
      checkins: `${config.listen}:${swarm.port}`,
      web: `http://${
        config.web.listen.includes(":")
          ? `[${config.web.listen}]`
          : config.web.listen
      }:${web.port}/swarm/puddle`,
    });
    const reason = await stopped.promise;
    log.info("fleet server stopping", { signal: reason });
    let grace: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([swarm.close(), web.close()]),
      new Promise((resolve) => grace = setTimeout(resolve, 5_000)),
    ]);
    clearTimeout(grace);
    removeIfExists(pidFile);
    log.info("fleet server stopped");
  } finally {
    store.close();
  }
}
