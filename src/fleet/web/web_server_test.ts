import assert from "node:assert/strict";
import type { Logger } from "../../platform/log.ts";
import type { PuddleRow } from "../health.ts";
import type { GitbackRow } from "../gitback_mesh.ts";
import type { PageInfo } from "./pages.ts";
import {
  isLoopbackListen,
  MAX_TARGET_CHARS,
  startWebServer,
  type WebSource,
} from "./web_server.ts";

const K1 = "ed25519:" + "a".repeat(64);
const P1 = "1".repeat(64);
const P2 = "2".repeat(64);

const PUDDLE: PuddleRow = {
  key: K1,
  short_key: "ed25519:aaaaaaaaaaaa",
  owner: "dan",
  envoys: ["envoy-a"],
  users: ["dan"],
  unlocked_sessions: 0,
  badge: "Warning",
  reasons: ["<script>alert(1)</script>"],
};

const PROJECT: GitbackRow = {
  project_id: P1,
  handle: "no<tes>",
  scope: "swarm-wide",
  founder: K1,
  friendly_url: null,
  url: `gitback://${P1}/no<tes>`,
  envoys: [{
    envoy: "envoy-a",
    state: "in sync",
    stale: false,
    signed_seq: 1,
    heads_count: 1,
    repo_bytes: 10,
    revokes: 0,
    leaves: 0,
    delegations: 0,
    tombstoned: false,
  }],
  members: [K1],
  badge: "Healthy",
  reasons: [],
};

/** An in-memory source; `failures` makes the next calls throw. */
class FakeSource implements WebSource {
  failures = 0;
  nows: number[] = [];
  #check(now: number) {
    this.nows.push(now);
    if (this.failures > 0) {
      this.failures--;
      throw new Error("the store is locked");
    }
  }
  puddles(now: number): PuddleRow[] {
    this.#check(now);
    return [PUDDLE];
  }
  gitback(now: number): GitbackRow[] {
    this.#check(now);
    return [PROJECT];
  }
  project(id: string, now: number): GitbackRow | null {
    this.#check(now);
    return id === P1 ? PROJECT : null;
  }
  info(now: number): PageInfo {
    this.#check(now);
    return { generatedAt: "2025-03-04T05:06:07.000Z", envoys: 1, periodS: 60 };
  }
}

interface Logged {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

function recorder(lines: Logged[]): Logger {
  const at = (level: string) => (message: string, fields?: object) => {
    lines.push({ level, message, fields: fields as Record<string, unknown> });
  };
  return { info: at("info"), warn: at("warn"), error: at("error") };
}

interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * One HTTP/1.1 exchange over a raw socket, so that the test controls the
 * Host header and the request target byte for byte.
 */
async function exchange(
  port: number,
  options: {
    method?: string;
    target?: string;
    host?: string | null;
    headers?: string[];
    body?: string;
  } = {},
): Promise<Reply> {
  const host = options.host === undefined ? `127.0.0.1:${port}` : options.host;
  const head = [
    `${options.method ?? "GET"} ${options.target ?? "/"} HTTP/1.1`,
    ...(host === null ? [] : [`Host: ${host}`]),
    "Connection: close",
    ...(options.headers ?? []),
    "",
    options.body ?? "",
  ].join("\r\n");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  try {
    await conn.write(new TextEncoder().encode(head));
    const buffer = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } finally {
    conn.close();
  }
  const raw = new TextDecoder().decode(
    new Uint8Array(chunks.flatMap((c) => [...c])),
  );
  const split = raw.indexOf("\r\n\r\n");
  const [statusLine, ...lines] = raw.slice(0, split).split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let body = raw.slice(split + 4);
  if (headers.get("transfer-encoding") === "chunked") {
    let decoded = "";
    for (;;) {
      const end = body.indexOf("\r\n");
      const size = parseInt(body.slice(0, end), 16);
      if (!size) break;
      decoded += body.slice(end + 2, end + 2 + size);
      body = body.slice(end + 2 + size + 2);
    }
    body = decoded;
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

/** Runs `fn` against a fresh server on 127.0.0.1, closing it after. */
function withServer(
  fn: (port: number, source: FakeSource, log: Logged[]) => Promise<void>,
) {
  return async () => {
    const source = new FakeSource();
    const log: Logged[] = [];
    const server = await startWebServer({
      listen: "127.0.0.1",
      port: 0,
      source,
      log: recorder(log),
    });
    try {
      await fn(server.port, source, log);
    } finally {
      await server.close();
    }
  };
}

function assertCommonHeaders(reply: Reply) {
  assert.equal(
    reply.headers.get("content-security-policy"),
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  );
  assert.equal(reply.headers.get("x-content-type-options"), "nosniff");
  assert.equal(reply.headers.get("referrer-policy"), "no-referrer");
  assert.equal(reply.headers.get("cache-control"), "no-store");
  assert.match(reply.headers.get("content-type") ?? "", /; charset=utf-8$/);
}

Deno.test("a non-loopback listen address is refused", async () => {
  for (const ok of ["127.0.0.1", "127.1.2.3", "127.255.255.255", "::1"]) {
    assert.ok(isLoopbackListen(ok), ok);
  }
  assert.ok(isLoopbackListen("localhost"));
  const refused = [
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "192.168.1.5",
    "128.0.0.1",
    "127.0.0.256",
    "127.0.0.01",
    "127.0.0.1.example",
    "fleet.example",
    "",
  ];
  for (const listen of refused) {
    assert.ok(!isLoopbackListen(listen), listen);
    await assert.rejects(
      startWebServer({
        listen,
        port: 0,
        source: new FakeSource(),
        log: recorder([]),
      }),
      /loopback address only .*SSH tunnel/,
    );
  }
  await assert.rejects(
    startWebServer({
      listen: "127.0.0.1",
      port: 70000,
      source: new FakeSource(),
      log: recorder([]),
    }),
    /not a TCP port/,
  );
});

Deno.test(
  "the pages answer with their content types and security headers",
  withServer(async (port, source) => {
    const before = Math.floor(Date.now() / 1000);
    const root = await exchange(port);
    assert.equal(root.status, 302);
    assert.equal(root.headers.get("location"), "/swarm/puddle");
    assertCommonHeaders(root);

    const puddles = await exchange(port, { target: "/swarm/puddle" });
    assert.equal(puddles.status, 200);
    assertCommonHeaders(puddles);
    assert.equal(
      puddles.headers.get("content-type"),
      "text/html; charset=utf-8",
    );
    assert.ok(puddles.body.includes('<table id="puddles">'));
    assert.ok(puddles.body.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert.ok(!puddles.body.includes("<script"));

    const gitback = await exchange(port, { target: "/swarm/gitback?x=1" });
    assert.equal(gitback.status, 200);
    assert.ok(gitback.body.includes(`data-project="${P1}"`));
    assert.ok(gitback.body.includes(">no&lt;tes&gt;</a>"));

    const project = await exchange(port, { target: `/swarm/gitback/${P1}` });
    assert.equal(project.status, 200);
    assertCommonHeaders(project);
    assert.ok(project.body.includes('<table id="envoys">'));
    assert.ok(!project.body.includes("no<tes>"));

    // The web server reads the clock per request and hands it on.
    const after = Math.floor(Date.now() / 1000);
    assert.ok(source.nows.length > 0);
    assert.ok(source.nows.every((n) => n >= before && n <= after));
  }),
);

Deno.test(
  "the JSON twins carry the rows and the footer facts",
  withServer(async (port) => {
    const puddles = await exchange(port, { target: "/swarm/puddle.json" });
    assert.equal(puddles.status, 200);
    assertCommonHeaders(puddles);
    assert.equal(
      puddles.headers.get("content-type"),
      "application/json; charset=utf-8",
    );
    assert.deepEqual(JSON.parse(puddles.body), {
      generated_at: "2025-03-04T05:06:07.000Z",
      period_s: 60,
      envoys: 1,
      puddles: [PUDDLE],
    });
    const gitback = await exchange(port, { target: "/swarm/gitback.json" });
    assert.deepEqual(JSON.parse(gitback.body), {
      generated_at: "2025-03-04T05:06:07.000Z",
      period_s: 60,
      envoys: 1,
      projects: [PROJECT],
    });
    const project = await exchange(port, {
      target: `/swarm/gitback/${P1}.json`,
    });
    assert.equal(project.status, 200);
    assert.deepEqual(JSON.parse(project.body), PROJECT);
    const missing = await exchange(port, {
      target: `/swarm/gitback/${P2}.json`,
    });
    assert.equal(missing.status, 404);
    assert.match(JSON.parse(missing.body).error, /No envoy reports/);
  }),
);

Deno.test(
  "unknown pages and projects are 404 pages",
  withServer(async (port) => {
    const targets = [
      `/swarm/gitback/${P2}`,
      `/swarm/gitback/${"AB".repeat(32)}`,
      `/swarm/gitback/${P1}/`,
      "/swarm/gitback/",
      "/swarm/puddle/",
      "/swarm",
      "/favicon.ico",
      "/<script>",
    ];
    for (const target of targets) {
      const reply = await exchange(port, { target });
      assert.equal(reply.status, 404, target);
      assertCommonHeaders(reply);
      assert.equal(
        reply.headers.get("content-type"),
        "text/html; charset=utf-8",
      );
      assert.ok(reply.body.includes('<p id="message">'), target);
      assert.ok(!reply.body.includes("<script"), target);
    }
  }),
);

Deno.test(
  "a foreign or missing Host is refused with 421",
  withServer(async (port, _source, log) => {
    for (
      const host of [
        `localhost:${port}`,
        `LOCALHOST:${port}`,
        `[::1]:${port}`,
        `127.0.0.1:${port}`,
        `127.9.8.7:${port}`,
      ]
    ) {
      const reply = await exchange(port, { target: "/swarm/puddle", host });
      assert.equal(reply.status, 200, host);
    }
    for (
      const host of [
        `evil.example:${port}`,
        "evil.example",
        "127.0.0.1",
        `127.0.0.1:${port + 1}`,
        "localhost",
        "[::1]",
        `10.0.0.1:${port}`,
        `localhost.evil.example:${port}`,
        null,
      ]
    ) {
      const reply = await exchange(port, { target: "/swarm/puddle", host });
      assert.equal(reply.status, 421, String(host));
      assertCommonHeaders(reply);
      assert.equal(
        reply.headers.get("content-type"),
        "text/plain; charset=utf-8",
      );
      assert.ok(!reply.body.includes("<table"));
    }
    assert.ok(
      log.some((l) => l.level === "warn" && l.fields?.host === "evil.example"),
    );
  }),
);

Deno.test(
  "only GET and HEAD are answered",
  withServer(async (port) => {
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
      const reply = await exchange(port, {
        method,
        target: "/swarm/puddle",
        headers: ["Content-Length: 0"],
      });
      assert.equal(reply.status, 405, method);
      assert.equal(reply.headers.get("allow"), "GET, HEAD");
      assertCommonHeaders(reply);
    }
    const head = await exchange(port, {
      method: "HEAD",
      target: "/swarm/puddle",
    });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assertCommonHeaders(head);
    const get = await exchange(port, { target: "/swarm/puddle" });
    assert.equal(
      head.headers.get("content-length"),
      String(new TextEncoder().encode(get.body).length),
    );
    const withBody = await exchange(port, {
      target: "/swarm/puddle",
      headers: ["Content-Length: 5"],
      body: "hello",
    });
    assert.equal(withBody.status, 413);
  }),
);

Deno.test(
  "a request target over 2048 characters is 414",
  withServer(async (port) => {
    const fits = "/swarm/puddle?" + "a".repeat(MAX_TARGET_CHARS - 14);
    assert.equal(fits.length, MAX_TARGET_CHARS);
    assert.equal((await exchange(port, { target: fits })).status, 200);
    const long = await exchange(port, { target: fits + "a" });
    assert.equal(long.status, 414);
    assertCommonHeaders(long);
  }),
);

Deno.test(
  "a throwing source answers 500 and the server keeps serving",
  withServer(async (port, source, log) => {
    source.failures = 1;
    const failed = await exchange(port, { target: "/swarm/gitback" });
    assert.equal(failed.status, 500);
    assertCommonHeaders(failed);
    assert.equal(
      failed.headers.get("content-type"),
      "text/html; charset=utf-8",
    );
    assert.ok(!failed.body.includes("the store is locked"));
    const errors = log.filter((l) => l.level === "error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].fields?.error, "the store is locked");
    assert.equal(errors[0].fields?.path, "/swarm/gitback");
    const next = await exchange(port, { target: "/swarm/gitback" });
    assert.equal(next.status, 200);
    source.failures = 1;
    assert.equal(
      (await exchange(port, { target: `/swarm/gitback/${P1}.json` })).status,
      500,
    );
    assert.equal(
      (await exchange(port, { target: `/swarm/gitback/${P1}.json` })).status,
      200,
    );
  }),
);

Deno.test("a port in use is refused with a sentence", async () => {
  const log: Logged[] = [];
  const first = await startWebServer({
    listen: "127.0.0.1",
    port: 0,
    source: new FakeSource(),
    log: recorder(log),
  });
  try {
    await assert.rejects(
      startWebServer({
        listen: "127.0.0.1",
        port: first.port,
        source: new FakeSource(),
        log: recorder(log),
      }),
      /cannot listen on 127\.0\.0\.1 port \d+: .*choose another/,
    );
  } finally {
    await first.close();
  }
  assert.ok(log.some((l) => l.message === "web pages listening"));
});
