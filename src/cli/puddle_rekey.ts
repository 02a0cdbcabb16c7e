/**
 * `vigo swarm puddle rekey-pair | rekey`: rotating the puddle key on the
 * envoy where the user is, then on every other member envoy.
 *
 * @module
 */

import { systemPaths, type UserPaths, userPaths } from "../platform/paths.ts";
import { userByUid } from "../platform/users.ts";
import { SecretReader } from "../platform/tty.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import { exists, readFileBounded } from "../platform/fs.ts";
import { runSelfAs } from "../platform/run_as.ts";
import { formatPublicKey } from "../crypto/ed25519.ts";
import {
  IDENTITY_FILES,
  PuddleError,
  readPublicKey,
  repairPuddleDir,
  unwrapMatching,
} from "../puddle/identity.ts";
import {
  clearFounderUpdates,
  installRotation,
  pendingFounderUpdates,
  readRotationLog,
  reissueRekeyCode,
  rekeyPair as rotateHere,
} from "../puddle/rekey.ts";
import {
  decodeRetiredLog,
  MAX_RETIRED_BYTES,
  RETIRED_FILE,
  RotationError,
  verifyRotationChain,
} from "../puddle/rotation.ts";
import { sessionStatus } from "../puddle/session/client.ts";
import {
  DEFAULT_IDLE_MINUTES,
  lockSession,
  startSessionHelper,
} from "../puddle/session/launch.ts";
import {
  type AppliedUpdates,
  applyFounderUpdates,
  currentFounderUpdates,
  planFounderRotation,
} from "../gitback/founder_rotation.ts";
import { loadAgentConfig } from "../envoy/config.ts";
import { readPolicy } from "../envoy/policy.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError, warnUnfinishedChange } from "./errors.ts";
import {
  decodeClaim,
  envoyName,
  type JoinTarget,
  joinTarget,
  postClaim,
  readClaimCode,
} from "./puddle_pair.ts";
import { proveToLocalAgent } from "./puddle_prove.ts";

/** Hidden verb: the unprivileged half of `rekey --from`, run as the user. */
export const INSTALL_ROTATION_VERB = "_install-rotation";

/**
 * Applies the project changes a key rotation left behind (a crash, or the
 * rotation's own last step), then forgets them. Returns what it did, or
 * null when nothing was pending.
 */
export async function finishFounderUpdates(
  paths: UserPaths,
): Promise<AppliedUpdates | null> {
  await repairPuddleDir(paths.puddleDir);
  const pending = pendingFounderUpdates(paths.puddleDir);
  if (pending === null) return null;
  const applied = await applyFounderUpdates(paths.gitbackDir, pending);
  await clearFounderUpdates(paths.puddleDir);
  return applied;
}

function printApplied(applied: AppliedUpdates | null): void {
  if (!applied) return;
  if (applied.updated.length > 0) {
    console.log(
      `  projects: now founded by the new key: ${applied.updated.join(", ")}`,
    );
  }
  if (applied.tombstoned.length > 0) {
    console.log(
      `  tombstoned (at the delegation cap): ${applied.tombstoned.join(", ")}`,
    );
  }
  for (const refused of applied.refused) {
    console.error(
      `warning: project ${refused.handle} was left as it was: ${refused.reason}.`,
    );
  }
}

/** `rekey-pair`: rotate the key here and print a code for the other envoys. */
export async function rekeyPair(args: string[]): Promise<number> {
  const usage =
    "vigo swarm puddle rekey-pair [--force-orphan-projects] [--reissue]";
  const { values } = parseVerbArgs(args, {
    "force-orphan-projects": { type: "boolean" },
    reissue: { type: "boolean" },
  }, usage);
  const paths = userPaths();
  printApplied(await finishFounderUpdates(paths));
  if (values.reissue) return await reissue(paths);

  const session = await sessionStatus(paths.sessionSocket).catch(() => null);
  if (!session) {
    throw new CliError(
      "the puddle is locked on this envoy; nothing was changed.",
      "run `vigo swarm puddle unlock` first: rekey-pair moves your unlocked session to the new key.",
    );
  }
  const reader = new SecretReader();
  const passphrase = await reader.read("passphrase: ", "passphrase");
  reader.close();
  let warned: { handle: string; length: number }[] = [];
  let result;
  try {
    result = await rotateHere(
      paths.puddleDir,
      passphrase,
      async (oldKey, newKey) => {
        const plan = await planFounderRotation(
          paths.gitbackDir,
          oldKey,
          newKey,
          {
            forceOrphan: values["force-orphan-projects"] === true,
          },
        );
        warned = plan.warned;
        return { local: plan.updates, payload: plan.updates };
      },
    );
  } finally {
    passphrase.fill(0);
  }
  let helperPid: number;
  try {
    if (result.unfinished) {
      warnUnfinishedChange(paths.puddleDir, result.unfinished, "identity");
    }
    console.log(`✓ Puddle key rotated (rotation ${result.seq})`);
    console.log(`  retired: ${formatPublicKey(result.retired)}`);
    console.log(`  new key: ${formatPublicKey(result.publicKey)}`);
    printApplied(await finishFounderUpdates(paths));
    for (const { handle, length } of warned) {
      console.log(
        `  warning: ${handle} has ${length} founder delegations; at 5 it must be re-founded`,
      );
    }
    // The session moves to the new key: the old helper scrubs its key.
    await lockSession(paths).catch(() => {});
    helperPid = await startSessionHelper(paths, result.newSeed, {
      idleMinutes: Math.max(
        1,
        Math.round(session.idle_timeout_s / 60) || DEFAULT_IDLE_MINUTES,
      ),
      parentPid: Deno.ppid,
    });
  } finally {
    result.newSeed.fill(0);
  }
  console.log(`  session: moved to the new key (helper pid ${helperPid})`);
  console.log(`  agent:   ${await proveToLocalAgent(paths, result.publicKey)}`);
  printCode(result.code, result.expiresAt);
  return 0;
}

function printCode(code: string, expiresAt: Date): void {
  const user = userByUid(Deno.uid() ?? 0)?.name ?? "this user";
  console.log(`rekey code: ${code}`);
  console.log(
    `  valid until ${expiresAt.toISOString()} (5 minutes), for one claim only`,
  );
  console.log(`on every other envoy of this puddle, as ${user}:`);
  console.log(`  sudo vigo swarm puddle rekey --from ${envoyName()}`);
  console.log(
    "  (a code claims once; `vigo swarm puddle rekey-pair --reissue` prints another)",
  );
}

async function reissue(paths: UserPaths): Promise<number> {
  const log = readRotationLog(paths.puddleDir);
  const last = log[log.length - 1];
  const key = readPublicKey(paths.puddleDir);
  const payload = currentFounderUpdates(
    paths.gitbackDir,
    key,
    last?.body.old ?? formatPublicKey(key),
  );
  const { code, expiresAt, seq } = await reissueRekeyCode(
    paths.puddleDir,
    payload,
  );
  console.log(`✓ New rekey code for rotation ${seq} (${formatPublicKey(key)})`);
  printCode(code, expiresAt);
  return 0;
}

/** What another envoy hands over: the new identity, its log, the projects. */
interface RotationPackage {
  pubkey: string;
  salt: string;
  wrapped: string;
  statements: unknown[];
  updates: unknown;
}

/** `rekey --from <host> | --from-dir <dir>`: take the rotated key here. */
export async function rekey(args: string[]): Promise<number> {
  const usage =
    "sudo vigo swarm puddle rekey --from <host> [--code NNNN-NNNN] | vigo swarm puddle rekey --from-dir <dir>";
  const { values } = parseVerbArgs(args, {
    from: { type: "string" },
    "from-dir": { type: "string" },
    code: { type: "string" },
  }, usage);
  const from = values.from as string | undefined;
  const dir = values["from-dir"] as string | undefined;
  if ((from === undefined) === (dir === undefined)) {
    throw new UsageError(
      "rekey needs exactly one of --from <host> or --from-dir <dir>.",
      `usage: ${usage}`,
    );
  }
  const reader = new SecretReader();
  try {
    if (dir !== undefined) {
      const pkg = packageFromDir(dir);
      await checkPassphrase(reader, pkg, dir);
      const paths = userPaths();
      return await installHere(paths, pkg);
    }
    if (Deno.uid() !== 0) {
      throw new CliError(
        "rekey --from needs root to use this envoy's TLS key.",
        "run `sudo vigo swarm puddle rekey --from <host>`; the files are written as you, not as root.",
      );
    }
    const config = loadConfig();
    const target = joinTarget(config);
    if (target.uid !== 0 && !readPolicy(config.paths, target.user)?.puddle) {
      throw new CliError(
        `puddle is not enabled for user ${target.user} on this envoy.`,
      );
    }
    const code = await readClaimCode(
      reader,
      values.code as string | undefined,
      "rekey",
      "rekey-pair",
    );
    const pkg = await claim(config, from!, target, code);
    await checkPassphrase(reader, pkg, from!);
    return await installAs(target, pkg);
  } finally {
    reader.close();
  }
}

function loadConfig() {
  try {
    return loadAgentConfig(systemPaths());
  } catch (error) {
    throw new CliError(
      `this envoy has no usable agent configuration: ${
        (error as Error).message
      }`,
      "rekey --from runs on an enrolled envoy; an air-gapped one uses --from-dir.",
    );
  }
}

async function claim(
  config: ReturnType<typeof loadAgentConfig>,
  from: string,
  target: JoinTarget,
  code: string,
): Promise<RotationPackage> {
  const reply = await postClaim(config, from, "rekey-claim", target, code) as {
    pubkey?: unknown;
    salt?: unknown;
    wrapped?: unknown;
    rotations?: unknown;
    payload?: unknown;
  };
  decodeClaim(reply, from);
  if (!Array.isArray(reply.rotations)) {
    throw new CliError(
      `${from} answered without a rotation log; nothing was written.`,
    );
  }
  return {
    pubkey: String(reply.pubkey),
    salt: String(reply.salt),
    wrapped: String(reply.wrapped),
    statements: reply.rotations,
    updates: reply.payload ?? null,
  };
}

/** Reads a copy of the rotated envoy's files, for an air-gapped envoy. */
function packageFromDir(dir: string): RotationPackage {
  const read = (name: string, max: number) => {
    try {
      return readFileBounded(`${dir}/${name}`, max);
    } catch (error) {
      throw new CliError(
        `${dir}/${name} cannot be read (${
          (error as Error).message
        }); nothing was written.`,
        `copy ${IDENTITY_FILES.wrapped}, ${IDENTITY_FILES.salt}, ${IDENTITY_FILES.pub} and ${RETIRED_FILE} from ~/.vigo-puddle of the rotated envoy (and its ~/.vigo-gitback as gitback/) into ${dir}.`,
      );
    }
  };
  const pubkey = new TextDecoder().decode(read(IDENTITY_FILES.pub, 256))
    .trim();
  const salt = encodeBase64(read(IDENTITY_FILES.salt, 4096));
  const wrapped = encodeBase64(read(IDENTITY_FILES.wrapped, 4096));
  let log;
  try {
    log = decodeRetiredLog(read(RETIRED_FILE, MAX_RETIRED_BYTES));
  } catch (error) {
    throw nothingWritten(error);
  }
  const identity = decodeClaim({ pubkey, salt, wrapped }, dir);
  const last = log[log.length - 1];
  const gitbackCopy = `${dir}/gitback`;
  return {
    pubkey,
    salt,
    wrapped,
    statements: log.map((r) => r.wire),
    updates: exists(gitbackCopy) && last
      ? currentFounderUpdates(gitbackCopy, identity.publicKey, last.body.old)
      : null,
  };
}

/**
 * Checks the package before anything is written: its log verifies as a
 * chain ending at its key, and the passphrase unwraps that key.
 */
async function checkPassphrase(
  reader: SecretReader,
  pkg: RotationPackage,
  source: string,
): Promise<void> {
  const identity = decodeClaim(pkg, source);
  try {
    const log = verifyRotationChain(pkg.statements);
    const last = log[log.length - 1];
    if (!last || last.body.new !== formatPublicKey(identity.publicKey)) {
      throw new RotationError(
        `the rotation log from ${source} does not end at the key it hands over; nothing was written.`,
      );
    }
  } catch (error) {
    throw nothingWritten(error);
  }
  const passphrase = await reader.read("passphrase: ", "passphrase");
  let seed: Uint8Array | null;
  try {
    seed = await unwrapMatching(identity, passphrase);
  } catch {
    throw new CliError(
      `the passphrase does not unwrap the new key from ${source}; nothing was written.`,
      "use the passphrase of the puddle (rekey-pair keeps it).",
    );
  } finally {
    passphrase.fill(0);
    identity.wrapped.fill(0);
    identity.salt.fill(0);
  }
  seed?.fill(0);
  if (!seed) {
    throw new CliError(
      `${source} handed over a wrapped key that does not match its public key; nothing was written.`,
    );
  }
}

/** A refusal of a rotation, saying that nothing was written. */
function nothingWritten(error: unknown): unknown {
  if (!(error instanceof PuddleError)) return error;
  const message = error.message.replace(/\.$/, "");
  return new CliError(
    message.endsWith("nothing was written")
      ? `${message}.`
      : `${message}; nothing was written.`,
    error.hint,
  );
}

/** Installs as the target user, never as root in their home. */
async function installAs(
  target: JoinTarget,
  pkg: RotationPackage,
): Promise<number> {
  if (target.uid === Deno.uid()) return await installHere(userPaths(), pkg);
  const out = await runSelfAs(
    target,
    ["swarm", "puddle", INSTALL_ROTATION_VERB],
    // Wrapped key, public data: all safe to hold as text.
    JSON.stringify(pkg),
  );
  Deno.stdout.writeSync(new TextEncoder().encode(out.stdout));
  if (out.code !== 0) {
    const message = out.stderr.split("\n")
      .find((line) => line.startsWith("error: "))?.slice(7);
    throw new CliError(
      `could not install the new key as ${target.user}: ${
        message ?? "unknown error"
      }`,
    );
  }
  if (out.stderr) Deno.stderr.writeSync(new TextEncoder().encode(out.stderr));
  return 0;
}

/** Runs the hidden install verb: the package JSON on stdin. */
export async function installRotationFromStdin(): Promise<number> {
  const text = await new Response(Deno.stdin.readable).text();
  let pkg: RotationPackage;
  try {
    pkg = JSON.parse(text);
  } catch {
    throw new CliError("the rotation on standard input is not valid JSON.");
  }
  return await installHere(userPaths(), pkg);
}

/**
 * Checks the package against the key held here and installs it in one
 * commit, applies the project changes, and ends a session that still holds
 * the retired key.
 */
async function installHere(
  paths: UserPaths,
  pkg: RotationPackage,
): Promise<number> {
  printApplied(await finishFounderUpdates(paths));
  const identity = decodeClaim(pkg, "the rotation");
  const change = await installRotation(paths.puddleDir, {
    wrapped: identity.wrapped,
    salt: identity.salt,
    publicKey: identity.publicKey,
    statements: Array.isArray(pkg.statements) ? pkg.statements : [],
  }, pkg.updates ?? null);
  identity.wrapped.fill(0);
  identity.salt.fill(0);
  if (change.unfinished) {
    warnUnfinishedChange(paths.puddleDir, change.unfinished, "identity");
  }
  console.log(
    `✓ Rekeyed to ${
      formatPublicKey(change.publicKey)
    } (${change.taken} rotation${change.taken === 1 ? "" : "s"} taken)`,
  );
  printApplied(await finishFounderUpdates(paths));
  const locked = await lockSession(paths).then(() => true, () => false);
  if (locked) console.log("  session: the old key's session was locked");
  console.log("next: vigo swarm puddle unlock   (as yourself, no sudo)");
  return 0;
}
