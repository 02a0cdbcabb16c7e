/**
 * LAN discovery by real UDP multicast, in a network namespace the test
 * creates (the host's loopback carries no multicast) and removes.
 */

import assert from "node:assert/strict";
import { REPO } from "./support/cli.ts";
import { runCommand } from "../src/platform/process.ts";
import {
  announcementDatagrams,
  formatAnnouncement,
  formatPresence,
  heldProjects,
  MAX_CANDIDATE_HOSTS,
  MAX_SEND_DATAGRAM,
  metaPath,
  parseAnnouncement,
  parsePresence,
  PeerIndex,
  startAnnouncer,
} from "../src/agent/announce.ts";
import dgram from "node:dgram";
import { announcerConfig } from "./support/agent_config.ts";
import type { LogFields, Logger } from "../src/platform/log.ts";
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
      assert.equal(heard.a[0].projectId, heard.held.b);
      // Announced as its founder's statement, recorded with it, says.
      assert.equal(heard.b[0].scope, "swarm-wide");
    } finally {
      await ip("netns", "del", ns);
    }
  },
});

Deno.test({
  name:
    "forged presence lines neither enter the host table nor draw unbounded answers",
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
    // A configured host whose line, sent last, shows the flood was read.
    const sentinel = "f".repeat(64);
    // (at an address nobody listens on: the flooder counts what it gets).
    config.hosts = { "envoy-s": "127.0.0.9" };
    const quiet: Logger = { info() {}, warn() {}, error() {} };
    const index = new PeerIndex(10_000);
    const announcer = await startAnnouncer(config, quiet, index, {
      confirm: () => Promise.reject(new Error("not that host")),
    });
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
      flooder.send(
        new TextEncoder().encode(
          `GITBACKPROJECT:envoy-s:${sentinel}:s:swarm-wide\n`,
        ),
        port,
        "127.0.0.1",
      );
      await waitUntil(
        "the flood to be read",
        () => index.holders(sentinel).length > 0,
      );
      assert.deepEqual(config.hosts, { "envoy-s": "127.0.0.9" });
      assert.deepEqual(announcer.hosts.size(), {
        configured: 1,
        learned: 0,
        candidates: MAX_CANDIDATE_HOSTS,
      });
      assert.ok(answers > 0, "a new host is answered at once");
      assert.ok(answers <= 16, `${answers} immediate answers`);
    } finally {
      flooder.close();
      announcer.stop();
      Deno.removeSync(base, { recursive: true });
    }
  },
});

Deno.test("forged hosts such as `..` are neither parsed, learned nor indexed", async () => {
  const id = "c".repeat(64);
  const forged = [
    "..",
    ".",
    "../../x",
    "a/b",
    "-lead",
    "dot..dot",
    "a".repeat(254),
    `${"a".repeat(64)}.example`,
  ];
  for (const host of forged) {
    assert.equal(parsePresence(`GITBACKHOST:${host}`), null, host);
    assert.equal(parseAnnouncement(`GITBACKPROJECT:${host}:${id}`), null);
    assert.equal(
      parseAnnouncement(`GITBACKPROJECT:${host}:${id}:h:swarm-wide`),
      null,
      host,
    );
  }

  const base = Deno.makeTempDirSync({ prefix: "vigo-forged-" });
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const config = announcerConfig({
    hostname: "envoy-a",
    root: `${base}/root`,
    listen: "127.0.0.1",
    port,
    periodSeconds: 3600,
  });
  config.hosts = { "envoy-s": "127.0.0.3" };
  const index = new PeerIndex(10_000);
  const refusals: LogFields[] = [];
  const log: Logger = {
    info() {},
    warn(message, fields) {
      if (message === "malformed announcement lines ignored") {
        refusals.push(fields ?? {});
      }
    },
    error() {},
  };
  const announcer = await startAnnouncer(config, log, index, {
    confirm: () => Promise.reject(new Error("not that host")),
  });
  const forger = dgram.createSocket("udp4");
  await new Promise<void>((r) => forger.bind(port, "127.0.0.2", () => r()));
  try {
    const lines = forged.flatMap((host) => [
      `GITBACKHOST:${host}`,
      `GITBACKPROJECT:${host}:${id}:h:swarm-wide`,
    ]);
    // A well-formed host, then a configured one last, to know when the
    // datagram was handled.
    lines.push(`GITBACKPROJECT:envoy-f:${id}:h:swarm-wide`);
    lines.push(`GITBACKPROJECT:envoy-s:${"9".repeat(64)}:s:swarm-wide`);
    forger.send(
      new TextEncoder().encode(lines.join("\n") + "\n"),
      port,
      "127.0.0.1",
    );
    await waitUntil(
      "the datagram handled",
      () => index.holders("9".repeat(64)).length > 0,
    );
    // envoy-f is well-formed but unconfirmed: a candidate, nothing more.
    assert.deepEqual(index.holders(id), []);
    assert.deepEqual(Object.keys(config.hosts), ["envoy-s"]);
    assert.equal(announcer.hosts.size().candidates, 1);
    // Counted, and logged once per period rather than line by line.
    announcer.announceNow();
    assert.deepEqual(refusals, [{
      count: 2 * forged.length,
      last_from: "127.0.0.2",
    }]);
  } finally {
    forger.close();
    announcer.stop();
    Deno.removeSync(base, { recursive: true });
  }
});

const quiet: Logger = { info() {}, warn() {}, error() {} };

/** A test root holding `count` projects, as heldProjects finds them. */
function rootWithProjects(base: string, count: number) {
  const config = announcerConfig({
    hostname: "envoy-a",
    root: `${base}/root`,
    listen: "127.0.0.1",
    port: 1,
    periodSeconds: 1,
  });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const projectId = i.toString(16).padStart(64, "0");
    Deno.mkdirSync(
      `${config.paths.varLib}/swarm/gitback/projects/${projectId}.git`,
      { recursive: true },
    );
    // What recordProjectMeta writes, without its fsyncs (700 of them).
    const meta = metaPath(config, projectId);
    Deno.mkdirSync(meta.slice(0, meta.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(
      meta,
      JSON.stringify({
        handle: `project-${i}`,
        scope: i % 2 ? "members-only" : "swarm-wide",
      }),
    );
    ids.push(projectId);
  }
  return { config, ids };
}

Deno.test("announcements split into bounded datagrams, each opening with presence", () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-split-" });
  try {
    const { config, ids } = rootWithProjects(base, 50);
    const held = heldProjects(config);
    assert.equal(held.length, 50);
    const datagrams = announcementDatagrams("envoy-a", held, 400);
    assert.ok(datagrams.length > 10, `${datagrams.length} datagrams`);
    const seen: string[] = [];
    for (const datagram of datagrams) {
      assert.ok(datagram.length <= 400, `${datagram.length} bytes`);
      const lines = new TextDecoder().decode(datagram).split("\n");
      assert.equal(lines.pop(), "", "every line ends with a newline");
      assert.equal(parsePresence(lines[0]), "envoy-a");
      assert.ok(lines.length >= 2, "at least one project per datagram");
      for (const line of lines.slice(1)) {
        seen.push(parseAnnouncement(line)!.projectId);
      }
    }
    assert.deepEqual(seen.sort(), ids);
    // Nothing held: the presence line alone.
    assert.deepEqual(
      announcementDatagrams("envoy-a", []).map((d) =>
        new TextDecoder().decode(d)
      ),
      ["GITBACKHOST:envoy-a\n"],
    );
    // The longest lines still fit the default size, two to a datagram.
    const longest = {
      projectId: "e".repeat(64),
      handle: "h".repeat(64),
      scope: "members-only",
    };
    const host = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${
      "d".repeat(61)
    }`;
    for (
      const d of announcementDatagrams(host, [longest, longest, longest])
    ) assert.ok(d.length <= MAX_SEND_DATAGRAM);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("a recorded handle that is not one is announced without it, adding no line", () => {
  const id = "d".repeat(64);
  const datagrams = announcementDatagrams("envoy-a", [{
    projectId: id,
    handle: `x\nGITBACKPROJECT:envoy-z:${"e".repeat(64)}:y:swarm-wide`,
    scope: "swarm-wide",
  }]);
  assert.deepEqual(
    datagrams.map((d) => new TextDecoder().decode(d)),
    [`GITBACKHOST:envoy-a\nGITBACKPROJECT:envoy-a:${id}\n`],
  );
});

Deno.test({
  name: "a receiver learns all of 700 projects one agent holds",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-many-" });
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const { config: a, ids } = rootWithProjects(base, 700);
    a.announce.port = port;
    a.hosts = { "envoy-b": "127.0.0.3", "sniffer": "127.0.0.4" };
    const b = announcerConfig({
      hostname: "envoy-b",
      root: `${base}/root-b`,
      listen: "127.0.0.3",
      port,
      periodSeconds: 3600,
    });
    // envoy-a is configured on envoy-b: its lines count at once.
    b.hosts = { "envoy-a": "127.0.0.1" };
    const heardByB = new PeerIndex(60_000);
    const sniffer = dgram.createSocket("udp4");
    const sniffed = new Set<string>();
    const problems: string[] = [];
    sniffer.on("message", (message: Uint8Array) => {
      if (message.length > MAX_SEND_DATAGRAM) {
        problems.push(`${message.length} bytes`);
      }
      const lines = new TextDecoder().decode(message).trim().split("\n");
      if (parsePresence(lines[0]) !== "envoy-a") {
        problems.push(`opens with ${lines[0].slice(0, 40)}`);
      }
      for (const line of lines.slice(1)) {
        const announcement = parseAnnouncement(line);
        if (announcement) sniffed.add(announcement.projectId);
      }
    });
    await new Promise<void>((r) => sniffer.bind(port, "127.0.0.4", () => r()));
    const receiver = await startAnnouncer(b, quiet, heardByB);
    const sender = await startAnnouncer(a, quiet, new PeerIndex(10_000));
    try {
      await waitUntil(
        "envoy-b heard every project",
        () => ids.every((id) => heardByB.holders(id).length > 0),
        15_000,
      );
      await waitUntil(
        "the sniffer saw every project",
        () => sniffed.size === 700,
      );
      assert.deepEqual(problems, []);
      const heard = heardByB.all().filter((x) => x.host === "envoy-a");
      assert.equal(heard.length, 700);
      assert.equal(
        heard.find((x) => x.projectId === ids[7])!.handle,
        "project-7",
      );
    } finally {
      sender.stop();
      receiver.stop();
      sniffer.close();
      Deno.removeSync(base, { recursive: true });
    }
  },
});

Deno.test({
  name: "failed sends are logged, at most once a minute per destination",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-sendfail-" });
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const { config } = rootWithProjects(base, 100);
    config.announce.port = port;
    config.announce.periodSeconds = 3600;
    // From a socket bound to loopback, the kernel refuses this route. A
    // live receiver after it: sends complete in order, so once it has heard
    // everything, every send to the dead route has failed.
    config.hosts = { "envoy-dead": "192.0.2.1", "sniffer": "127.0.0.5" };
    assert.ok(
      announcementDatagrams("envoy-a", heldProjects(config)).length > 1,
    );
    let sniffed = 0;
    const sniffer = dgram.createSocket("udp4");
    sniffer.on("message", (message: Uint8Array) => {
      for (const line of new TextDecoder().decode(message).split("\n")) {
        if (parseAnnouncement(line)) sniffed++;
      }
    });
    await new Promise<void>((r) => sniffer.bind(port, "127.0.0.5", () => r()));
    const warnings: LogFields[] = [];
    const log: Logger = {
      info() {},
      warn(message, fields) {
        if (message === "announcement not sent") warnings.push(fields ?? {});
      },
      error() {},
    };
    const announcer = await startAnnouncer(config, log, new PeerIndex(10_000));
    try {
      // Two announcements or more (one at start, one asked for), each of
      // several datagrams, all failing there.
      announcer.announceNow();
      await waitUntil(
        "the receiver heard two announcements",
        () => sniffed >= 2 * 100,
      );
      await new Promise((r) => setTimeout(r, 0));
      const dead = warnings.filter((w) => w.address === "192.0.2.1");
      assert.equal(dead.length, 1, JSON.stringify(warnings));
      assert.ok(String(dead[0].error).length > 0);
    } finally {
      announcer.stop();
      sniffer.close();
      Deno.removeSync(base, { recursive: true });
    }
  },
});
