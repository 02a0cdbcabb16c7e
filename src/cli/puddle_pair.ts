/**
 * `vigo swarm puddle pair | join | members`: bringing another envoy into
 * the user's puddle, and the local record of who was brought in.
 *
 * @module
 */

import { runSelfAs } from "../platform/run_as.ts";
import { systemPaths, userPaths } from "../platform/paths.ts";
import { userByName, userByUid } from "../platform/users.ts";
import { SecretReader } from "../platform/tty.ts";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import {
  parseWrappedHeader,
  SALT_LENGTH,
  WRAPPED_LENGTH,
} from "../crypto/wrap.ts";
import {
  identityFilesPresent,
  installIdentity,
  isInitialized,
  PuddleError,
  readPublicKey,
  unwrapMatching,
} from "../puddle/identity.ts";
import { normalizePairCode, startPairing } from "../puddle/pair.ts";
import {
  encodeRetiredLog,
  RETIRED_FILE,
  verifyRotationChain,
} from "../puddle/rotation.ts";
import type { FileSetEntry } from "../platform/fs.ts";
import { readMembers, recordMember } from "../puddle/members.ts";
import { type AgentConfig, loadAgentConfig } from "../envoy/config.ts";
import { readSwarmTls, swarmRequest, swarmUrl } from "../swarm/swarm_client.ts";
import { readPolicy } from "../envoy/policy.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError, warnUnfinishedChange } from "./errors.ts";

/** The envoy's name: the agent's configured hostname, else the host's. */
export function envoyName(): string {
  try {
    return loadAgentConfig(systemPaths()).hostname;
  } catch {
    return Deno.hostname();
  }
}

/** `pair`: print a five-minute single-use code. */
export async function pair(args: string[]): Promise<number> {
  parseVerbArgs(args, {}, "vigo swarm puddle pair");
  const paths = userPaths();
  const { code, expiresAt } = await startPairing(paths.puddleDir);
  const user = userByUid(Deno.uid() ?? 0)?.name ?? "this user";
  console.log(`pairing code: ${code}`);
  console.log(
    `  valid until ${expiresAt.toISOString()} (5 minutes), for one claim only`,
  );
  console.log(`on the new envoy, as ${user}:`);
  console.log(`  sudo vigo swarm puddle join --from ${envoyName()}`);
  console.log(`  vigo swarm puddle unlock`);
  return 0;
}

/** The user whose files a root verb writes, as that user. */
export interface JoinTarget {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

/** Whose puddle `join` installs: the sudo caller's, or root's own. */
export function joinTarget(config: AgentConfig): JoinTarget {
  const sudoUser = Deno.env.get("SUDO_USER");
  if (sudoUser && sudoUser !== "root") {
    const entry = userByName(sudoUser);
    if (!entry) {
      throw new CliError(`SUDO_USER ${sudoUser} has no entry in /etc/passwd.`);
    }
    const home = config.homes[sudoUser] ?? entry.home;
    return { user: sudoUser, uid: entry.uid, gid: entry.gid, home };
  }
  const entry = userByUid(0);
  return {
    user: entry?.name ?? "root",
    uid: 0,
    gid: 0,
    home: userPaths().home,
  };
}

interface ClaimReply {
  from: string;
  pubkey: string;
  salt: string;
  wrapped: string;
}

/** Decodes and checks the identity in a claim's answer. */
export function decodeClaim(reply: unknown, host: string) {
  const r = reply as Partial<ClaimReply> | null;
  try {
    if (
      typeof r?.pubkey !== "string" || typeof r.salt !== "string" ||
      typeof r.wrapped !== "string"
    ) {
      throw new Error("fields missing");
    }
    const publicKey = parsePublicKey(r.pubkey);
    const salt = decodeBase64(r.salt);
    const wrapped = decodeBase64(r.wrapped);
    if (salt.length !== SALT_LENGTH || wrapped.length !== WRAPPED_LENGTH) {
      throw new Error("wrong sizes");
    }
    parseWrappedHeader(wrapped);
    return { publicKey, salt, wrapped };
  } catch (error) {
    throw new CliError(
      `${host} answered the claim with an unusable identity (${
        (error as Error).message
      }); nothing was written.`,
    );
  }
}

/**
 * The rotation log that comes with an identity: the statements verify as a
 * log ending at `publicKey` (or there are none), encoded as the file to
 * write beside the identity.
 */
function rotationLogEntry(
  statements: unknown,
  publicKey: Uint8Array,
  from: string,
): FileSetEntry[] {
  if (statements === undefined || statements === null) return [];
  try {
    if (!Array.isArray(statements)) {
      throw new PuddleError("the rotation log is not a list");
    }
    if (statements.length === 0) return [];
    const log = verifyRotationChain(statements);
    if (log[log.length - 1].body.new !== formatPublicKey(publicKey)) {
      throw new PuddleError("the rotation log does not end at its key");
    }
    return [{
      name: RETIRED_FILE,
      data: new TextEncoder().encode(encodeRetiredLog(log)),
      mode: 0o600,
    }];
  } catch (error) {
    throw new CliError(
      `${from} sent an unusable rotation log (${
        (error as Error).message.replace(/\.$/, "")
      }); nothing was written.`,
    );
  }
}

/** Writes the identity as the target user, never as root in their home. */
async function installAs(
  target: JoinTarget,
  identity: { wrapped: Uint8Array; salt: Uint8Array; publicKey: Uint8Array },
  rotations: unknown,
): Promise<void> {
  const puddleDir = `${target.home}/.vigo-puddle`;
  if (target.uid === Deno.uid()) {
    const change = await installIdentity(
      puddleDir,
      identity,
      rotationLogEntry(rotations, identity.publicKey, "the other envoy"),
    );
    if (change.unfinished) {
      warnUnfinishedChange(puddleDir, change.unfinished, "identity");
    }
    return;
  }
  const out = await runSelfAs(
    target,
    ["swarm", "puddle", INSTALL_VERB],
    // Wrapped key, salt and public key: all safe to hold as text.
    JSON.stringify({
      pubkey: formatPublicKey(identity.publicKey),
      salt: encodeBase64(identity.salt),
      wrapped: encodeBase64(identity.wrapped),
      rotations: rotations ?? [],
    }),
  );
  if (out.code !== 0) {
    const message = out.stderr.split("\n")
      .find((line) => line.startsWith("error: "))?.slice(7);
    throw new CliError(
      `could not write the identity as ${target.user}: ${
        message ?? "unknown error"
      }`,
    );
  }
}

/**
 * The code of a claim: `given` (`--code`), else read from the terminal or
 * standard input, as `NNNN-NNNN`; `what` names it (`pairing`, `rekey`) and
 * `verb` the command that prints it.
 */
export async function readClaimCode(
  reader: SecretReader,
  given: string | undefined,
  what: string,
  verb: string,
): Promise<string> {
  let text = given;
  if (text === undefined) {
    const line = await reader.read(`${what} code: `, `${what} code`);
    text = new TextDecoder().decode(line);
    line.fill(0);
  }
  const code = normalizePairCode(text);
  if (!code) {
    throw new UsageError(
      `a ${what} code looks like 1234-5678.`,
      `run \`vigo swarm puddle ${verb}\` on the other envoy and copy the code it prints.`,
    );
  }
  return code;
}

/**
 * Presents `code` to `from`'s claim route (`pair-claim` or `rekey-claim`)
 * for `target` over mutual TLS and returns the answer's JSON; a refusal is
 * a CliError saying nothing was written.
 */
export async function postClaim(
  config: AgentConfig,
  from: string,
  route: "pair-claim" | "rekey-claim",
  target: JoinTarget,
  code: string,
): Promise<unknown> {
  const response = await swarmRequest(
    readSwarmTls(config),
    swarmUrl(
      config,
      from,
      `/swarm/puddle/${route}/${encodeURIComponent(target.user)}`,
    ),
    {
      method: "POST",
      body: JSON.stringify({ code }),
      headers: { "content-type": "application/json" },
      timeoutMs: 15_000,
      // A rekey's answer carries the rotation's project changes.
      maxResponseBytes: 4 * 1024 * 1024,
    },
  );
  if (response.status !== 200) {
    let reason = `HTTP ${response.status}`;
    try {
      reason = response.json<{ error?: string }>().error ?? reason;
    } catch {
      // Keep the status.
    }
    throw new CliError(
      `${from} refused the claim: ${
        reason.replace(/\.$/, "")
      }; nothing was written.`,
    );
  }
  return response.json();
}

/** Hidden verb: the unprivileged half of `join`, run as the target user. */
export const INSTALL_VERB = "_install-identity";

/** Runs the hidden install verb: identity JSON on stdin. */
export async function installFromStdin(): Promise<number> {
  const text = await new Response(Deno.stdin.readable).text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CliError("the identity on standard input is not valid JSON.");
  }
  const identity = decodeClaim(value, "the caller");
  const change = await installIdentity(
    userPaths().puddleDir,
    identity,
    rotationLogEntry(
      (value as { rotations?: unknown } | null)?.rotations,
      identity.publicKey,
      "the caller",
    ),
  );
  if (change.unfinished) {
    warnUnfinishedChange(userPaths().puddleDir, change.unfinished, "identity");
  }
  return 0;
}

/** `join --from <host>`: claim a code on another envoy and install. */
export async function join(args: string[]): Promise<number> {
  const usage = "sudo vigo swarm puddle join --from <host> [--code NNNN-NNNN]";
  const { values } = parseVerbArgs(args, {
    from: { type: "string" },
    code: { type: "string" },
  }, usage);
  const from = values.from as string | undefined;
  if (!from) {
    throw new UsageError("join needs --from <host>.", `usage: ${usage}`);
  }
  if (Deno.uid() !== 0) {
    throw new CliError(
      "join needs root to use this envoy's TLS key.",
      `run \`${usage}\`; the files are written as you, not as root.`,
    );
  }
  const paths = systemPaths();
  let config: AgentConfig;
  try {
    config = loadAgentConfig(paths);
  } catch (error) {
    throw new CliError(
      `this envoy has no usable agent configuration: ${
        (error as Error).message
      }`,
      "join runs on an enrolled envoy (see `vigo ca issue` and agent.yaml).",
    );
  }
  const target = joinTarget(config);
  if (target.uid !== 0 && !readPolicy(paths, target.user)?.puddle) {
    throw new CliError(
      `puddle is not enabled for user ${target.user} on this envoy.`,
      `an operator sets \`puddle: true\` on ${target.user} in the usercrate and runs \`sudo vigo config apply <file>\`.`,
    );
  }
  const puddleDir = `${target.home}/.vigo-puddle`;
  const present = identityFilesPresent(puddleDir);
  if (present.length > 0) {
    throw new CliError(
      `${target.user} already has puddle files here (${
        present.join(", ")
      }); nothing was changed.`,
      "an envoy joins once; `vigo swarm puddle status` shows the identity here.",
    );
  }

  const reader = new SecretReader();
  try {
    const code = await readClaimCode(
      reader,
      values.code as string | undefined,
      "pairing",
      "pair",
    );

    const reply = await postClaim(config, from, "pair-claim", target, code) as {
      rotations?: unknown;
    };
    const identity = decodeClaim(reply, from);
    // Checked before the passphrase, so a bad log writes nothing.
    rotationLogEntry(reply?.rotations, identity.publicKey, from);

    const passphrase = await reader.read("passphrase: ", "passphrase");
    let seed: Uint8Array | null;
    try {
      seed = await unwrapMatching(identity, passphrase);
    } catch {
      throw new CliError(
        `the passphrase does not unwrap the identity from ${from}; nothing was written.`,
        "the code is used up: run `vigo swarm puddle pair` there again and retry with the right passphrase.",
      );
    } finally {
      passphrase.fill(0);
    }
    seed?.fill(0);
    if (!seed) {
      throw new CliError(
        `${from} sent a wrapped key that does not match its pubkey; nothing was written.`,
      );
    }

    await installAs(target, identity, reply?.rotations);
    await recordMember(paths, target.user, {
      host: from,
      direction: "joined-from",
      at: new Date().toISOString(),
    });
    console.log(
      `✓ Joined puddle ${formatPublicKey(identity.publicKey)} from ${from}`,
    );
    console.log(
      `  files: ${puddleDir}/identity.{wrapped,salt,pub} (owned by ${target.user})`,
    );
    console.log(
      `next: vigo swarm puddle unlock   (as ${target.user}, no sudo)`,
    );
    identity.wrapped.fill(0);
    identity.salt.fill(0);
    return 0;
  } finally {
    reader.close();
  }
}

/** `members`: this envoy and the envoys it paired with (local view). */
export function members(args: string[]): number {
  const { values } = parseVerbArgs(
    args,
    { json: { type: "boolean" } },
    "vigo swarm puddle members [--json]",
  );
  const paths = userPaths();
  const user = userByUid(Deno.uid() ?? 0)?.name ?? "root";
  if (!isInitialized(paths.puddleDir)) {
    throw new PuddleError(
      "this user has no puddle identity on this envoy.",
      "run `vigo swarm puddle init`, or `join` from an envoy that has it.",
    );
  }
  const pubkey = formatPublicKey(readPublicKey(paths.puddleDir));
  const here = envoyName();
  const entries = readMembers(systemPaths(), user);
  if (values.json) {
    console.log(
      JSON.stringify({ pubkey, envoy: here, user, members: entries }, null, 2),
    );
    return 0;
  }
  console.log(`puddle ${pubkey} — local view from ${here}`);
  console.log(`  ${here.padEnd(20)} this envoy`);
  for (const entry of entries) {
    const how = entry.direction === "joined-from-here"
      ? "joined from here"
      : "this envoy joined from it";
    console.log(`  ${entry.host.padEnd(20)} ${how} (${entry.at})`);
  }
  if (entries.length === 0) {
    console.log("  (no pairings recorded on this envoy)");
  }
  return 0;
}
