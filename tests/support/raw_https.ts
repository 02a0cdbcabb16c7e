/**
 * A peer speaking raw HTTP/1.1 over mutual TLS, for tests that must send
 * what a well-behaved client would not: bodies far larger than their
 * answer, streamed from a generator so the test never holds them.
 *
 * @module
 */

/**
 * Sends `head` (request line and headers) over raw mutual TLS, then body
 * chunks of `chunk` bytes until `total` are sent or the answer arrives, and
 * reads the answer meanwhile. Returns the status line and how much of the
 * body had gone out when the answer came.
 */
export async function rawPost(
  tls: { caPem: string; certPem: string; keyPem: string },
  address: { hostname: string; port: number },
  head: string,
  total: number,
  chunk = 256 * 1024,
): Promise<{ status: number; answer: string; sentBeforeAnswer: number }> {
  const conn = await Deno.connectTls({
    ...address,
    caCerts: [tls.caPem],
    cert: tls.certPem,
    key: tls.keyPem,
  });
  let sent = 0;
  let answered = -1;
  let answer = "";
  const reading = (async () => {
    const buffer = new Uint8Array(4096);
    try {
      for (let n; (n = await conn.read(buffer)) !== null;) {
        if (answered < 0) answered = sent;
        answer += new TextDecoder().decode(buffer.subarray(0, n));
        if (/\r\n\r\n[\s\S]*\}/.test(answer)) break;
      }
    } catch {
      // Closed by the server.
    }
  })();
  try {
    await conn.write(new TextEncoder().encode(head));
    const bytes = new Uint8Array(chunk).fill(0x61);
    while (sent < total && answered < 0) {
      const part = bytes.subarray(0, Math.min(chunk, total - sent));
      let at = 0;
      while (at < part.length) at += await conn.write(part.subarray(at));
      sent += part.length;
    }
  } catch {
    // The server stopped reading and closed.
  }
  await reading;
  try {
    conn.close();
  } catch {
    // Already closed.
  }
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
  return { status, answer, sentBeforeAnswer: answered < 0 ? sent : answered };
}

/**
 * Opens a raw mutual-TLS connection, sends `head` and `bytes` zero bytes of
 * body, and leaves the request unfinished: the caller closes it.
 */
export async function openPartialPost(
  tls: { caPem: string; certPem: string; keyPem: string },
  address: { hostname: string; port: number },
  head: string,
  bytes: number,
): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({
    ...address,
    caCerts: [tls.caPem],
    cert: tls.certPem,
    key: tls.keyPem,
  });
  await conn.write(new TextEncoder().encode(head));
  const chunk = new Uint8Array(64 * 1024);
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
    let at = 0;
    while (at < part.length) at += await conn.write(part.subarray(at));
  }
  return conn;
}
