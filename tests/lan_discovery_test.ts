/**
 * LAN discovery by real UDP multicast, in a network namespace the test
 * creates (the host's loopback carries no multicast) and removes.
 */

import assert from "node:assert/strict";
import { REPO } from "./support/cli.ts";
import { runCommand } from "../src/platform/process.ts";
import {
  formatAnnouncement,
  formatPresence,
  parseAnnouncement,
  parsePresence,
  PeerIndex,
  startAnnouncer,
} from "../src/agent/announce.ts";
import dgram from "node:dgram";
import { announcerConfig } from "./support/agent_config.ts";
import type { Logger } from "../src/agent/log.ts";
import { waitUntil } from "./support/wait.ts";

Deno.test("announcement lines: current and older forms parse, junk does not", () => {
  const id = "c".repeat(64);
  const line = formatAnnouncement("envoy-a", {
    projectId: id,
    handle: "vigo-web",
    scope: "members-only",
  });
  assert.equal(line, `GITBACKPROJECT:envoy-a:${id}:vigo-web:members-only`);
  assert.deepEqual(parseAnnouncement(line), {
    host: "envoy-a",
    projectId: id,
    handle: "vigo-web",
    scope: "members-only",
  });
  assert.deepEqual(parseAnnouncement(`GITBACKPROJECT:envoy-b:${id}`), {
    host: "envoy-b",
    projectId: id,
  });
  for (
    const junk of [
      "GITBACKPROJECT:envoy-a",
      `GITBACKPROJECT:envoy-a:${id}:x`,
      `GITBACKPROJECT:envoy-a:${id}:.hidden:swarm-wide`,
      `GITBACKPROJECT:envoy-a:${id}:h:everyone`,
      `GITBACKPROJECT:bad host:${id}`,
      `OTHER:envoy-a:${id}`,
    ]
  ) assert.equal(parseAnnouncement(junk), null, junk);
});

Deno.test("presence lines name a host and nothing else", () => {
  assert.equal(formatPresence("envoy-d"), "GITBACKHOST:envoy-d");
  assert.equal(parsePresence("GITBACKHOST:envoy-d"), "envoy-d");
  for (
    const junk of ["GITBACKHOST:", "GITBACKHOST:bad host", "GITBACKHOST:a:b"]
  ) assert.equal(parsePresence(junk), null, junk);
  assert.equal(parseAnnouncement("GITBACKHOST:envoy-d"), null);
});

Deno.test("the peer index forgets stale announcements", () => {
  const index = new PeerIndex(1000);
  const id = "d".repeat(64);
  index.record({ host: "envoy-a", projectId: id }, 0);
  index.record({ host: "envoy-b", projectId: id }, 900);
  assert.deepEqual(index.holders(id, 1000).map((a) => a.host), [
    "envoy-a",
    "envoy-b",
  ]);
  assert.deepEqual(index.holders(id, 1500).map((a) => a.host), ["envoy-b"]);
  assert.deepEqual(index.holders(id, 5000), []);
});

Deno.test({
  name:
    "agents discover each other's projects by multicast in a network namespace",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const ns = `vigo-lan-${
      crypto.getRandomValues(new Uint32Array(1))[0].toString(36)
    }`;
    const ip = (...args: string[]) => runCommand("ip", { args });
    assert.equal((await ip("netns", "add", ns)).code, 0);
    try {
      for (
        const args of [
          ["-n", ns, "link", "set", "lo", "up"],
          ["-n", ns, "link", "set", "lo", "multicast", "on"],
          ["-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo"],
        ]
      ) {
        const out = await ip(...args);
        assert.equal(out.code, 0, out.stderr);
      }
      const probe = await runCommand("ip", {
        args: [
          "netns",
          "exec",
          ns,
          `${REPO}/scripts/deno`,
          "run",
          "-A",
          `${REPO}/tests/support/multicast_probe.ts`,
        ],
      });
      assert.equal(probe.code, 0, probe.stderr);
      const heard = JSON.parse(probe.stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(heard.a.map((x: { host: string }) => x.host), [
        "envoy-b",
      ]);
      assert.deepEqual(heard.b.map((x: { host: string }) => x.host), [
        "envoy-a",
      ]);
      assert.equal(heard.a[0].projectId, "b".repeat(64));
      assert.equal(heard.b[0].scope, "swarm-wide");
    } finally {
      await ip("netns", "del", ns);
    }
  },
});

Deno.test({
  name:
    "forged presence lines neither grow the host table nor draw unbounded answers",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-flood-" });
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const root = `${base}/root`;
    Deno.mkdirSync(
      `${root}/var/lib/vigo/swarm/gitback/projects/${"e".repeat(64)}.git`,
      { recursive: true },
    );
    // A long period: every answer counted below is an immediate one.
    const config = announcerConfig({
      hostname: "envoy-a",
      root,
      listen: "127.0.0.1",
      port,
      periodSeconds: 3600,
    });
    const quiet: Logger = { info() {}, warn() {}, error() {} };
    const announcer = await startAnnouncer(
      config,
      quiet,
      new PeerIndex(10_000),
    );
    const flooder = dgram.createSocket("udp4");
    let answers = 0;
    flooder.on("message", () => answers++);
    // Answers go to the announcement port at the datagram's source address.
    await new Promise<void>((r) => flooder.bind(port, "127.0.0.2", () => r()));
    try {
      // 1100 forged hosts in 110 datagrams of ten lines each.
      for (let d = 0; d < 110; d++) {
        const lines = Array.from(
          { length: 10 },
          (_, i) => formatPresence(`forged-${d * 10 + i}`),
        );
        flooder.send(
          new TextEncoder().encode(lines.join("\n") + "\n"),
          port,
          "127.0.0.1",
        );
        await new Promise((r) => setTimeout(r, 2));
      }
      await waitUntil(
        "1024 learned hosts",
        () => Object.keys(config.hosts).length >= 1024,
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(Object.keys(config.hosts).length, 1024);
      assert.ok(answers > 0, "a new host is answered at once");
      assert.ok(answers <= 16, `${answers} immediate answers`);
    } finally {
      flooder.close();
      announcer.stop();
      Deno.removeSync(base, { recursive: true });
    }
  },
});
