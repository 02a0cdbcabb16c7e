/**
 * End-to-end tests of the puddle verbs on one envoy, driving the real CLI
 * and the real detached session helper.
 */

import assert from "node:assert/strict";
import {
  killSessionHelper,
  makeUserEnv,
  processGone,
  type UserEnv,
  VIGO,
  vigo,
} from "./support/cli.ts";
import { SessionClient, sessionStatus } from "../src/puddle/session/client.ts";
import { parsePublicKey, verifyBytes } from "../src/crypto/ed25519.ts";
import { signingInput } from "../src/crypto/signed.ts";

const PASS = "correct horse battery staple";

function modeOf(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.isFile || entry.name === ".lock") continue;
      out[entry.name] = Array.from(Deno.readFileSync(`${dir}/${entry.name}`))
        .join(",");
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out;
}

async function withUser(
  fn: (user: UserEnv, base: string) => Promise<void>,
): Promise<void> {
  const base = Deno.makeTempDirSync({ prefix: "vigo-puddle-" });
  const user = makeUserEnv(base);
  try {
    await fn(user, base);
  } finally {
    await killSessionHelper(user.home);
    Deno.removeSync(base, { recursive: true });
  }
}

async function init(user: UserEnv, pass = PASS) {
  const result = await vigo(
    user.env,
    ["swarm", "puddle", "init"],
    `${pass}\n${pass}\n`,
  );
  assert.equal(result.code, 0, result.stderr);
  return result;
}

const puddle = (user: UserEnv) => `${user.home}/.vigo-puddle`;
const socket = (user: UserEnv) => `${user.runtime}/vigo/puddle.sock`;

Deno.test("init writes the three identity files with the seed's modes", async () => {
  await withUser(async (user) => {
    const result = await init(user);
    assert.match(result.stdout, /Puddle initialized/);
    const dir = puddle(user);
    assert.equal(modeOf(dir), 0o700);
    assert.equal(modeOf(`${dir}/identity.wrapped`), 0o600);
    assert.equal(modeOf(`${dir}/identity.salt`), 0o600);
    assert.equal(modeOf(`${dir}/identity.pub`), 0o644);
    assert.equal(Deno.statSync(`${dir}/identity.salt`).size, 16);
    assert.equal(Deno.statSync(`${dir}/identity.wrapped`).size, 87);
    const pub = Deno.readTextFileSync(`${dir}/identity.pub`).trim();
    assert.match(pub, /^ed25519:[0-9a-f]{64}$/);
    const shown = await vigo(user.env, ["swarm", "puddle", "pubkey"]);
    assert.equal(shown.stdout.trim(), pub);
    const status = await vigo(user.env, ["swarm", "puddle", "status"]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, new RegExp(`initialized \\(${pub}\\)`));
    assert.match(status.stdout, /session: +locked/);
    assert.match(status.stdout, /no passphrase recovery/);
  });
});

Deno.test("init refuses when an identity exists and changes nothing", async () => {
  await withUser(async (user) => {
    await init(user);
    const before = snapshot(puddle(user));
    const again = await vigo(
      user.env,
      ["swarm", "puddle", "init"],
      "other\nother\n",
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: a puddle identity already exists/m);
    assert.match(again.stderr, /^hint: /m);
    assert.deepEqual(snapshot(puddle(user)), before);
  });
});

Deno.test("init refuses mismatched or empty passphrases and writes nothing", async () => {
  await withUser(async (user) => {
    const mismatch = await vigo(
      user.env,
      ["swarm", "puddle", "init"],
      "one\ntwo\n",
    );
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /passphrases differ/);
    const empty = await vigo(user.env, ["swarm", "puddle", "init"], "\n\n");
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /empty passphrase/);
    const short = await vigo(
      user.env,
      ["swarm", "puddle", "init"],
      "only-one\n",
    );
    assert.equal(short.code, 1);
    assert.match(short.stderr, /standard input ended/);
    assert.deepEqual(snapshot(puddle(user)), {});
  });
});

Deno.test("two concurrent inits leave exactly one working identity", async () => {
  await withUser(async (user) => {
    const [a, b] = await Promise.all([
      vigo(user.env, ["swarm", "puddle", "init"], "pass-a\npass-a\n"),
      vigo(user.env, ["swarm", "puddle", "init"], "pass-b\npass-b\n"),
    ]);
    assert.deepEqual([a.code, b.code].sort(), [0, 1]);
    const winner = a.code === 0 ? "pass-a" : "pass-b";
    const names = Object.keys(snapshot(puddle(user))).sort();
    assert.deepEqual(names, [
      "identity.pub",
      "identity.salt",
      "identity.wrapped",
    ]);
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${winner}\n`,
    );
    assert.equal(unlock.code, 0, unlock.stderr);
  });
});

Deno.test("unlock starts a detached helper that signs; lock scrubs it", async () => {
  await withUser(async (user) => {
    await init(user);
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${PASS}\n`,
    );
    assert.equal(unlock.code, 0, unlock.stderr);
    const pid = Number(
      Deno.readTextFileSync(`${puddle(user)}/session.unlocked`).trim(),
    );
    assert.ok(pid > 0);
    assert.equal(modeOf(`${puddle(user)}/session.unlocked`), 0o600);
    assert.equal(modeOf(socket(user)), 0o600);
    assert.equal(modeOf(`${user.runtime}/vigo`), 0o700);
    // Detached: the helper leads its own session.
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assert.equal(Number(fields[3]), pid, "helper is a session leader");

    const status = await sessionStatus(socket(user));
    assert.equal(status?.pid, pid);
    const pub = parsePublicKey(
      Deno.readTextFileSync(`${puddle(user)}/identity.pub`),
    );
    // The test runs as root with its own HOME: name whose key to expect.
    const client = await SessionClient.connect(socket(user), {
      puddleDir: puddle(user),
    });
    try {
      const payload = new TextEncoder().encode("hello swarm");
      const signature = await client.sign(
        "vigo-swarm/v1/puddle-session-probe",
        payload,
      );
      assert.ok(
        verifyBytes(
          pub,
          signingInput("vigo-swarm/v1/puddle-session-probe", payload),
          signature,
        ),
      );
      const bad = await client.request({
        op: "SIGN",
        context: "raw",
        payload: "",
      });
      assert.equal(bad.ok, false);
      const junk = await client.request({ op: "NOPE" } as never);
      assert.equal(junk.ok, false);
    } finally {
      client.close();
    }

    const shown = await vigo(user.env, ["swarm", "puddle", "status"]);
    assert.match(shown.stdout, new RegExp(`unlocked \\(helper pid ${pid}`));

    const again = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${PASS}\n`,
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already unlocked/);

    const lock = await vigo(user.env, ["swarm", "puddle", "lock"]);
    assert.equal(lock.code, 0, lock.stderr);
    assert.ok(processGone(pid));
    assert.throws(() => Deno.statSync(socket(user)));
    assert.throws(() => Deno.statSync(`${puddle(user)}/session.unlocked`));

    const lockAgain = await vigo(user.env, ["swarm", "puddle", "lock"]);
    assert.equal(lockAgain.code, 1);
    assert.match(lockAgain.stderr, /not unlocked/);
  });
});

Deno.test("the helper refuses malformed and oversized requests", async () => {
  await withUser(async (user) => {
    await init(user);
    await vigo(user.env, ["swarm", "puddle", "unlock"], `${PASS}\n`);
    const conn = await Deno.connect({ transport: "unix", path: socket(user) });
    const buffer = new Uint8Array(4096);
    await conn.write(new TextEncoder().encode("{not json\n"));
    const n = await conn.read(buffer);
    assert.match(
      new TextDecoder().decode(buffer.subarray(0, n!)),
      /not valid JSON/,
    );
    // A line past the bound closes the connection.
    await conn.write(new Uint8Array(70 * 1024).fill(0x61)).catch(() => 0);
    let closed = false;
    for (let i = 0; i < 10 && !closed; i++) {
      closed = (await conn.read(buffer).catch(() => null)) === null;
    }
    assert.ok(closed, "oversized line closes the connection");
    conn.close();
    // The helper survives and still answers.
    assert.ok(await sessionStatus(socket(user)));
  });
});

Deno.test("unlock with a wrong passphrase fails and starts nothing", async () => {
  await withUser(async (user) => {
    await init(user);
    const before = snapshot(puddle(user));
    const result = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      "wrong\n",
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: .*passphrase/m);
    assert.deepEqual(snapshot(puddle(user)), before);
    assert.throws(() => Deno.statSync(socket(user)));
  });
});

Deno.test("damaged identity files are refused with a clear error", async () => {
  await withUser(async (user) => {
    await init(user);
    const dir = puddle(user);
    const wrapped = Deno.readFileSync(`${dir}/identity.wrapped`);
    const salt = Deno.readFileSync(`${dir}/identity.salt`);
    const tryUnlock = async (pattern: RegExp) => {
      const before = snapshot(dir);
      const result = await vigo(
        user.env,
        ["swarm", "puddle", "unlock"],
        `${PASS}\n`,
      );
      assert.equal(result.code, 1, `expected failure for ${pattern}`);
      assert.match(result.stderr, pattern);
      assert.deepEqual(snapshot(dir), before);
      assert.throws(() => Deno.statSync(socket(user)));
    };

    const tampered = wrapped.slice();
    tampered[60] ^= 1;
    Deno.writeFileSync(`${dir}/identity.wrapped`, tampered);
    await tryUnlock(/passphrase is wrong.*altered/);

    Deno.writeFileSync(`${dir}/identity.wrapped`, wrapped.subarray(0, 50));
    await tryUnlock(/identity.wrapped is damaged .*\(truncated\)/);

    Deno.writeFileSync(`${dir}/identity.wrapped`, wrapped);
    Deno.writeFileSync(`${dir}/identity.salt`, salt.subarray(0, 8));
    await tryUnlock(/holds 8 bytes, not 16/);

    Deno.writeFileSync(`${dir}/identity.salt`, salt);
    Deno.chmodSync(`${dir}/identity.wrapped`, 0o644);
    await tryUnlock(/chmod 600/);
    Deno.chmodSync(`${dir}/identity.wrapped`, 0o600);

    Deno.removeSync(`${dir}/identity.salt`);
    await tryUnlock(/identity.salt is missing/);
    Deno.writeFileSync(`${dir}/identity.salt`, salt, { mode: 0o600 });

    const ok = await vigo(user.env, ["swarm", "puddle", "unlock"], `${PASS}\n`);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

Deno.test("verbs on a user without a puddle say what to do", async () => {
  await withUser(async (user) => {
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${PASS}\n`,
    );
    assert.equal(unlock.code, 1);
    assert.match(unlock.stderr, /no puddle identity/);
    assert.match(unlock.stderr, /hint: run `vigo swarm puddle init`/);
    const status = await vigo(user.env, [
      "swarm",
      "puddle",
      "status",
      "--json",
    ]);
    assert.equal(status.code, 0);
    assert.equal(JSON.parse(status.stdout).initialized, false);
    const usage = await vigo(user.env, ["swarm", "puddle", "frobnicate"]);
    assert.equal(usage.code, 2);
    const badIdle = await vigo(user.env, [
      "swarm",
      "puddle",
      "unlock",
      "--idle-mins",
      "-3",
    ]);
    assert.equal(badIdle.code, 2);
  });
});

Deno.test("a stale session sentinel reads as locked and is removed", async () => {
  await withUser(async (user) => {
    await init(user);
    // A PID that cannot be alive: the largest the kernel allows, plus one.
    const maxPid = Number(
      Deno.readTextFileSync("/proc/sys/kernel/pid_max").trim(),
    );
    Deno.writeTextFileSync(
      `${puddle(user)}/session.unlocked`,
      `${maxPid + 1}\n`,
      {
        mode: 0o600,
      },
    );
    const status = await vigo(user.env, [
      "swarm",
      "puddle",
      "status",
      "--json",
    ]);
    assert.equal(JSON.parse(status.stdout).session.state, "locked");
    assert.throws(() => Deno.statSync(`${puddle(user)}/session.unlocked`));
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${PASS}\n`,
    );
    assert.equal(unlock.code, 0, unlock.stderr);
  });
});

Deno.test("the helper locks itself after the idle timeout", async () => {
  await withUser(async (user) => {
    await init(user);
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock", "--idle-mins", "0.05"],
      `${PASS}\n`,
    );
    assert.equal(unlock.code, 0, unlock.stderr);
    const pid = Number(
      Deno.readTextFileSync(`${puddle(user)}/session.unlocked`),
    );
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      await new Promise((r) => setTimeout(r, 100));
      gone = processGone(pid);
    }
    assert.ok(gone, "helper exited after 3 s idle");
    assert.throws(() => Deno.statSync(socket(user)));
    assert.throws(() => Deno.statSync(`${puddle(user)}/session.unlocked`));
  });
});

Deno.test("the helper stays while the unlocking shell lives and locks when it exits", async () => {
  await withUser(async (user) => {
    await init(user);
    // A shell runs unlock and then lingers (as `sleep`, in the same process,
    // so that this test ends exactly what it started and nothing else);
    // killing it must lock the puddle.
    const shell = new Deno.Command("sh", {
      args: [
        "-c",
        `printf '%s\\n' "$PASS" | "$VIGO" swarm puddle unlock >/dev/null && exec sleep 600`,
      ],
      env: { ...user.env, PASS, VIGO },
      clearEnv: true,
    }).spawn();
    let pid = 0;
    for (let i = 0; i < 200 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        pid = Number(Deno.readTextFileSync(`${puddle(user)}/session.unlocked`));
      } catch {
        // Not yet.
      }
    }
    assert.ok(pid > 0, "helper started");
    // While the shell lives, the watchdog (every 10 s) keeps the session.
    await new Promise((r) => setTimeout(r, 11_000));
    assert.ok(
      !processGone(pid),
      "helper outlives a watchdog tick while its shell lives",
    );
    shell.kill("SIGKILL");
    await shell.status;
    let gone = false;
    for (let i = 0; i < 150 && !gone; i++) {
      await new Promise((r) => setTimeout(r, 100));
      gone = processGone(pid);
    }
    assert.ok(gone, "helper exited within the 10 s watchdog");
  });
});

Deno.test("rotate-passphrase rewraps under a new salt and keeps the key", async () => {
  await withUser(async (user) => {
    await init(user);
    const dir = puddle(user);
    const pub = Deno.readTextFileSync(`${dir}/identity.pub`);
    const salt = Deno.readFileSync(`${dir}/identity.salt`);
    const wrong = await vigo(
      user.env,
      ["swarm", "puddle", "rotate-passphrase"],
      "nope\nnew-pass\nnew-pass\n",
    );
    assert.equal(wrong.code, 1);
    assert.deepEqual(Deno.readFileSync(`${dir}/identity.salt`), salt);
    const ok = await vigo(
      user.env,
      ["swarm", "puddle", "rotate-passphrase"],
      `${PASS}\nnew-pass\nnew-pass\n`,
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(Deno.readTextFileSync(`${dir}/identity.pub`), pub);
    assert.notDeepEqual(Deno.readFileSync(`${dir}/identity.salt`), salt);
    assert.equal(modeOf(`${dir}/identity.salt`), 0o600);
    assert.equal(modeOf(`${dir}/identity.wrapped`), 0o600);
    const old = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      `${PASS}\n`,
    );
    assert.equal(old.code, 1);
    const fresh = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      "new-pass\n",
    );
    assert.equal(fresh.code, 0, fresh.stderr);
  });
});

Deno.test("a crash in the middle of init leaves no partial identity", async () => {
  await withUser(async (user) => {
    // Kill init at spread-out moments; each time the state is all or nothing.
    for (const delay of [150, 450, 700, 900]) {
      const child = new Deno.Command(VIGO, {
        args: ["swarm", "puddle", "init"],
        env: user.env,
        clearEnv: true,
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(`${PASS}\n${PASS}\n`));
      await writer.close();
      await new Promise((r) => setTimeout(r, delay));
      try {
        child.kill("SIGKILL");
      } catch {
        // Already finished.
      }
      await child.status;
      const status = await vigo(user.env, [
        "swarm",
        "puddle",
        "status",
        "--json",
      ]);
      const report = JSON.parse(status.stdout);
      const names = Object.keys(snapshot(puddle(user))).filter((n) =>
        n.startsWith("identity")
      );
      if (report.initialized) {
        assert.deepEqual(names.sort(), [
          "identity.pub",
          "identity.salt",
          "identity.wrapped",
        ]);
        const unlock = await vigo(
          user.env,
          ["swarm", "puddle", "unlock"],
          `${PASS}\n`,
        );
        assert.equal(unlock.code, 0, unlock.stderr);
        return;
      }
      assert.deepEqual(names, [], `partial identity after kill at ${delay} ms`);
    }
  });
});

Deno.test("on a terminal, passphrases are prompted for and never echoed", async () => {
  await withUser(async (user) => {
    // script(1) gives the CLI a real pseudo-terminal.
    const child = new Deno.Command("script", {
      args: ["-q", "-e", "-c", `${VIGO} swarm puddle init`, "/dev/null"],
      env: user.env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    let screen = "";
    const prompts = [/new passphrase: /, /repeat new passphrase: /];
    const decoder = new TextDecoder();
    // Type each answer only once its prompt shows, as a person would.
    for await (const chunk of child.stdout) {
      screen += decoder.decode(chunk, { stream: true });
      if (prompts.length > 0 && prompts[0].test(screen)) {
        prompts.shift();
        screen = screen.replace(/passphrase: /, "passphrase:\u0000");
        await writer.write(new TextEncoder().encode("tty-secret\r"));
      }
    }
    await writer.close();
    const status = await child.status;
    screen = screen.replaceAll("\u0000", " ");
    assert.equal(status.code, 0, screen);
    assert.match(screen, /new passphrase: /);
    assert.match(screen, /repeat new passphrase: /);
    assert.doesNotMatch(screen, /tty-secret/);
    const unlock = await vigo(
      user.env,
      ["swarm", "puddle", "unlock"],
      "tty-secret\n",
    );
    assert.equal(unlock.code, 0, unlock.stderr);
  });
});
