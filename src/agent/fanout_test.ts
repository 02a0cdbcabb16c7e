import assert from "node:assert/strict";
import { announcerConfig } from "../../tests/support/agent_config.ts";
import { userByUid } from "../platform/users.ts";
import type { LogFields, Logger } from "../platform/log.ts";
import { hostDigest, isHostName } from "../envoy/host_name.ts";
import {
  peersOf,
  peerStatePath,
  readAck,
  retryPendingFanOut,
} from "./fanout.ts";

const PROJECT = "a".repeat(64);

/** Host-name-shaped and not: what users and peers may send. */
const NOT_HOST_NAMES = [
  "..",
  ".",
  "../../../x",
  "../meta/" + "f".repeat(64),
  "/etc/passwd",
  "a/b",
  "",
  "a".repeat(254),
  `${"a".repeat(64)}.example`,
  "evil\nname",
  "tab\tname",
  "nul\u0000",
  "-lead",
  "trail-",
  "trail.",
  ".lead",
  "dot..dot",
  "host:1531",
  "host?x=/..",
  "ünïcode",
  " space",
];

function recordingLogger(): Logger & { lines: [string, LogFields?][] } {
  const lines: [string, LogFields?][] = [];
  const push = (message: string, fields?: LogFields) =>
    void lines.push([message, fields]);
  return { lines, info: push, warn: push, error: push };
}

function testConfig(base: string) {
  return announcerConfig({
    hostname: "envoy-a",
    root: `${base}/root`,
    listen: "127.0.0.1",
    port: 1,
    periodSeconds: 3600,
  });
}

Deno.test("host names: the RFC 1123 grammar, and nothing that could be a path", () => {
  for (
    const good of ["envoy-a", "a", "a.b.c", "127.0.0.9", "x".repeat(63)]
  ) assert.ok(isHostName(good), good);
  for (const bad of [...NOT_HOST_NAMES, 42, null, undefined, {}]) {
    assert.equal(isHostName(bad), false, JSON.stringify(bad));
  }
  assert.match(hostDigest("envoy-b"), /^[0-9a-f]{64}$/);
  assert.throws(() => hostDigest("../x"), /not a host name/);
});

Deno.test("per-peer state is named by the host's digest, never by its name", () => {
  const config = testConfig("/nonexistent");
  const base = `${config.paths.varLib}/swarm/gitback`;
  assert.equal(
    peerStatePath(config, "acks", PROJECT, "envoy-b"),
    `${base}/acks/${PROJECT}/${hostDigest("envoy-b")}.json`,
  );
  for (const bad of NOT_HOST_NAMES) {
    for (const kind of ["acks", "pending"] as const) {
      assert.throws(
        () => peerStatePath(config, kind, PROJECT, bad),
        /not a host name/,
        JSON.stringify(bad),
      );
    }
  }
  assert.throws(
    () => peerStatePath(config, "acks", "../x", "envoy-b"),
    /not a project id/,
  );
});

Deno.test("peersOf keeps only host names from a user's cross_subnet_members", () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-fanout-" });
  try {
    const config = testConfig(base);
    const me = userByUid(Deno.uid()!)!;
    const home = `${base}/home`;
    config.homes = { [me.name]: home };
    config.hosts = { "envoy-a": "127.0.0.1", "envoy-b": "127.0.0.2" };
    const dir = `${home}/.vigo-gitback/${PROJECT}`;
    Deno.mkdirSync(dir, { recursive: true });
    const many = Array.from({ length: 100 }, (_, i) => `many-${i}`);
    Deno.writeTextFileSync(
      `${dir}/project.json`,
      JSON.stringify({
        project_id: PROJECT,
        cross_subnet_members: [
          ...NOT_HOST_NAMES,
          7,
          null,
          "far.example",
          ...many,
        ],
      }),
    );
    const log = recordingLogger();
    const peers = peersOf(config, PROJECT, undefined, log);
    assert.ok(peers.includes("envoy-b"));
    assert.ok(peers.includes("far.example"));
    assert.ok(!peers.includes("envoy-a"), "never this envoy itself");
    for (const peer of peers) assert.ok(isHostName(peer), peer);
    // At most 64 from one file: far.example and the first 63 of `many`.
    assert.equal(peers.filter((p) => p.startsWith("many-")).length, 63);
    const [message, fields] = log.lines.find(([m]) =>
      /cross_subnet_members/.test(m)
    )!;
    assert.match(message, /ignored/);
    assert.equal(fields?.not_host_names, NOT_HOST_NAMES.length + 2);
    assert.equal(fields?.over_limit, 101 - 64);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("readAck reads only a record that names the peer inside", () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-fanout-" });
  try {
    const config = testConfig(base);
    const tip = "1".repeat(40);
    const path = peerStatePath(config, "acks", PROJECT, "envoy-b");
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(
      path,
      JSON.stringify({ peer: "envoy-b", tips: [tip, "../x", 5] }),
    );
    assert.deepEqual(readAck(config, PROJECT, "envoy-b"), [tip]);
    Deno.writeTextFileSync(
      path,
      JSON.stringify({ peer: "envoy-c", tips: [tip] }),
    );
    assert.deepEqual(readAck(config, PROJECT, "envoy-b"), []);
    // No path is built for a name that is not a host name: nothing is read.
    assert.deepEqual(readAck(config, PROJECT, "../x"), []);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("retries take the peer from the record, checked; old and forged records go", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-fanout-" });
  try {
    const config = testConfig(base);
    const gitback = `${config.paths.varLib}/swarm/gitback`;
    const pending = `${gitback}/pending/${PROJECT}`;
    const acks = `${gitback}/acks/${PROJECT}`;
    Deno.mkdirSync(pending, { recursive: true });
    Deno.mkdirSync(acks, { recursive: true });
    // The older format, named by the peer: removed, never read.
    Deno.writeTextFileSync(`${pending}/envoy-b.json`, '{"chain":[]}');
    Deno.writeTextFileSync(`${acks}/envoy-b.json`, '{"tips":[]}');
    Deno.mkdirSync(`${pending}/newdir/sub`, { recursive: true });
    // Digest-named, but the peer inside is not a host name.
    const forged = `${pending}/${"0".repeat(64)}.json`;
    Deno.writeTextFileSync(
      forged,
      JSON.stringify({ peer: "../../x", chain: [] }),
    );
    // Digest-named for envoy-z, claiming envoy-y inside.
    const swapped = `${pending}/${hostDigest("envoy-z")}.json`;
    Deno.writeTextFileSync(
      swapped,
      JSON.stringify({ peer: "envoy-y", chain: [] }),
    );
    // A good record: retried for the peer it names.
    const good = peerStatePath(config, "pending", PROJECT, "envoy-c");
    Deno.writeTextFileSync(
      good,
      JSON.stringify({ peer: "envoy-c", chain: [] }),
    );
    // A write in progress (platform/fs.ts's temporary name) is left alone.
    const writing = `${pending}/.${hostDigest("envoy-c")}.json.1234.tmp`;
    Deno.writeTextFileSync(writing, "");
    // Old acks of a project with nothing pending go too.
    const otherAcks = `${gitback}/acks/${"b".repeat(64)}`;
    Deno.mkdirSync(otherAcks, { recursive: true });
    Deno.writeTextFileSync(`${otherAcks}/envoy-b.json`, '{"tips":[]}');
    const sentinel = `${config.paths.varLib}/swarm/x.json`;
    Deno.writeTextFileSync(sentinel, "sentinel\n");

    const log = recordingLogger();
    await retryPendingFanOut(config, log);

    assert.deepEqual(
      [...Deno.readDirSync(pending)].map((e) => e.name).sort(),
      [
        `.${hostDigest("envoy-c")}.json.1234.tmp`,
        `${hostDigest("envoy-c")}.json`,
      ],
    );
    assert.deepEqual([...Deno.readDirSync(acks)], []);
    assert.deepEqual([...Deno.readDirSync(otherAcks)], []);
    assert.equal(Deno.readTextFileSync(sentinel), "sentinel\n");
    const peersTried = log.lines
      .filter(([m]) => /fan-out (retry )?failed/.test(m))
      .map(([, f]) => f?.peer);
    assert.deepEqual(peersTried, ["envoy-c"]);
    assert.equal(
      log.lines.filter(([m]) => /invalid pending/.test(m)).length,
      2,
    );
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
