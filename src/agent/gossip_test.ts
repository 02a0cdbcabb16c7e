import assert from "node:assert/strict";
import { makeFleetPki, writeEnvoyTls } from "../../tests/support/pki.ts";
import { waitUntil } from "../../tests/support/wait.ts";
import { loadAgentConfig } from "../envoy/config.ts";
import {
  gossipEnvelope,
  MAX_PENDING_SENDS_PER_PEER,
  pendingSends,
} from "./gossip.ts";
import type { LogFields, Logger } from "../platform/log.ts";
import { PeerIndex } from "./announce.ts";
import { startSwarmServer } from "../swarm/swarm_server.ts";
import { systemPathsUnder } from "../platform/paths.ts";

function memoryLogger(lines: string[]): Logger {
  const at = (level: string) => (message: string, fields: LogFields = {}) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
  };
  return { info: at("INFO"), warn: at("WARN"), error: at("ERROR") };
}

Deno.test({
  name:
    "a burst of gossip reaches a peer through a bounded queue: one post in flight, the rest capped and logged",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-gossip-queue-" });
    const pki = await makeFleetPki(dir, [
      { hostname: "envoy-a", ips: ["127.0.0.1"] },
      { hostname: "envoy-b", ips: ["127.0.0.1"] },
    ]);
    const serverLines: string[] = [];
    const received: string[] = [];
    const server = await startSwarmServer({
      listen: "127.0.0.1",
      port: 0,
      caPem: pki.caPem,
      ...pki.envoys["envoy-b"],
      log: memoryLogger(serverLines),
      routes: [{
        method: "POST",
        pattern: "/swarm/gitback/envelopes/:project/:kind",
        maxBodyBytes: 64 * 1024,
        handler: (ctx) => {
          received.push(JSON.stringify(ctx.json()));
          return { status: 200, json: { stored: true } };
        },
      }],
    });
    try {
      const paths = systemPathsUnder(dir);
      writeEnvoyTls(paths.etc, pki.caPem, pki.envoys["envoy-a"]);
      Deno.writeTextFileSync(
        `${paths.etc}/agent.yaml`,
        [
          "hostname: envoy-a",
          `port: ${server.port}`,
          "hosts: { envoy-b: 127.0.0.1 }",
          "managed_users: homes",
          "",
        ].join("\n"),
      );
      const config = loadAgentConfig(paths);
      const lines: string[] = [];
      const log = memoryLogger(lines);
      const project = "ab".repeat(32);
      const BURST = 1000;
      for (let i = 0; i < BURST; i++) {
        await gossipEnvelope(
          config,
          log,
          new PeerIndex(60_000),
          project,
          "leaves",
          {
            body: btoa(`envelope ${i}`),
            sig: "00".repeat(64),
          },
        );
        // The same envelope again while it waits is coalesced.
        await gossipEnvelope(
          config,
          log,
          new PeerIndex(60_000),
          project,
          "leaves",
          {
            body: btoa(`envelope ${i}`),
            sig: "00".repeat(64),
          },
        );
      }
      // One post left at once; the queue holds no more than its cap.
      assert.equal(pendingSends(config, "envoy-b"), MAX_PENDING_SENDS_PER_PEER);
      assert.equal(
        lines.filter((l) => l.startsWith("WARN gossip queue full")).length,
        1,
      );
      await waitUntil(
        "the queue to drain",
        () => lines.some((l) => l.includes("gossip queue overflowed")),
      );
      assert.equal(pendingSends(config, "envoy-b"), 0);
      assert.equal(received.length, MAX_PENDING_SENDS_PER_PEER + 1);
      assert.equal(new Set(received).size, received.length);
      const overflow = lines.find((l) =>
        l.includes("gossip queue overflowed")
      )!;
      // Every call that found the queue full counts, its repeat too.
      assert.match(
        overflow,
        new RegExp(`"dropped":${2 * (BURST - MAX_PENDING_SENDS_PER_PEER - 1)}`),
      );
    } finally {
      await server.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
