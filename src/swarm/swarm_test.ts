import assert from "node:assert/strict";
import { createFleetCa, issueEnvoyCertificate } from "../ca/ca.ts";
import { formatLogLine, type LogFields, type Logger } from "../platform/log.ts";
import { swarmRequest, type SwarmTls } from "./swarm_client.ts";
import { rawPost } from "../../tests/support/raw_https.ts";
import {
  HttpError,
  SpoolQuota,
  startSwarmServer,
  type SwarmRoute,
} from "./swarm_server.ts";

interface LogLine {
  level: string;
  message: string;
  fields: LogFields;
}

function memoryLogger(lines: LogLine[]): Logger {
  const at = (level: string) => (message: string, fields: LogFields = {}) => {
    lines.push({ level, message, fields });
  };
  return { info: at("INFO"), warn: at("WARN"), error: at("ERROR") };
}

/** A fleet (server + client certs), a stranger CA, and a running server. */
async function withServer(
  routes: SwarmRoute[],
  fn: (s: {
    url: (path: string) => string;
    client: SwarmTls;
    stranger: SwarmTls;
    lines: LogLine[];
  }) => Promise<void>,
  options: { requestTimeoutMs?: number; defaultMaxBodyBytes?: number } = {},
) {
  const ca = await createFleetCa({ commonName: "swarm test CA" });
  const issue = (caPair: { keyPem: string; certPem: string }, host: string) =>
    issueEnvoyCertificate({
      caKeyPem: caPair.keyPem,
      caCertPem: caPair.certPem,
      hostname: host,
      ips: ["127.0.0.1"],
    });
  const server = await issue(ca, "envoy-server");
  const client = await issue(ca, "envoy-client");
  const otherCa = await createFleetCa({ commonName: "another CA" });
  const stranger = await issue(otherCa, "envoy-stranger");
  const lines: LogLine[] = [];
  const running = await startSwarmServer({
    listen: "127.0.0.1",
    port: 0,
    caPem: ca.certPem,
    certPem: server.certPem,
    keyPem: server.keyPem,
    routes,
    log: memoryLogger(lines),
    ...options,
  });
  try {
    await fn({
      url: (path) => `https://127.0.0.1:${running.port}${path}`,
      client: { caPem: ca.certPem, ...client },
      // Trusts our CA (so the server is accepted) but presents a stranger's cert.
      stranger: { caPem: ca.certPem, ...stranger },
      lines,
    });
  } finally {
    await running.close();
  }
}

function refused(lines: LogLine[]): boolean {
  return lines.some((l) =>
    l.level === "WARN" && l.message === "TLS handshake refused"
  );
}

function counted(calls: { n: number }, route: Omit<SwarmRoute, "handler">) {
  return {
    ...route,
    handler: (ctx: Parameters<SwarmRoute["handler"]>[0]) => {
      calls.n++;
      return {
        status: 200,
        json: {
          peer: ctx.peer.subject,
          params: ctx.params,
          q: ctx.query.get("q"),
          size: ctx.body.length,
        },
      };
    },
  };
}

Deno.test("a fleet client reaches the handler, which sees its CN", async () => {
  const calls = { n: 0 };
  await withServer(
    [counted(calls, { method: "GET", pattern: "/swarm/echo/:user/:item" })],
    async ({ url, client, lines }) => {
      const response = await swarmRequest(
        client,
        url("/swarm/echo/d%C3%A1n/x%20y?q=1"),
      );
      assert.equal(response.status, 200);
      assert.deepEqual(response.json(), {
        peer: "envoy-client",
        params: { user: "dán", item: "x y" },
        q: "1",
        size: 0,
      });
      assert.equal(calls.n, 1);
      const logged = lines.find((l) => l.message === "swarm request");
      assert.deepEqual(logged?.fields, {
        method: "GET",
        path: "/swarm/echo/d%C3%A1n/x%20y",
        status: 200,
        peer: "envoy-client",
      });
    },
  );
});

Deno.test("a certificate from another CA is refused at the handshake", async () => {
  const calls = { n: 0 };
  await withServer(
    [counted(calls, { method: "GET", pattern: "/swarm/health" })],
    async ({ url, stranger, lines }) => {
      await assert.rejects(
        swarmRequest(stranger, url("/swarm/health"), { timeoutMs: 5_000 }),
        /unreachable/,
      );
      assert.equal(calls.n, 0);
      assert.ok(!lines.some((l) => l.message === "swarm request"));
      for (let i = 0; i < 50 && !refused(lines); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(refused(lines), "the server logged the refused handshake");
    },
  );
});

Deno.test("a client without a certificate is refused at the handshake", async () => {
  const calls = { n: 0 };
  await withServer(
    [counted(calls, { method: "GET", pattern: "/swarm/health" })],
    async ({ url, client }) => {
      const bare = Deno.createHttpClient({ caCerts: [client.caPem] });
      try {
        await assert.rejects(
          fetch(url("/swarm/health"), {
            client: bare,
            signal: AbortSignal.timeout(5_000),
          }).then((r) => r.arrayBuffer()),
        );
      } finally {
        bare.close();
      }
      assert.equal(calls.n, 0);
    },
  );
});

Deno.test("oversized bodies get 413 without reaching the handler", async () => {
  const calls = { n: 0 };
  await withServer(
    [
      counted(calls, {
        method: "POST",
        pattern: "/swarm/small",
        maxBodyBytes: 1024,
      }),
      counted(calls, { method: "POST", pattern: "/swarm/default" }),
    ],
    async ({ url, client }) => {
      const declared = await swarmRequest(client, url("/swarm/small"), {
        method: "POST",
        body: new Uint8Array(1025),
      });
      assert.equal(declared.status, 413);
      assert.match(declared.json<{ error: string }>().error, /1024 bytes/);
      // A streamed body (no Content-Length) is cut at the limit.
      const chunk = new Uint8Array(64 * 1024);
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 4 * 1024 * 1024) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const tlsClient = Deno.createHttpClient({
        caCerts: [client.caPem],
        cert: client.certPem,
        key: client.keyPem,
      });
      try {
        const streamed = await fetch(url("/swarm/default"), {
          method: "POST",
          body: stream,
          client: tlsClient,
        });
        assert.equal(streamed.status, 413);
        assert.match((await streamed.json()).error, /1048576 bytes/);
      } finally {
        tlsClient.close();
      }
      // A body that never ends is answered all the same.
      const endless = Deno.createHttpClient({
        caCerts: [client.caPem],
        cert: client.certPem,
        key: client.keyPem,
      });
      try {
        const forever = await fetch(url("/swarm/small"), {
          method: "POST",
          body: new ReadableStream<Uint8Array>({
            pull: (controller) => controller.enqueue(chunk),
          }),
          client: endless,
        });
        assert.equal(forever.status, 413);
        await forever.body?.cancel();
      } finally {
        endless.close();
      }
      // Within the limit is fine.
      const fits = await swarmRequest(client, url("/swarm/small"), {
        method: "POST",
        body: new Uint8Array(1024),
      });
      assert.equal(fits.status, 200);
      assert.equal(calls.n, 1);
    },
    { defaultMaxBodyBytes: 1024 * 1024 },
  );
});

Deno.test("errors are JSON: 400, 404, 405, handler errors and 500", async () => {
  const route = (pattern: string, handler: SwarmRoute["handler"]) => ({
    method: "POST" as const,
    pattern,
    handler,
  });
  await withServer(
    [
      route("/swarm/json", (ctx) => ({ status: 200, json: ctx.json() })),
      route("/swarm/teapot", () => {
        throw new HttpError(409, "the project is already held here.");
      }),
      route("/swarm/crash", () => {
        throw new Error("secret detail");
      }),
      route("/swarm/bytes/:name", (ctx) => ({
        status: 201,
        body: new TextEncoder().encode(ctx.params.name),
        headers: { "x-name": ctx.params.name },
      })),
    ],
    async ({ url, client, lines }) => {
      const post = (path: string, body = "{}") =>
        swarmRequest(client, url(path), { method: "POST", body });
      const error = (r: { json<T>(): T }) => r.json<{ error: string }>().error;

      const good = await post("/swarm/json", '{"a":[1]}');
      assert.deepEqual(good.json(), { a: [1] });

      const malformed = await post("/swarm/json", "{a:");
      assert.equal(malformed.status, 400);
      assert.match(error(malformed), /request body is not valid JSON/);

      const missing = await post("/swarm/nope");
      assert.equal(missing.status, 404);
      assert.match(error(missing), /no route for \/swarm\/nope/);

      const wrong = await swarmRequest(client, url("/swarm/json"));
      assert.equal(wrong.status, 405);
      assert.match(error(wrong), /GET is not allowed/);

      const conflict = await post("/swarm/teapot");
      assert.equal(conflict.status, 409);
      assert.equal(error(conflict), "the project is already held here.");

      const crash = await post("/swarm/crash");
      assert.equal(crash.status, 500);
      assert.equal(error(crash), "internal error");
      assert.ok(
        lines.some((l) =>
          l.level === "ERROR" && l.fields.error === "secret detail"
        ),
      );

      const slash = await post("/swarm/bytes/a%2Fb");
      assert.equal(slash.status, 400);
      assert.match(error(slash), /path parameter name/);

      const bytes = await post("/swarm/bytes/n1");
      assert.equal(bytes.status, 201);
      assert.equal(new TextDecoder().decode(bytes.body), "n1");
    },
  );
});

Deno.test("a request that takes too long gets 408", async () => {
  const uploads = { n: 0 };
  await withServer(
    [{
      method: "GET",
      pattern: "/swarm/slow",
      handler: async () => {
        await new Promise((r) => setTimeout(r, 1_500));
        return { status: 200, json: {} };
      },
    }, counted(uploads, { method: "POST", pattern: "/swarm/upload" })],
    async ({ url, client }) => {
      const started = Date.now();
      const slow = await swarmRequest(client, url("/swarm/slow"));
      assert.equal(slow.status, 408);
      assert.match(slow.json<{ error: string }>().error, /too long/);
      assert.ok(Date.now() - started < 1_400);
      // A body that stalls after its first bytes is cut off the same way.
      const stalling = Deno.createHttpClient({
        caCerts: [client.caPem],
        cert: client.certPem,
        key: client.keyPem,
      });
      let first = true;
      try {
        const stalled = await fetch(url("/swarm/upload"), {
          method: "POST",
          body: new ReadableStream<Uint8Array>({
            async pull(controller) {
              if (first) {
                first = false;
                return controller.enqueue(new Uint8Array(10));
              }
              await new Promise((r) => setTimeout(r, 2_000));
              controller.close();
            },
          }),
          client: stalling,
        });
        assert.equal(stalled.status, 408);
        await stalled.body?.cancel();
      } finally {
        stalling.close();
      }
      assert.equal(uploads.n, 0);
      // Let the abandoned handler and stream finish before the server closes.
      await new Promise((r) => setTimeout(r, 2_000));
    },
    { requestTimeoutMs: 300 },
  );
});

Deno.test("an unreachable host is a clear error", async () => {
  const ca = await createFleetCa({ commonName: "t" });
  const pair = await issueEnvoyCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    hostname: "h",
    ips: ["127.0.0.1"],
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    swarmRequest(
      { caPem: ca.certPem, ...pair },
      `https://127.0.0.1:${port}/swarm/health`,
      { peer: "envoy-gone" },
    ),
    (error: Error & { hint?: string }) => {
      assert.match(
        error.message,
        new RegExp(
          `^envoy-gone \\(127\\.0\\.0\\.1:${port}\\) is unreachable at https://127\\.0\\.0\\.1:${port}/swarm/health \\(.+\\)\\.$`,
        ),
      );
      assert.match(error.hint ?? "", /vigo agent/);
      return true;
    },
  );
});

Deno.test("log lines quote values with spaces and escape control characters", () => {
  const line = formatLogLine("INFO", "swarm\nrequest", {
    path: "/a b",
    status: 200,
    peer: "envoy-a",
    empty: "",
    skipped: undefined,
  });
  assert.match(
    line,
    /^\d{4}-\d\d-\d\dT\S+Z INFO swarm\\nrequest path="\/a b" status=200 peer=envoy-a empty=""$/,
  );
});

/** Milliseconds until the server closes `conn`, writing `drip` every 50 ms. */
async function msUntilClosed(
  conn: Deno.Conn,
  drip: Uint8Array | null,
  giveUpMs: number,
): Promise<number> {
  const started = Date.now();
  let open = true;
  const dripper = (async () => {
    while (open && drip) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        if (open) await conn.write(drip);
      } catch {
        return;
      }
    }
  })();
  const giveUp = setTimeout(() => conn.close(), giveUpMs);
  try {
    const buffer = new Uint8Array(1024);
    while (await conn.read(buffer) !== null) {
      // Keep reading until the server closes.
    }
  } catch {
    // A reset or a close counts as closed.
  } finally {
    open = false;
    clearTimeout(giveUp);
  }
  await dripper;
  try {
    conn.close();
  } catch {
    // Already closed.
  }
  return Date.now() - started;
}

Deno.test("connections that never complete a request are cut off", async () => {
  await withServer([], async ({ url, client }) => {
    const { port } = new URL(url("/"));
    // TCP only, no TLS handshake.
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: +port });
    assert.ok(await msUntilClosed(tcp, null, 3_000) < 2_000);
    // Headers trickling in one byte at a time.
    const tls = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: +port,
      caCerts: [client.caPem],
      cert: client.certPem,
      key: client.keyPem,
    });
    await tls.write(new TextEncoder().encode("GET /swarm/x HTTP/1.1\r\n"));
    const dripped = await msUntilClosed(
      tls,
      new TextEncoder().encode("X"),
      3_000,
    );
    assert.ok(dripped < 2_000, `closed after ${dripped} ms`);
    // A request target that is not a path is refused.
    const odd = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: +port,
      caCerts: [client.caPem],
      cert: client.certPem,
      key: client.keyPem,
    });
    await odd.write(
      new TextEncoder().encode("GET //elsewhere/x HTTP/1.1\r\nHost: a\r\n\r\n"),
    );
    const buffer = new Uint8Array(4096);
    let answer = "";
    try {
      for (let n; (n = await odd.read(buffer)) !== null;) {
        answer += new TextDecoder().decode(buffer.subarray(0, n));
      }
    } catch {
      // The server closes after answering.
    } finally {
      odd.close();
    }
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /"error":"the request target is not a path/);
  }, { requestTimeoutMs: 300 });
});

Deno.test("streamBody routes answer on headers alone, before reading the body", async () => {
  const route: SwarmRoute = {
    method: "POST",
    pattern: "/swarm/stream",
    maxBodyBytes: 1024 * 1024 * 1024,
    streamBody: true,
    handler: (ctx) => {
      if (ctx.headers["x-ok"] !== "yes") {
        throw new HttpError(403, "no.");
      }
      return { status: 200, json: {} };
    },
  };
  await withServer([route], async ({ url, client }) => {
    const { port } = new URL(url("/"));
    const total = 512 * 1024 * 1024;
    const refused = await rawPost(
      client,
      { hostname: "127.0.0.1", port: +port },
      `POST /swarm/stream HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`,
      total,
    );
    assert.equal(refused.status, 403, refused.answer);
    // Answered long before the body was through.
    assert.ok(
      refused.sentBeforeAnswer < total / 4,
      `${refused.sentBeforeAnswer} bytes went out before the answer`,
    );
  });
});

Deno.test("spooled bodies go to a private file within the cap and the quota, and are removed after", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-spool-test-" });
  const spool = { dir: `${dir}/spool`, quota: new SpoolQuota(3 * 1024 * 1024) };
  const seen: { size: number; mode: number; dirMode: number; text: string }[] =
    [];
  let release = Promise.withResolvers<void>();
  let arrived = Promise.withResolvers<void>();
  const route: SwarmRoute = {
    method: "POST",
    pattern: "/swarm/spool",
    maxBodyBytes: 2 * 1024 * 1024,
    streamBody: true,
    handler: async (ctx) => {
      const body = await ctx.spoolBody(spool);
      const data = Deno.readFileSync(body.path);
      seen.push({
        size: body.bytes,
        mode: Deno.statSync(body.path).mode! & 0o777,
        dirMode: Deno.statSync(spool.dir).mode! & 0o777,
        text: new TextDecoder().decode(data.subarray(0, 5)),
      });
      if (ctx.headers["x-hold"]) {
        arrived.resolve();
        await release.promise;
      }
      return { status: 200, json: { size: body.bytes } };
    },
  };
  try {
    await withServer([route], async ({ url, client }) => {
      const { port } = new URL(url("/"));
      const address = { hostname: "127.0.0.1", port: +port };
      const entries = () => [...Deno.readDirSync(spool.dir)].map((e) => e.name);
      const post = (size: number, extra = "", declared = true) =>
        rawPost(
          client,
          address,
          `POST /swarm/spool HTTP/1.1\r\nHost: x\r\n${extra}${
            declared
              ? `Content-Length: ${size}\r\n`
              : "Transfer-Encoding: chunked\r\n"
          }\r\n`,
          declared ? size : 0,
        );

      // Within the cap: spooled, 0600 in a 0700 directory, then removed.
      const ok = await swarmRequest(client, url("/swarm/spool"), {
        method: "POST",
        body: new TextEncoder().encode("hello spool"),
      });
      assert.equal(ok.status, 200);
      assert.deepEqual(seen[0], {
        size: 11,
        mode: 0o600,
        dirMode: 0o700,
        text: "hello",
      });
      assert.deepEqual(entries(), []);
      assert.equal(spool.quota.used, 0);

      // Over the cap, declared: refused unread, nothing on disk.
      const declared = await post(64 * 1024 * 1024);
      assert.equal(declared.status, 413, declared.answer);
      assert.ok(declared.sentBeforeAnswer < 16 * 1024 * 1024);

      // Over the cap, streamed (no length): cut at the cap, file removed.
      const tlsClient = Deno.createHttpClient({
        caCerts: [client.caPem],
        cert: client.certPem,
        key: client.keyPem,
      });
      try {
        let sent = 0;
        const chunk = new Uint8Array(64 * 1024);
        const streamed = await fetch(url("/swarm/spool"), {
          method: "POST",
          client: tlsClient,
          body: new ReadableStream<Uint8Array>({
            pull(controller) {
              if (sent >= 64 * 1024 * 1024) return controller.close();
              sent += chunk.length;
              controller.enqueue(chunk);
            },
          }),
        });
        assert.equal(streamed.status, 413);
        assert.match((await streamed.json()).error, /2097152 bytes/);
        assert.ok(sent < 64 * 1024 * 1024, `${sent} bytes sent`);
      } finally {
        tlsClient.close();
      }
      assert.deepEqual(entries(), []);
      assert.equal(spool.quota.used, 0);

      // The quota is shared: one held body of 2 MiB leaves 1 MiB for others.
      const held = swarmRequest(client, url("/swarm/spool"), {
        method: "POST",
        body: new Uint8Array(2 * 1024 * 1024),
        headers: { "x-hold": "1" },
      });
      await arrived.promise;
      assert.equal(spool.quota.used, 2 * 1024 * 1024);
      assert.equal(entries().length, 1);
      const over = await post(1536 * 1024);
      assert.equal(over.status, 413, over.answer);
      assert.match(over.answer, /3145728 bytes this envoy keeps/);
      release.resolve();
      assert.equal((await held).status, 200);
      assert.deepEqual(entries(), []);
      assert.equal(spool.quota.used, 0);
      release = Promise.withResolvers<void>();
      arrived = Promise.withResolvers<void>();
      // With the quota free again the same body fits.
      const fits = await swarmRequest(client, url("/swarm/spool"), {
        method: "POST",
        body: new Uint8Array(1536 * 1024),
      });
      assert.equal(fits.status, 200);
      assert.deepEqual(entries(), []);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
