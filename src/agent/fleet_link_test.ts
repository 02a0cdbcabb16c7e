import assert from "node:assert/strict";
import { createFleetCa, issueEnvoyCertificate } from "../ca/ca.ts";
import { type AgentConfig, loadAgentConfig } from "../envoy/config.ts";
import {
  policyUsers,
  publishedPolicy,
  readPolicy,
  type UserPolicy,
  writePolicies,
} from "../envoy/policy.ts";
import { parseTraits } from "../swarm/traits.ts";
import type { LogFields, Logger } from "../platform/log.ts";
import { nameMapPath, readNameMap } from "../puddle/names.ts";
import { readSwarmTls } from "../swarm/swarm_client.ts";
import {
  HttpError,
  startSwarmServer,
  type SwarmReply,
} from "../swarm/swarm_server.ts";
import {
  checkInOnce,
  fleetPolicyPath,
  readFleetPolicyRecord,
  refreshNamesOnce,
  startFleetLink,
} from "./fleet_link.ts";
import { systemPathsUnder } from "../platform/paths.ts";

const KEY = `ed25519:${"ab".repeat(32)}`;

type Line = { level: string; message: string; fields?: LogFields };

function memoryLog(lines: Line[], onLine?: () => void): Logger {
  const at = (level: string) => (message: string, fields?: LogFields) => {
    lines.push({ level, message, fields });
    onLine?.();
  };
  return { info: at("INFO"), warn: at("WARN"), error: at("ERROR") };
}

/** What the fake fleet server answers; tests change it between calls. */
interface FakeServer {
  checkin: () => SwarmReply;
  policy: () => SwarmReply;
  names: () => SwarmReply;
  calls: { checkin: number; policy: number; names: number };
  /** The traits each check-in delivered, parsed as the server would. */
  received: unknown[];
  onCheckIn?: () => void;
}

const USERS: UserPolicy[] = [
  { user: "dan", home: "/home/dan", puddle: true, gitback: true },
  { user: "ann", home: "/home/ann", puddle: true, gitback: false },
];
const PUBLISHED = publishedPolicy(USERS, "2026-01-01T00:00:00.000Z");

function answer(policy: string | null, checkinS = 60): SwarmReply {
  return {
    status: 200,
    json: { result: "recorded", checkin_s: checkinS, policy },
  };
}

/**
 * A fleet CA, an agent root for envoy-a whose agent.yaml names fleet-1 at
 * 127.0.0.1, and a fake fleet server there presenting `serverName`'s
 * certificate.
 */
async function withFleet(
  fn: (env: {
    config: AgentConfig;
    fake: FakeServer;
    lines: Line[];
    log: Logger;
  }) => Promise<void>,
  options: { serverName?: string; checkinS?: number } = {},
) {
  const base = Deno.makeTempDirSync({ prefix: "vigo-fleet-link-" });
  const ca = await createFleetCa({ commonName: "fleet link test CA" });
  const issue = (hostname: string) =>
    issueEnvoyCertificate({
      caKeyPem: ca.keyPem,
      caCertPem: ca.certPem,
      hostname,
      ips: ["127.0.0.1"],
    });
  const envoy = await issue("envoy-a");
  const serverCert = await issue(options.serverName ?? "fleet-1");
  const fake: FakeServer = {
    checkin: () => answer(PUBLISHED.digest),
    policy: () => ({ status: 200, json: PUBLISHED }),
    names: () => ({
      status: 200,
      body: new TextEncoder().encode(
        JSON.stringify({ version: 1, names: { dan: [KEY] } }),
      ),
      headers: { "content-type": "application/json" },
    }),
    calls: { checkin: 0, policy: 0, names: 0 },
    received: [],
  };
  const serverLines: Line[] = [];
  const server = await startSwarmServer({
    listen: "127.0.0.1",
    port: 0,
    caPem: ca.certPem,
    certPem: serverCert.certPem,
    keyPem: serverCert.keyPem,
    log: memoryLog(serverLines),
    routes: [
      {
        method: "POST",
        pattern: "/fleet/checkin",
        maxBodyBytes: 256 * 1024,
        handler: (ctx) => {
          fake.calls.checkin++;
          assert.equal(ctx.headers["content-type"], "application/json");
          fake.received.push(
            parseTraits(ctx.body, { certificateHost: ctx.peer.subject }),
          );
          try {
            return fake.checkin();
          } finally {
            fake.onCheckIn?.();
          }
        },
      },
      {
        method: "GET",
        pattern: "/fleet/policy",
        handler: () => {
          fake.calls.policy++;
          return fake.policy();
        },
      },
      {
        method: "GET",
        pattern: "/fleet/names",
        handler: () => {
          fake.calls.names++;
          return fake.names();
        },
      },
    ],
  });
  try {
    const paths = systemPathsUnder(base);
    Deno.mkdirSync(paths.etc, { recursive: true });
    Deno.writeTextFileSync(`${paths.etc}/ca.crt`, ca.certPem);
    Deno.writeTextFileSync(`${paths.etc}/tls.crt`, envoy.certPem);
    Deno.writeTextFileSync(`${paths.etc}/tls.key`, envoy.keyPem, {
      mode: 0o600,
    });
    Deno.writeTextFileSync(
      `${paths.etc}/agent.yaml`,
      `hostname: envoy-a\nmanaged_users: homes\nhosts: {fleet-1: 127.0.0.1}\n` +
        `server: {host: fleet-1, port: ${server.port}}\n` +
        `reactors: {checkin_s: ${options.checkinS ?? 60}, names_s: 3600}\n`,
    );
    const lines: Line[] = [];
    await fn({
      config: loadAgentConfig(paths),
      fake,
      lines,
      log: memoryLog(lines),
    });
  } finally {
    await server.close();
    Deno.removeSync(base, { recursive: true });
  }
}

Deno.test("check-in: traits delivered, the announced policy applied once, others' files kept", async () => {
  await withFleet(async ({ config, fake, lines, log }) => {
    const { paths } = config;
    // One user from `vigo config apply`, one from an earlier fleet policy.
    writePolicies(
      paths,
      [{ user: "zed", home: "/home/zed", puddle: true, gitback: false }],
      "/srv/usercrates/zed.vgo",
    );
    writePolicies(
      paths,
      [{ user: "old", home: "/home/old", puddle: true, gitback: true }],
      "fleet server fleet-0",
    );
    const tls = readSwarmTls(config);

    const first = await checkInOnce(config, log, tls);
    assert.deepEqual(first, {
      result: "recorded",
      checkinSeconds: 60,
      policy: PUBLISHED.digest,
      policyAction: "converged",
    });
    assert.equal(fake.calls.checkin, 1);
    assert.deepEqual(fake.received[0], {
      v: 1,
      envoy: "envoy-a",
      at: (fake.received[0] as { at: number }).at,
      users: [],
    });
    assert.deepEqual(policyUsers(paths), ["ann", "dan", "zed"]);
    assert.equal(readPolicy(paths, "dan")?.source, "fleet server fleet-1");
    assert.equal(readPolicy(paths, "dan")?.gitback, true);
    assert.equal(readPolicy(paths, "ann")?.gitback, false);
    assert.equal(readPolicy(paths, "zed")?.source, "/srv/usercrates/zed.vgo");
    const record = readFleetPolicyRecord(paths)!;
    assert.equal(record.digest, PUBLISHED.digest);
    assert.equal(record.published_at, PUBLISHED.published_at);
    assert.deepEqual(record.users, ["ann", "dan"]);
    assert.equal(Deno.statSync(fleetPolicyPath(paths)).mode! & 0o777, 0o644);
    assert.ok(
      lines.some((l) =>
        l.message === "policy converged" && l.fields?.users === 2 &&
        l.fields?.removed === 1
      ),
    );

    // The same digest again: nothing fetched, nothing rewritten.
    const again = await checkInOnce(config, log, tls);
    assert.equal(again.policyAction, "current");
    assert.equal(fake.calls.policy, 1);

    // No policy published: nothing happens to the files.
    fake.checkin = () => answer(null);
    assert.equal((await checkInOnce(config, log, tls)).policyAction, "none");
    assert.deepEqual(policyUsers(paths), ["ann", "dan", "zed"]);
  });
});

Deno.test("check-in: a policy other than the announced one, or malformed, applies nothing", async () => {
  await withFleet(async ({ config, fake, log }) => {
    const tls = readSwarmTls(config);
    const other = publishedPolicy(USERS.slice(0, 1), "2026-01-02T00:00:00Z");
    const cases: [() => SwarmReply, RegExp][] = [
      [() => ({ status: 200, json: other }), /announced policy .* but served/],
      [
        () => ({ status: 200, json: { ...PUBLISHED, digest: other.digest } }),
        /digest does not match/,
      ],
      [() => ({ status: 200, json: [] }), /malformed/],
      [() => {
        throw new HttpError(404, "no usercrate policy has been published.");
      }, /HTTP 404: no usercrate policy has been published/],
    ];
    for (const [policy, reason] of cases) {
      fake.policy = policy;
      const outcome = await checkInOnce(config, log, tls);
      assert.equal(outcome.policyAction, "refused");
      assert.match(outcome.policyError!, reason);
      assert.deepEqual(policyUsers(config.paths), []);
      assert.equal(readFleetPolicyRecord(config.paths), null);
    }
  });
});

Deno.test("check-in: refusals and bad answers reject with the server's reason", async () => {
  await withFleet(async ({ config, fake, log }) => {
    const tls = readSwarmTls(config);
    fake.checkin = () => {
      throw new HttpError(403, "these traits are for someone else.");
    };
    await assert.rejects(
      checkInOnce(config, log, tls),
      /fleet-1 answered POST \/fleet\/checkin with HTTP 403: these traits are for someone else\./,
    );
    fake.checkin = () => ({
      status: 200,
      json: { result: "stored", checkin_s: 60, policy: null },
    });
    await assert.rejects(checkInOnce(config, log, tls), /something other than/);
    fake.checkin = () => ({
      status: 200,
      json: { result: "recorded", checkin_s: 60, policy: "../x" },
    });
    await assert.rejects(checkInOnce(config, log, tls), /something other than/);
    assert.deepEqual(policyUsers(config.paths), []);
  });
});

Deno.test("a listener with another fleet name's certificate gets nothing", async () => {
  await withFleet(async ({ config, fake, log }) => {
    const tls = readSwarmTls(config);
    await assert.rejects(
      checkInOnce(config, log, tls),
      /certificate at 127\.0\.0\.1:\d+ is not for the fleet server fleet-1 \(.*envoy-b/,
    );
    await assert.rejects(
      refreshNamesOnce(config, log, tls),
      /not for the fleet server fleet-1/,
    );
    assert.deepEqual(fake.calls, { checkin: 0, policy: 0, names: 0 });
  }, { serverName: "envoy-b" });
});

Deno.test("names: the map is written as received, 0644, readable; a bad one keeps the old", async () => {
  await withFleet(async ({ config, fake, lines, log }) => {
    const tls = readSwarmTls(config);
    const path = nameMapPath(config.paths.varLib);
    const dir = path.slice(0, path.lastIndexOf("/"));
    // The bindings directory, made first, left its parents private.
    Deno.mkdirSync(`${dir}/bindings`, { recursive: true, mode: 0o700 });
    assert.equal(await refreshNamesOnce(config, log, tls), 1);
    const sent = new TextDecoder().decode(fake.names().body);
    assert.equal(Deno.readTextFileSync(path), sent);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o644);
    assert.equal(Deno.statSync(dir).mode! & 0o777, 0o755);
    assert.equal(Deno.statSync(`${dir}/bindings`).mode! & 0o777, 0o700);
    assert.deepEqual(readNameMap(path).get("dan"), [KEY]);
    assert.equal(
      lines.filter((l) => l.message === "name map updated").length,
      1,
    );
    // Unchanged: not written again.
    await refreshNamesOnce(config, log, tls);
    assert.equal(
      lines.filter((l) => l.message === "name map updated").length,
      1,
    );

    const bad: [Uint8Array | unknown, RegExp][] = [
      [{ version: 2, names: {} }, /malformed/],
      [{ version: 1, names: [] }, /malformed/],
      [new Uint8Array([0xff, 0xfe]), /not UTF-8 JSON/],
    ];
    for (const [body, reason] of bad) {
      fake.names = () =>
        body instanceof Uint8Array
          ? { status: 200, body }
          : { status: 200, json: body };
      await assert.rejects(refreshNamesOnce(config, log, tls), reason);
      assert.equal(Deno.readTextFileSync(path), sent);
    }
    fake.names = () => {
      throw new HttpError(500, "internal error");
    };
    await assert.rejects(refreshNamesOnce(config, log, tls), /HTTP 500/);
    assert.equal(Deno.readTextFileSync(path), sent);
  });
});

Deno.test("no server: the link does nothing", () => {
  const link = startFleetLink(
    { server: null } as AgentConfig,
    memoryLog([]),
  );
  link.stop();
});

Deno.test({
  name:
    "the link checks in at once and periodically, warning once per distinct trouble",
  // The link's last exchange may still be in flight when it stops.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withFleet(async ({ config, fake, lines, log }) => {
      const replies = [
        () => {
          throw new HttpError(500, "the store is busy.");
        },
        () => {
          throw new HttpError(500, "the store is busy.");
        },
        () => answer(null, 30),
        () => answer(null, 30),
      ];
      fake.checkin = () => replies[Math.min(fake.calls.checkin, 4) - 1]();
      const done = Promise.withResolvers<void>();
      fake.onCheckIn = () => {
        if (fake.calls.checkin >= 5) done.resolve();
      };
      const link = startFleetLink(config, log);
      try {
        await done.promise;
      } finally {
        link.stop();
      }
      const warned = (message: string) =>
        lines.filter((l) => l.level === "WARN" && l.message === message);
      assert.equal(warned("fleet check-in failed").length, 1);
      assert.match(
        String(warned("fleet check-in failed")[0].fields?.error),
        /HTTP 500: the store is busy/,
      );
      assert.equal(
        lines.filter((l) => l.message === "fleet check-in works again").length,
        1,
      );
      const period = warned("fleet server expects another check-in period");
      assert.equal(period.length, 1);
      assert.equal(period[0].fields?.server_checkin_s, 30);
      assert.equal(lines.filter((l) => l.level === "ERROR").length, 0);
    }, { checkinS: 0.01 });
  },
});
