import assert from "node:assert/strict";
import { UnixSocketClient, UnixSocketError } from "./unix_socket.ts";

/** A Deno Unix listener in a fresh directory; `serve` handles each conn. */
async function withServer(
  serve: (conn: Deno.UnixConn) => Promise<void>,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-sock-" });
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      served.push(
        serve(conn).catch(() => {}).finally(() => {
          try {
            conn.close();
          } catch {
            // Closed by serve.
          }
        }),
      );
    }
  })();
  try {
    await fn(path, dir);
  } finally {
    listener.close();
    await accepting;
    await Promise.all(served);
    Deno.removeSync(dir, { recursive: true });
  }
}

const echo = async (conn: Deno.UnixConn) => {
  const buffer = new Uint8Array(1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return;
    await conn.write(buffer.subarray(0, n));
  }
};

Deno.test("UnixSocketClient talks to a listener and reads its credentials", async () => {
  await withServer(echo, async (path) => {
    const client = await UnixSocketClient.connect(path);
    try {
      const cred = client.peerCredentials();
      assert.equal(cred.uid, Deno.uid());
      assert.equal(cred.gid, Deno.gid());
      assert.equal(cred.pid, Deno.pid);
      const deadline = Date.now() + 5_000;
      await client.write(new TextEncoder().encode("ping\n"), deadline);
      const buffer = new Uint8Array(64);
      const n = await client.read(buffer, deadline);
      assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "ping\n");
    } finally {
      client.close();
    }
  });
});

Deno.test("UnixSocketClient writes more than a socket buffer holds", async () => {
  await withServer(echo, async (path) => {
    const client = await UnixSocketClient.connect(path);
    try {
      const deadline = Date.now() + 10_000;
      const big = crypto.getRandomValues(new Uint8Array(60_000));
      const payload = new Uint8Array(big.length * 8);
      for (let i = 0; i < 8; i++) payload.set(big, i * big.length);
      const reading = (async () => {
        const got = new Uint8Array(payload.length);
        let at = 0;
        while (at < got.length) {
          const n = await client.read(got.subarray(at), deadline);
          if (n === null) break;
          at += n;
        }
        return got.subarray(0, at);
      })();
      await client.write(payload, deadline);
      assert.deepEqual(await reading, payload);
    } finally {
      client.close();
    }
  });
});

Deno.test("UnixSocketClient reports end of stream, a missing socket and a dead one", async () => {
  await withServer(
    (conn) => Promise.resolve(conn.close()),
    async (path, dir) => {
      const client = await UnixSocketClient.connect(path);
      try {
        assert.equal(
          await client.read(new Uint8Array(8), Date.now() + 5_000),
          null,
        );
      } finally {
        client.close();
      }
      await assert.rejects(
        UnixSocketClient.connect(`${dir}/absent.sock`),
        (error: unknown) =>
          error instanceof UnixSocketError && error.code === "ENOENT",
      );
    },
  );
  // A socket file nobody listens on any more: its listener was killed.
  const dir = Deno.makeTempDirSync({ prefix: "vigo-sock-" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${
          JSON.stringify(`${dir}/s.sock`)
        } }); console.log("ready"); setInterval(() => {}, 1000);`,
      ],
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let out = "";
    while (!out.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    assert.ok(Deno.lstatSync(`${dir}/s.sock`).isSocket);
    await assert.rejects(
      UnixSocketClient.connect(`${dir}/s.sock`),
      (error: unknown) =>
        error instanceof UnixSocketError && error.code === "ECONNREFUSED",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("UnixSocketClient's read ends at its deadline, and close wakes a waiting read", async () => {
  const quiet = Promise.withResolvers<void>();
  await withServer(() => quiet.promise, async (path) => {
    const client = await UnixSocketClient.connect(path);
    const started = Date.now();
    await assert.rejects(
      client.read(new Uint8Array(8), Date.now() + 200),
      (error: unknown) =>
        error instanceof UnixSocketError && error.code === "ETIMEDOUT",
    );
    assert.ok(Date.now() - started < 3_000);

    const waiting = client.read(new Uint8Array(8), Date.now() + 60_000);
    const closedAt = Date.now();
    client.close();
    await assert.rejects(waiting);
    assert.ok(Date.now() - closedAt < 3_000, "close woke the waiting poll");
    quiet.resolve();
  });
});

Deno.test("UnixSocketClient refuses a path too long for a socket address", async () => {
  await assert.rejects(
    UnixSocketClient.connect(`/tmp/${"x".repeat(120)}`),
    /more than the 107/,
  );
});
