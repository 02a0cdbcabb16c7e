/**
 * The session socket is usable only by its owner (and root): the kernel, not
 * the client, enforces it. Uses two real Unix users.
 */

import assert from "node:assert/strict";
import { REPO, VIGO, vigo } from "./support/cli.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  runAs,
  type TestUser,
} from "./support/unix_users.ts";
import { sessionStatus } from "../src/puddle/session/client.ts";

if (!CAN_CREATE_USERS) {
  console.log("skipped: session boundary test needs root to create Unix users");
}

const DENO = `${REPO}/node_modules/deno/deno`;
const PROBE = `
const path = Deno.args[0];
try {
  const conn = await Deno.connect({ transport: "unix", path });
  await conn.write(new TextEncoder().encode('{"op":"PUBKEY"}\\n'));
  const buf = new Uint8Array(512);
  const n = await conn.read(buf);
  console.log("answered " + new TextDecoder().decode(buf.subarray(0, n ?? 0)).trim());
} catch (error) {
  console.log("refused " + (error as Error).name);
}`;

Deno.test({
  name: "another Unix user cannot use a user's session socket",
  ignore: !CAN_CREATE_USERS,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-users-" });
    Deno.chmodSync(base, 0o755);
    const users: TestUser[] = [];
    try {
      const alice = createUser(base, "vgta");
      users.push(alice);
      const mallory = createUser(base, "vgtm");
      users.push(mallory);
      // Usercrate policy: alice may use puddle, mallory may not.
      const vigoRoot = `${base}/root`;
      Deno.mkdirSync(vigoRoot);
      Deno.writeTextFileSync(
        `${base}/usercrate.yaml`,
        `resources:\n- type: user\n  username: ${alice.name}\n  home: ${alice.home}\n  puddle: true\n` +
          `- type: user\n  username: ${mallory.name}\n  home: ${mallory.home}\n  puddle: false\n`,
      );
      const applied = await vigo(
        { PATH: Deno.env.get("PATH")!, HOME: base, VIGO_ROOT: vigoRoot },
        ["config", "apply", `${base}/usercrate.yaml`],
      );
      assert.equal(applied.code, 0, applied.stderr);
      alice.env.VIGO_ROOT = vigoRoot;
      mallory.env.VIGO_ROOT = vigoRoot;

      // Without the flag, every puddle verb refuses before touching anything.
      const refused = await runAs(
        mallory,
        [VIGO, "swarm", "puddle", "init"],
        "pw-m\npw-m\n",
      );
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /^error: puddle is not enabled for user vgtm/m,
      );
      assert.match(refused.stderr, /^hint: .*vigo config apply/m);
      assert.throws(() => Deno.statSync(`${mallory.home}/.vigo-puddle`));

      const init = await runAs(
        alice,
        [VIGO, "swarm", "puddle", "init"],
        "pw-a\npw-a\n",
      );
      assert.equal(init.code, 0, init.stderr);
      const unlock = await runAs(
        alice,
        [VIGO, "swarm", "puddle", "unlock"],
        "pw-a\n",
      );
      assert.equal(unlock.code, 0, unlock.stderr);
      const socketPath = `${alice.runtime}/vigo/puddle.sock`;
      const info = Deno.statSync(socketPath);
      assert.equal(info.uid, alice.uid);
      assert.equal(info.mode! & 0o777, 0o600);

      // Alice herself gets an answer.
      const own = await runAs(alice, [
        DENO,
        "eval",
        "--quiet",
        PROBE,
        socketPath,
      ]);
      assert.match(own.stdout, /^answered .*"ok":true/m, own.stderr);
      // Mallory is stopped by the kernel before the helper sees a byte.
      const other = await runAs(mallory, [
        DENO,
        "eval",
        "--quiet",
        PROBE,
        socketPath,
      ]);
      assert.match(other.stdout, /^refused PermissionDenied/m, other.stderr);
      // Root may, naming whose helper it expects (it can read every
      // user's memory anyway); the client checks that owner, not root.
      assert.ok(await sessionStatus(socketPath, { owner: alice.uid }));
    } finally {
      for (const user of users) deleteUser(user);
      Deno.removeSync(base, { recursive: true });
    }
  },
});
