/**
 * The demo: the single-envoy puddle flow in a throwaway HOME, told as a
 * short story. Every step runs the real CLI; nothing outside the temp
 * directory is touched, and the session helper is stopped at the end.
 *
 * Run with `npx deno task demo`.
 */

import { SessionClient } from "../src/puddle/session/client.ts";
import { parsePublicKey } from "../src/crypto/ed25519.ts";
import { toHex } from "../src/crypto/hex.ts";
import { verifyWithContext } from "../src/crypto/signed.ts";
import { fleetDown, fleetUp } from "./fleet.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const VIGO = `${REPO}/scripts/vigo`;
const PASSPHRASE = "demo passphrase, never use me";

const bold = (text: string) =>
  Deno.stdout.isTerminal() ? `\x1b[1m${text}\x1b[0m` : text;

function say(text: string) {
  console.log(`\n${bold("#")} ${text}`);
}

async function run(
  env: Record<string, string>,
  args: string[],
  stdin = "",
  shownStdin = "",
): Promise<string> {
  console.log(bold(`$ ${shownStdin}vigo ${args.join(" ")}`));
  const child = new Deno.Command(VIGO, {
    args,
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const text = stdout + new TextDecoder().decode(out.stderr);
  console.log(text.trimEnd().split("\n").map((l) => `  ${l}`).join("\n"));
  if (!out.success) throw new Error(`\`vigo ${args.join(" ")}\` failed`);
  return stdout;
}

async function main() {
  const base = await Deno.makeTempDir({ prefix: "vigo-demo-" });
  const env: Record<string, string> = {
    HOME: `${base}/home/dan`,
    XDG_RUNTIME_DIR: `${base}/run/dan`,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const denoDir = Deno.env.get("DENO_DIR");
  env.DENO_DIR = denoDir ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  await Deno.mkdir(env.HOME, { recursive: true });
  await Deno.mkdir(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  const feed = `printf '<passphrase>\\n' | `;
  try {
    console.log(bold("vigo swarm demo: one puddle identity on one envoy"));
    console.log(`(throwaway HOME ${env.HOME})`);

    say("Dan creates his puddle: one Ed25519 key, wrapped under a passphrase.");
    await run(
      env,
      ["swarm", "puddle", "init"],
      `${PASSPHRASE}\n${PASSPHRASE}\n`,
      feed.replace("\\n", "\\n<again>\\n"),
    );
    for (
      const entry of [...Deno.readDirSync(`${env.HOME}/.vigo-puddle`)].sort((
        a,
        b,
      ) => a.name.localeCompare(b.name))
    ) {
      if (!entry.name.startsWith("identity")) continue;
      const info = Deno.statSync(`${env.HOME}/.vigo-puddle/${entry.name}`);
      console.log(
        `  ${(info.mode! & 0o777).toString(8)} ${
          String(info.size).padStart(3)
        } B  ~/.vigo-puddle/${entry.name}`,
      );
    }

    say("The key stays wrapped on disk; the puddle is locked.");
    await run(env, ["swarm", "puddle", "status"]);

    say(
      "Unlocking unwraps it into a detached session helper, and nowhere else.",
    );
    await run(env, ["swarm", "puddle", "unlock"], `${PASSPHRASE}\n`, feed);

    say(
      "Any of Dan's tools can now ask the helper for a signature over its socket…",
    );
    const pubkey = parsePublicKey(
      await run(env, ["swarm", "puddle", "pubkey"]),
    );
    const message = new TextEncoder().encode("push 3f2a… to vigo-web");
    const client = await SessionClient.connect(
      `${env.XDG_RUNTIME_DIR}/vigo/puddle.sock`,
    );
    let signature: Uint8Array;
    try {
      signature = await client.sign(
        "vigo-swarm/v1/puddle-session-probe",
        message,
      );
    } finally {
      client.close();
    }
    console.log(`  message:   ${new TextDecoder().decode(message)}`);
    console.log(`  signature: ${toHex(signature).slice(0, 32)}…`);
    const valid = verifyWithContext(
      pubkey,
      "vigo-swarm/v1/puddle-session-probe",
      message,
      signature,
    );
    console.log(`  verified against identity.pub: ${valid ? "yes" : "NO"}`);
    if (!valid) throw new Error("the helper's signature did not verify");
    const forged = verifyWithContext(
      pubkey,
      "vigo-swarm/v1/gitback-token",
      message,
      signature,
    );
    console.log(
      `  …and the same bytes under another context: ${
        forged ? "ACCEPTED" : "rejected"
      }`,
    );

    say("Locking scrubs the key from memory and stops the helper.");
    await run(env, ["swarm", "puddle", "lock"]);
    await run(env, ["swarm", "puddle", "status"]);

    await fleetStory(base);
  } finally {
    await new Deno.Command(VIGO, {
      args: ["swarm", "puddle", "lock"],
      env,
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).output();
    await Deno.remove(base, { recursive: true });
  }
}

/** Part two: the same identity carried to two more envoys by pairing. */
async function fleetStory(base: string) {
  console.log(
    bold("\nvigo swarm demo, part two: one puddle across three envoys"),
  );
  if (Deno.uid() !== 0) {
    say(
      "Skipped: `join` needs root for the agent's TLS key; run the demo as root to see pairing.",
    );
    return;
  }
  const dir = `${base}/fleet`;
  say(
    "A local fleet: a CA, three envoys on loopback, each with its own root, home and agent.",
  );
  const fleet = await fleetUp(dir, {
    envoys: 3,
    firstAddress: 100 + Math.floor(Math.random() * 100),
  });
  try {
    for (const envoy of fleet.envoys) {
      console.log(
        `  ${envoy.name}  ${envoy.address}:1531  agent pid ${envoy.agentPid}`,
      );
    }
    const [a, b, c] = fleet.envoys;
    const feed = `printf '<passphrase>\\n<again>\\n' | `;

    say("On envoy-a, the founder envoy, Dan creates his puddle.");
    await run(
      a.env,
      ["swarm", "puddle", "init"],
      `${PASSPHRASE}\n${PASSPHRASE}\n`,
      feed,
    );

    for (const joiner of [b, c]) {
      say(`On envoy-a Dan asks for a pairing code for ${joiner.name}…`);
      const out = await run(a.env, ["swarm", "puddle", "pair"]);
      const code = /pairing code: (\d{4}-\d{4})/.exec(out)![1];
      say(
        `…and on ${joiner.name} claims it over mutual TLS, then proves his passphrase.`,
      );
      await run(
        joiner.env,
        ["swarm", "puddle", "join", "--from", "envoy-a"],
        `${code}\n${PASSPHRASE}\n`,
        `printf '${code}\\n<passphrase>\\n' | sudo `,
      );
    }

    say(
      "A used code is gone: claiming it again fails, and the agent logs who tried.",
    );
    const code = /pairing code: (\d{4}-\d{4})/.exec(
      await run(a.env, ["swarm", "puddle", "pair"]),
    )![1];
    await run(
      c.env,
      ["swarm", "puddle", "join", "--from", "envoy-a"],
      "0000-0000\n",
      "printf '0000-0000\\n' | sudo ",
    )
      .catch(() => {});
    await run(
      c.env,
      ["swarm", "puddle", "join", "--from", "envoy-a"],
      `${code}\n`,
      `printf '${code}\\n' | sudo `,
    )
      .catch(() => {});
    const warn = Deno.readTextFileSync(a.log).split("\n").filter((l) =>
      l.includes("WARN")
    ).at(-1);
    console.log(`  envoy-a agent log: ${warn}`);

    say("All three envoys unlock to the same key.");
    for (const envoy of fleet.envoys) {
      await run(
        envoy.env,
        ["swarm", "puddle", "unlock"],
        `${PASSPHRASE}\n`,
        `printf '<passphrase>\\n' | `,
      );
      await run(envoy.env, ["swarm", "puddle", "lock"]);
    }

    say("envoy-a keeps a local record of the envoys it paired.");
    await run(a.env, ["swarm", "puddle", "members"]);
    say("Done.");
  } finally {
    await fleetDown(dir);
  }
}

await main();
