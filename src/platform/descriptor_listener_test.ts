import assert from "node:assert/strict";
import {
  MAX_CONNECTIONS_PER_UID,
  startDescriptorListener,
} from "./descriptor_listener.ts";
import { UnixSocketClient, UnixSocketError } from "./unix_socket.ts";

/** The answer to `text`, or null when the listener closed unanswered. */
async function ask(path: string, text: string): Promise<string | null> {
  const client = await UnixSocketClient.connect(path);
  try {
    await client.sendWithDescriptors(
      new TextEncoder().encode(text),
      [],
      Date.now() + 5_000,
    );
    const buffer = new Uint8Array(256);
    const n = await client.read(buffer, Date.now() + 5_000);
    return n === null ? null : new TextDecoder().decode(buffer.subarray(0, n));
  } catch (error) {
    const code = (error as UnixSocketError).code;
    if (code === "ECONNRESET" || code === "EPIPE") return null;
    throw error;
  } finally {
    client.close();
  }
}

Deno.test({
  name:
    "one uid holds at most its share of the descriptor socket; the rest are closed at once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-fd-listener-" });
    const path = `${dir}/fd.sock`;
    const listener = startDescriptorListener({
      path,
      mode: 0o600,
      handler: (message) =>
        Promise.resolve(`${message.peer.uid}:${message.text.trim()}`),
      onError: () => {},
    });
    const idle: UnixSocketClient[] = [];
    try {
      assert.equal(await ask(path, "hello\n"), `${Deno.uid()}:hello\n`);
      // Connections that say nothing hold their slots until they go.
      for (let i = 0; i < MAX_CONNECTIONS_PER_UID; i++) {
        idle.push(await UnixSocketClient.connect(path));
      }
      // The listener counts them as it accepts them: once it has, the next
      // one of this uid is closed unanswered.
      let refused = false;
      const deadline = Date.now() + 10_000;
      while (!refused && Date.now() < deadline) {
        refused = (await ask(path, "one more\n")) === null;
      }
      assert.ok(refused, "a connection over the uid's share is closed");
      for (const client of idle.splice(0)) client.close();
      let answered: string | null = null;
      while (answered === null && Date.now() < deadline + 10_000) {
        answered = await ask(path, "again\n");
      }
      assert.equal(answered, `${Deno.uid()}:again\n`);
    } finally {
      for (const client of idle) client.close();
      await listener.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
