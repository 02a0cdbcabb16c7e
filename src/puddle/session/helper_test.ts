/**
 * The live session helper (started by the real `unlock`) against clients
 * that misbehave: every such client ends only its own connection.
 */

import assert from "node:assert/strict";
import {
  killSessionHelper,
  makeUserEnv,
  processGone,
  type UserEnv,
  vigo,
} from "../../../tests/support/cli.ts";
import { waitUntil } from "../../../tests/support/wait.ts";
import { sessionStatus } from "./client.ts";
import { MAX_LINE_BYTES } from "./protocol.ts";

const PASS = "helper test passphrase";
const encoder = new TextEncoder();

async function withHelper(
  fn: (user: UserEnv, socket: string, pid: number) => Promise<void>,
): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "vigo-helper-" });
  const user = makeUserEnv(base);
  try {
    const init = await vigo(
      user.env,
      ["swarm", "puddle", "init"],
      `${PASS}\n${PASS}\n`,
    );
    assert.equal(init.code, 0, init.stderr);
    // The unlocking process's parent is this test process, which outlives
    // the helper: no watchdog race.
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${PASS}\n`,
    );
    assert.equal(unlock.code, 0, unlock.stderr);
    const socket = `${user.runtime}/vigo/puddle.sock`;
    const status = await sessionStatus(socket);
    assert.ok(status, "the helper answers after unlock");
    await fn(user, socket, status.pid);
  } finally {
    await killSessionHelper(user.home);
    Deno.removeSync(base, { recursive: true });
  }
}

/**
 * Reads until the helper ends the connection (end of stream, or a reset
 * after its last bytes) or `timeoutMs` passes; returns the text and whether
 * the helper ended it.
 */
async function readToEnd(conn: Deno.UnixConn, timeoutMs = 5_000) {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } catch {
    // Reset by the helper, or closed by the timer.
  } finally {
    clearTimeout(timer);
  }
  const text = new TextDecoder().decode(
    new Uint8Array(chunks.flatMap((c) => [...c])),
  );
  return { text, ended: !timedOut };
}

Deno.test("clients that hang up before their answer end only their own connection", async () => {
  await withHelper(async (_user, socket, pid) => {
    const sign = JSON.stringify({
      op: "SIGN",
      context: "vigo-swarm/v1/puddle-session-probe",
      payload: "aGVsbG8=",
    });
    const requests = [
      '{"op":"STATUS"}\n',
      `${sign}\n`,
      '{"op":"PUBKEY"}\n',
      `${sign}\n`.repeat(500), // pipelined, far more than is ever read
      '{"op":"STATUS"}', // no newline: closed mid-line
    ];
    for (let round = 0; round < 4; round++) {
      await Promise.all(requests.map(async (request) => {
        const conn = await Deno.connect({ transport: "unix", path: socket });
        await conn.write(encoder.encode(request)).catch(() => 0);
        conn.close();
      }));
    }
    // Still the same helper, and it answers.
    const status = await sessionStatus(socket);
    assert.equal(status?.pid, pid);
    assert.ok(!processGone(pid));
  });
});

Deno.test("the live helper refuses a complete line over the cap and closes that connection", async () => {
  await withHelper(async (_user, socket, pid) => {
    // A well-formed STATUS request padded to 70 KiB and finished with its
    // newline, in one write: the cap once applied only to unfinished lines,
    // so this one was answered.
    const padded = JSON.stringify({ op: "STATUS", pad: "a".repeat(70 * 1024) });
    assert.ok(padded.length > MAX_LINE_BYTES);
    const conn = await Deno.connect({ transport: "unix", path: socket });
    await conn.write(encoder.encode(padded + "\n")).catch(() => 0);
    const { text, ended } = await readToEnd(conn);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
    assert.ok(ended, "the helper closed the connection");
    assert.doesNotMatch(text, /"pid"/, "the oversized request was not served");
    const answer = JSON.parse(text.trim());
    assert.equal(answer.ok, false);
    assert.match(answer.error, /line longer than 65536 bytes/);

    // An unfinished line past the cap is refused the same way.
    const open = await Deno.connect({ transport: "unix", path: socket });
    await open.write(new Uint8Array(MAX_LINE_BYTES + 100).fill(0x61)).catch(
      () => 0,
    );
    const unfinished = await readToEnd(open);
    try {
      open.close();
    } catch {
      // Closed by the timer.
    }
    assert.ok(unfinished.ended);
    assert.match(unfinished.text, /line longer than/);

    // The helper itself carries on.
    assert.equal((await sessionStatus(socket))?.pid, pid);
  });
});

Deno.test("a LOCK whose client hangs up at once still locks", async () => {
  await withHelper(async (user, socket, pid) => {
    const conn = await Deno.connect({ transport: "unix", path: socket });
    await conn.write(encoder.encode('{"op":"LOCK"}\n'));
    conn.close();
    await waitUntil("the helper to exit", () => processGone(pid), 10_000);
    assert.equal(await sessionStatus(socket), null);
    assert.throws(() =>
      Deno.statSync(`${user.home}/.vigo-puddle/session.unlocked`)
    );
  });
});
