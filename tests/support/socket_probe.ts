/**
 * A raw client of a Unix socket, run by tests as an unprivileged user to
 * do what a hostile local user would: hang up before the answer, hold
 * connections open, send oversized lines. Prints one JSON line per result.
 *
 *   socket_probe.ts hangup <socket> <line> <count>
 *   socket_probe.ts hold <socket> <count>     (then one more, asking status)
 *   socket_probe.ts ask <socket> <line-file>  (one line, prints the answer)
 *
 * @module
 */

async function readLine(conn: Deno.UnixConn, timeoutMs = 10_000) {
  const timer = setTimeout(() => conn.close(), timeoutMs);
  const chunks: number[] = [];
  const buffer = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(...buffer.subarray(0, n));
      if (chunks.includes(0x0a)) break;
    }
  } catch {
    // Closed by the timer or the agent.
  } finally {
    clearTimeout(timer);
  }
  const text = new TextDecoder().decode(Uint8Array.from(chunks));
  return text.split("\n")[0];
}

async function writeAll(conn: Deno.UnixConn, bytes: Uint8Array) {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

const [command, socket, ...rest] = Deno.args;
const encode = (text: string) => new TextEncoder().encode(text);
switch (command) {
  case "hangup": {
    const count = Number(rest[1]);
    for (let i = 0; i < count; i++) {
      const conn = await Deno.connect({ transport: "unix", path: socket });
      await writeAll(conn, encode(rest[0] + "\n"));
      conn.close();
    }
    console.log(JSON.stringify({ hung_up: count }));
    break;
  }
  case "hold": {
    const count = Number(rest[0]);
    const held: Deno.UnixConn[] = [];
    for (let i = 0; i < count; i++) {
      held.push(await Deno.connect({ transport: "unix", path: socket }));
    }
    const extra = await Deno.connect({ transport: "unix", path: socket });
    await writeAll(extra, encode('{"op":"status"}\n'));
    console.log(await readLine(extra));
    extra.close();
    for (const conn of held) conn.close();
    break;
  }
  case "ask": {
    const conn = await Deno.connect({ transport: "unix", path: socket });
    await writeAll(conn, Deno.readFileSync(rest[0]));
    console.log(await readLine(conn));
    conn.close();
    break;
  }
  default:
    console.error("usage: socket_probe.ts hangup|hold|ask <socket> …");
    Deno.exit(2);
}
