import assert from "node:assert/strict";
import net from "node:net";
import { peerCredentials } from "./peercred.ts";

Deno.test("peerCredentials reports the connecting process's uid, gid and pid", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/peer.sock`;
  const seen = Promise.withResolvers<
    { uid: number; gid: number; pid: number }
  >();
  const server = net.createServer((socket) => {
    try {
      seen.resolve(peerCredentials(socket));
    } catch (error) {
      seen.reject(error);
    }
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  try {
    const probe = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const c = await Deno.connect({ transport: "unix", path: ${
          JSON.stringify(path)
        } });
         console.log(Deno.pid); await c.read(new Uint8Array(1)); c.close();`,
      ],
      stdout: "piped",
    }).output();
    const cred = await seen.promise;
    const childPid = Number(
      new TextDecoder().decode((await probe).stdout).trim(),
    );
    assert.equal(cred.uid, Deno.uid());
    assert.equal(cred.gid, Deno.gid());
    assert.equal(cred.pid, childPid);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    Deno.removeSync(dir, { recursive: true });
  }
});
