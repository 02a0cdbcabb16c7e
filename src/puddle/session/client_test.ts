import assert from "node:assert/strict";
import {
  formatPublicKey,
  generateSeed,
  publicKeyFromSeed,
} from "../../crypto/ed25519.ts";
import { SessionClient, SessionError, sessionStatus } from "./client.ts";
import { LineSplitter } from "./protocol.ts";

const IS_ROOT = Deno.uid() === 0;
const NOBODY = 65534;
const CONTEXT = "vigo-swarm/v1/puddle-session-probe";

function newKey(): string {
  const seed = generateSeed();
  const key = formatPublicKey(publicKeyFromSeed(seed));
  seed.fill(0);
  return key;
}

interface FakeHelper {
  /** Directory holding puddle.sock (mode 0700, ours). */
  dir: string;
  socket: string;
  /** A puddle dir whose identity.pub holds `ownKey`. */
  puddleDir: string;
  ownKey: string;
  /** Every op received, in order. */
  ops: string[];
  connections: number;
}

/**
 * An in-process stand-in for the session helper that answers PUBKEY with
 * `helperKey` (the user's own unless given) and SIGN with a dummy
 * signature, or with `answer` when given.
 */
async function withFakeHelper(
  options: {
    helperKey?: string;
    answer?: (op: string) => string | null;
  },
  fn: (fake: FakeHelper) => Promise<void>,
): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "vigo-client-" });
  const dir = `${base}/run`;
  Deno.mkdirSync(dir, { mode: 0o700 });
  const puddleDir = `${base}/puddle`;
  Deno.mkdirSync(puddleDir, { mode: 0o700 });
  const ownKey = newKey();
  Deno.writeTextFileSync(`${puddleDir}/identity.pub`, `${ownKey}\n`);
  const helperKey = options.helperKey ?? ownKey;
  const fake: FakeHelper = {
    dir,
    socket: `${dir}/puddle.sock`,
    puddleDir,
    ownKey,
    ops: [],
    connections: 0,
  };
  const listener = Deno.listen({ transport: "unix", path: fake.socket });
  const conns: Deno.UnixConn[] = [];
  const serve = async (conn: Deno.UnixConn) => {
    const splitter = new LineSplitter();
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        for (const line of splitter.push(buffer.subarray(0, n))) {
          const op = JSON.parse(new TextDecoder().decode(line)).op;
          fake.ops.push(op);
          const custom = options.answer?.(op);
          const reply = custom !== undefined
            ? custom
            : op === "PUBKEY"
            ? JSON.stringify({ ok: true, pubkey: helperKey })
            : op === "SIGN"
            ? JSON.stringify({ ok: true, signature: "00".repeat(64) })
            : JSON.stringify({ ok: false, error: "unsupported" });
          if (reply === null) continue;
          await conn.write(new TextEncoder().encode(reply + "\n"));
        }
      }
    } catch {
      // The client hung up.
    }
  };
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      fake.connections++;
      conns.push(conn);
      served.push(serve(conn));
    }
  })();
  try {
    await fn(fake);
  } finally {
    listener.close();
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await accepting;
    await Promise.all(served);
    Deno.removeSync(base, { recursive: true });
  }
}

Deno.test("the client signs once the helper's key is the user's own", async () => {
  await withFakeHelper({}, async (fake) => {
    const client = await SessionClient.connect(fake.socket, {
      puddleDir: fake.puddleDir,
    });
    try {
      const payload = new TextEncoder().encode("hi");
      assert.equal((await client.sign(CONTEXT, payload)).length, 64);
      assert.equal((await client.sign(CONTEXT, payload)).length, 64);
    } finally {
      client.close();
    }
    // The key is asked for once per connection, before the first SIGN.
    assert.deepEqual(fake.ops, ["PUBKEY", "SIGN", "SIGN"]);
  });
});

Deno.test("a helper holding another key is refused before anything is signed", async () => {
  const stranger = newKey();
  await withFakeHelper({ helperKey: stranger }, async (fake) => {
    const client = await SessionClient.connect(fake.socket, {
      puddleDir: fake.puddleDir,
    });
    try {
      await assert.rejects(
        client.sign(CONTEXT, new TextEncoder().encode("hi")),
        (error: unknown) =>
          error instanceof SessionError &&
          error.message.includes(`holds the key ${stranger}`) &&
          error.message.includes(`not yours (${fake.ownKey}`) &&
          /lock/.test(error.hint ?? ""),
      );
    } finally {
      client.close();
    }
    // A raw SIGN request is held back the same way.
    const raw = await SessionClient.connect(fake.socket, {
      puddleDir: fake.puddleDir,
    });
    try {
      await assert.rejects(
        raw.request({ op: "SIGN", context: CONTEXT, payload: "aGk=" }),
        /holds the key/,
      );
    } finally {
      raw.close();
    }
    // And so is the key itself: PUBKEY never returns a stranger's key.
    const asked = await SessionClient.connect(fake.socket, {
      puddleDir: fake.puddleDir,
    });
    try {
      await assert.rejects(asked.request({ op: "PUBKEY" }), /holds the key/);
    } finally {
      asked.close();
    }
    assert.ok(!fake.ops.includes("SIGN"), `ops seen: ${fake.ops}`);
  });
});

Deno.test("without an identity.pub to compare with, nothing is signed", async () => {
  await withFakeHelper({}, async (fake) => {
    Deno.removeSync(`${fake.puddleDir}/identity.pub`);
    const client = await SessionClient.connect(fake.socket, {
      puddleDir: fake.puddleDir,
    });
    try {
      await assert.rejects(
        client.sign(CONTEXT, new Uint8Array(1)),
        /cannot check the session helper's key/,
      );
    } finally {
      client.close();
    }
    assert.ok(!fake.ops.includes("SIGN"));
  });
});

Deno.test("a symlinked session directory is refused before connecting", async () => {
  await withFakeHelper({}, async (fake) => {
    const link = `${fake.dir}-link`;
    Deno.symlinkSync(fake.dir, link);
    try {
      await assert.rejects(
        SessionClient.connect(`${link}/puddle.sock`),
        (error: unknown) =>
          error instanceof SessionError && !error.locked &&
          error.message.includes(`${link} is a symbolic link (to ${fake.dir})`),
      );
      await assert.rejects(sessionStatus(`${link}/puddle.sock`), /symbolic/);
      assert.equal(fake.connections, 0);
    } finally {
      Deno.removeSync(link);
    }
  });
});

Deno.test("a session directory others may enter is refused", async () => {
  await withFakeHelper({}, async (fake) => {
    Deno.chmodSync(fake.dir, 0o755);
    await assert.rejects(
      SessionClient.connect(fake.socket),
      (error: unknown) =>
        error instanceof SessionError &&
        error.message.includes(`${fake.dir} has mode 0755, not 0700`) &&
        (error.hint ?? "").includes(`chmod 700 ${fake.dir}`),
    );
    assert.equal(fake.connections, 0);
  });
});

Deno.test({
  name: "a session directory owned by another user is refused, naming them",
  ignore: !IS_ROOT,
  fn: async () => {
    await withFakeHelper({}, async (fake) => {
      Deno.chownSync(fake.dir, NOBODY, NOBODY);
      await assert.rejects(
        SessionClient.connect(fake.socket),
        (error: unknown) =>
          error instanceof SessionError && !error.locked &&
          error.message.includes(`${fake.dir} belongs to`) &&
          error.message.includes(`(uid ${NOBODY}), not to you (`),
      );
      assert.equal(fake.connections, 0);
    });
  },
});

Deno.test({
  name: "the kernel's word on the listener (SO_PEERCRED) must name the owner",
  ignore: !IS_ROOT,
  fn: async () => {
    await withFakeHelper({}, async (fake) => {
      // The directory checks pass for `nobody`, but root serves the socket.
      Deno.chownSync(fake.dir, NOBODY, NOBODY);
      await assert.rejects(
        SessionClient.connect(fake.socket, { owner: NOBODY }),
        (error: unknown) =>
          error instanceof SessionError &&
          error.message.includes(
            `${fake.socket} is served by a process of root (uid 0) (pid ${Deno.pid})`,
          ),
      );
      // The client hung up before sending anything.
      assert.deepEqual(fake.ops, []);
    });
  },
});

Deno.test("no directory, no socket or nobody listening reads as locked", async () => {
  const base = Deno.makeTempDirSync({ prefix: "vigo-client-" });
  try {
    assert.equal(await sessionStatus(`${base}/absent/puddle.sock`), null);
    assert.equal(await sessionStatus(`${base}/puddle.sock`), null);
    await assert.rejects(
      SessionClient.connect(`${base}/puddle.sock`),
      (error: unknown) => error instanceof SessionError && error.locked,
    );
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("a helper that never answers times out; an oversized answer is refused", async () => {
  await withFakeHelper({ answer: () => null }, async (fake) => {
    const client = await SessionClient.connect(fake.socket);
    try {
      const started = Date.now();
      await assert.rejects(
        client.request({ op: "STATUS" }, 200),
        /no answer from the session helper within 200 ms/,
      );
      assert.ok(Date.now() - started < 3_000);
    } finally {
      client.close();
    }
  });
  await withFakeHelper(
    { answer: () => "x".repeat(70 * 1024) },
    async (fake) => {
      const client = await SessionClient.connect(fake.socket);
      try {
        await assert.rejects(client.request({ op: "STATUS" }), /longer than/);
      } finally {
        client.close();
      }
    },
  );
});
