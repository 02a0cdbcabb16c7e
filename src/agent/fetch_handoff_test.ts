import assert from "node:assert/strict";
import { FetchHandoffs } from "./fetch_handoff.ts";
import { UnixSocketClient } from "../platform/unix_socket.ts";
import type { Logger } from "../platform/log.ts";

const libc = Deno.dlopen("libc.so.6", {
  pipe: { parameters: ["buffer"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
});

function pipe(): [number, number] {
  const fds = new Int32Array(2);
  assert.equal(libc.symbols.pipe(new Uint8Array(fds.buffer)), 0);
  return [fds[0], fds[1]];
}

function quiet(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const note = (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${message} ${JSON.stringify(fields ?? {})}`);
  return { lines, info: note, warn: note, error: note };
}

async function redeem(
  path: string,
  text: string,
  fds: number[],
): Promise<{ ok: boolean; code?: number; error?: string }> {
  const client = await UnixSocketClient.connect(path);
  try {
    await client.sendWithDescriptors(
      new TextEncoder().encode(text + "\n"),
      fds,
      Date.now() + 5_000,
    );
    const buffer = new Uint8Array(4096);
    let length = 0;
    while (!buffer.subarray(0, length).includes(0x0a)) {
      const n = await client.read(buffer.subarray(length), Date.now() + 30_000);
      if (n === null) break;
      length += n;
    }
    return JSON.parse(new TextDecoder().decode(buffer.subarray(0, length)));
  } finally {
    client.close();
  }
}

Deno.test({
  name:
    "a hand-off needs a live ticket of the caller's own uid and two descriptors, once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-handoff-unit-" });
    const log = quiet();
    const handoffs = new FetchHandoffs(log);
    const path = `${dir}/gitback-fd.sock`;
    handoffs.start(path);
    try {
      const repo = `${dir}/repo.git`;
      new Deno.Command("git", { args: ["init", "--quiet", "--bare", repo] })
        .outputSync();
      const me = Deno.uid()!;
      const send = (ticket: string | null, fds: number[]) =>
        redeem(path, JSON.stringify({ op: "handoff", ticket }), fds);

      // Unknown ticket: refused, and the descriptors sent are not kept.
      const [r1, w1] = pipe();
      const unknown = await send("0".repeat(64), [r1, w1]);
      assert.equal(unknown.ok, false);
      assert.match(unknown.error!, /refused the hand-off/);

      // Another uid's ticket: refused; it stays unused for its owner.
      const theirs = handoffs.offer(me + 4242, repo, "p")!;
      assert.equal((await send(theirs, [r1, w1])).ok, false);

      // One descriptor instead of two: refused, and the ticket is not spent.
      const mine = handoffs.offer(me, repo, "p")!;
      assert.equal((await send(mine, [w1])).ok, false);

      // The right uid, two descriptors: upload-pack runs on them. Its input
      // holds a flush (no wants), so it advertises and ends.
      const [inRead, inWrite] = pipe();
      const [outRead, outWrite] = pipe();
      const flush = new TextEncoder().encode("0000");
      libc.symbols.write(inWrite, flush, BigInt(flush.length));
      libc.symbols.close(inWrite);
      const served = await send(mine, [inRead, outWrite]);
      assert.deepEqual(served, { ok: true, code: 0 });
      libc.symbols.close(inRead);
      libc.symbols.close(outWrite);
      const advert = new Uint8Array(4096);
      const n = Number(
        libc.symbols.read(outRead, advert, BigInt(advert.length)),
      );
      libc.symbols.close(outRead);
      // An empty repository advertises capabilities in a pkt-line.
      assert.match(
        new TextDecoder().decode(advert.subarray(0, n)),
        /^[0-9a-f]{4}/,
      );

      // Used once: the same ticket again is refused.
      const [r2, w2] = pipe();
      assert.equal((await send(mine, [r2, w2])).ok, false);
      for (const fd of [r1, w1, r2, w2]) libc.symbols.close(fd);

      // Four refusals of one uid within seconds: one log line, so that a
      // user cannot flood the agent's log.
      const refusals = log.lines.filter((l) =>
        l.startsWith("fetch hand-off refused")
      );
      assert.equal(refusals.length, 1);
      assert.match(refusals[0], /unknown or used ticket/);
    } finally {
      await handoffs.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("tickets are capped: beyond the cap the fetch is relayed instead", () => {
  const handoffs = new FetchHandoffs(quiet());
  const tickets = new Set<string>();
  for (let i = 0; i < 256; i++) tickets.add(handoffs.offer(0, "/r", "p")!);
  assert.equal(tickets.size, 256);
  assert.equal(handoffs.offer(0, "/r", "p"), null);
});
