/**
 * `vigo swarm puddle …`: the user's identity verbs.
 *
 * @module
 */

import { systemPaths, type UserPaths, userPaths } from "../platform/paths.ts";
import { proveToLocalAgent } from "./puddle_prove.ts";
import { adoptFoundedProjects } from "../gitback/adopt.ts";
import { SecretReader } from "../platform/tty.ts";
import { formatPublicKey } from "../crypto/ed25519.ts";
import { parseWrappedHeader } from "../crypto/wrap.ts";
import {
  IDENTITY_FILES,
  initIdentity,
  isInitialized,
  PuddleError,
  readPublicKey,
  repairPuddleDir,
  rotatePassphrase,
  unwrapIdentity,
} from "../puddle/identity.ts";
import { sessionStatus } from "../puddle/session/client.ts";
import { rotationStatus } from "../puddle/rekey.ts";
import { RETIRED_FILE } from "../puddle/rotation.ts";
import { liveHelperPid } from "../puddle/session/sentinel.ts";
import {
  DEFAULT_IDLE_MINUTES,
  HELPER_VERB,
  lockSession,
  prepareSessionDir,
  startSessionHelper,
  WATCHDOG_MS,
} from "../puddle/session/launch.ts";
import { runSessionHelper } from "../puddle/session/helper.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError, warnUnfinishedChange } from "./errors.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { requireFeature } from "./policy_gate.ts";
import {
  INSTALL_VERB,
  installFromStdin,
  join,
  members,
  pair,
} from "./puddle_pair.ts";
import { seedSigner } from "../crypto/signed_object.ts";
import { name } from "./puddle_name.ts";
import {
  finishFounderUpdates,
  INSTALL_ROTATION_VERB,
  installRotationFromStdin,
  rekey,
  rekeyPair,
} from "./puddle_rekey.ts";

const USAGE = `vigo swarm puddle <verb>

verbs:
  init                 create this user's puddle identity (asks for a passphrase twice)
  unlock [--idle-mins N]
                       unwrap the key and start the session helper
  lock                 scrub the key from memory and stop the session helper
  status [--json]      identity, session and pairing state, with recovery hints
  pubkey               print the puddle public key (ed25519:<hex>)
  rotate-passphrase    rewrap the key under a new passphrase
  pair                 print a 5-minute single-use code for another envoy
  join --from <host> [--code C]
                       (sudo) claim a code on <host> and install the identity
  members [--json]     this envoy and the envoys it paired with
  rekey-pair [--force-orphan-projects] [--reissue]
                       rotate to a new key (puddle unlocked; asks for the
                       passphrase) and print a 5-minute code for the others
  rekey --from <host> [--code C] | --from-dir <dir>
                       (sudo with --from) take the rotated key on this envoy
  name set <name> | clear | show [--json]
                       claim a friendly name (puddle unlocked), so that
                       gitback://<name>/<handle> resolves

Passphrases are read without echo on a terminal; otherwise one per line
from standard input (init and rotate-passphrase take the new one twice;
join and rekey take the code, then the passphrase).`;

/** Reads a new passphrase twice and checks the copies agree. */
async function readNewPassphrase(
  reader: SecretReader,
  label: string,
): Promise<Uint8Array> {
  const first = await reader.read(`${label}: `, label);
  const second = await reader.read(`repeat ${label}: `, `repeated ${label}`);
  try {
    if (!constantTimeEqual(first, second)) {
      throw new CliError(
        "the two passphrases differ; nothing was changed.",
        "run the command again and type the same passphrase twice.",
      );
    }
    if (first.length === 0) {
      throw new CliError(
        "an empty passphrase is not allowed; nothing was changed.",
        "choose a passphrase: it is the only thing protecting the key on disk.",
      );
    }
    return first.slice();
  } finally {
    first.fill(0);
    second.fill(0);
  }
}

async function init(args: string[]): Promise<number> {
  parseVerbArgs(args, {}, "vigo swarm puddle init");
  const paths = userPaths();
  if (isInitialized(paths.puddleDir)) {
    throw new CliError(
      `a puddle identity already exists in ${paths.puddleDir}; nothing was changed.`,
      "init never overwrites an identity; `vigo swarm puddle status` shows it.",
    );
  }
  const reader = new SecretReader();
  let passphrase: Uint8Array | undefined;
  try {
    passphrase = await readNewPassphrase(reader, "new passphrase");
    const change = await initIdentity(paths.puddleDir, passphrase);
    console.log(`✓ Puddle initialized`);
    console.log(`  pubkey: ${formatPublicKey(change.publicKey)}`);
    console.log(`  files:  ${paths.puddleDir}/identity.{wrapped,salt,pub}`);
    console.log(`next: vigo swarm puddle unlock`);
    if (change.unfinished) {
      warnUnfinishedChange(paths.puddleDir, change.unfinished, "identity");
    }
    return 0;
  } finally {
    passphrase?.fill(0);
    reader.close();
  }
}

function parseIdleMinutes(value: string | undefined): number {
  if (value === undefined) return DEFAULT_IDLE_MINUTES;
  const minutes = Number(value);
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 7 * 24 * 60) {
    throw new UsageError(
      `--idle-mins must be a number of minutes between 0 and 10080, not ${
        JSON.stringify(value)
      }.`,
      "for example `vigo swarm puddle unlock --idle-mins 60`.",
    );
  }
  return minutes;
}

async function unlock(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { "idle-mins": { type: "string" } },
    "vigo swarm puddle unlock [--idle-mins N]",
  );
  const idleMinutes = parseIdleMinutes(
    values["idle-mins"] as string | undefined,
  );
  const paths = userPaths();
  await repairPuddleDir(paths.puddleDir);
  await finishFounderUpdates(paths);
  const running = await sessionStatus(paths.sessionSocket).catch(() => null);
  const pid = running?.pid ?? liveHelperPid(paths.puddleDir);
  if (pid !== null) {
    throw new CliError(
      `the puddle is already unlocked (session helper pid ${pid}).`,
      "run `vigo swarm puddle lock` first to start a fresh session.",
    );
  }
  // A socket directory that cannot be used fails before the passphrase.
  prepareSessionDir(paths);
  const reader = new SecretReader();
  const passphrase = await reader.read("passphrase: ", "passphrase");
  reader.close();
  let unwrapped;
  try {
    unwrapped = await unwrapIdentity(paths.puddleDir, passphrase);
  } finally {
    passphrase.fill(0);
  }
  const adopted = await adoptAnnounced(paths, unwrapped.seed);
  const helperPid = await startSessionHelper(paths, unwrapped.seed, {
    idleMinutes,
    parentPid: Deno.ppid,
  });
  const agent = await proveToLocalAgent(paths, unwrapped.publicKey);
  console.log(`✓ Puddle unlocked`);
  if (adopted.length > 0) {
    console.log(
      `  adopted: ${
        adopted.join(", ")
      } (announced by peers; the agent fetches them)`,
    );
  }
  console.log(`  pubkey:  ${formatPublicKey(unwrapped.publicKey)}`);
  console.log(`  helper:  pid ${helperPid}, socket ${paths.sessionSocket}`);
  console.log(`  agent:   ${agent}`);
  console.log(
    `  locks:   on \`vigo swarm puddle lock\`, when this shell exits, or after ${
      formatDuration(idleMinutes * 60)
    } idle`,
  );
  return 0;
}

/**
 * Adopts the projects this puddle founded that peers announce, while the
 * key is still in hand. Only for users with gitback; never fatal.
 */
async function adoptAnnounced(
  paths: UserPaths,
  seed: Uint8Array,
): Promise<string[]> {
  try {
    requireFeature("gitback");
  } catch {
    return [];
  }
  const announced =
    `${systemPaths().varLib}/swarm/gitback/gitback-announced.json`;
  try {
    return await adoptFoundedProjects(
      paths.gitbackDir,
      announced,
      seedSigner(seed),
    );
  } catch (error) {
    console.error(
      `warning: could not adopt announced projects: ${
        (error as Error).message
      }`,
    );
    return [];
  }
}

async function lock(args: string[]): Promise<number> {
  parseVerbArgs(args, {}, "vigo swarm puddle lock");
  const pid = await lockSession(userPaths());
  console.log(
    `✓ Puddle locked (session helper ${pid} scrubbed its key and exited)`,
  );
  return 0;
}

function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

function pendingState(path: string): { pending: boolean; expires_at?: string } {
  try {
    const record = JSON.parse(Deno.readTextFileSync(path));
    if (typeof record.expires_at === "string") {
      if (Date.parse(record.expires_at) > Date.now()) {
        return { pending: true, expires_at: record.expires_at };
      }
      return { pending: false };
    }
    return { pending: true };
  } catch {
    return { pending: false };
  }
}

const RECOVERY_HINT =
  "there is no passphrase recovery in v1: if the passphrase is lost on every envoy, " +
  "run `vigo swarm puddle init` for a new puddle; projects and recipients bound to the old key are orphaned.";

async function status(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { json: { type: "boolean" } },
    "vigo swarm puddle status [--json]",
  );
  const paths = userPaths();
  await repairPuddleDir(paths.puddleDir);
  const applied = await finishFounderUpdates(paths);
  const initialized = isInitialized(paths.puddleDir);
  const rotation = rotationStatus(paths.puddleDir);
  let pubkey: string | null = null;
  let wrapping: {
    version: number;
    memory_kib: number;
    passes: number;
    lanes: number;
  } | null = null;
  let problem: string | null = null;
  if (initialized) {
    try {
      pubkey = formatPublicKey(readPublicKey(paths.puddleDir));
      const header = parseWrappedHeader(
        Deno.readFileSync(`${paths.puddleDir}/${IDENTITY_FILES.wrapped}`),
      );
      wrapping = {
        version: header.version,
        memory_kib: header.params.memoryKiB,
        passes: header.params.passes,
        lanes: header.params.lanes,
      };
    } catch (error) {
      problem = (error as Error).message;
    }
  }
  let session = null;
  try {
    session = await sessionStatus(paths.sessionSocket);
  } catch (error) {
    problem ??= (error as Error).message;
  }
  if (!session) liveHelperPid(paths.puddleDir);
  const pair = pendingState(`${paths.puddleDir}/pair.pending`);
  const rekey = pendingState(`${paths.puddleDir}/rekey.pending`);
  const report = {
    initialized,
    pubkey,
    puddle_dir: paths.puddleDir,
    wrapping,
    session: session
      ? {
        state: "unlocked",
        pid: session.pid,
        socket: paths.sessionSocket,
        idle_timeout_s: session.idle_timeout_s,
        idle_remaining_s: session.idle_remaining_s,
        started_at: session.started_at,
      }
      : { state: "locked" },
    pair,
    rekey,
    rotation: {
      rotations: rotation.retired.length,
      retired: rotation.retired,
      projects_pending: rotation.projectsPending,
      finished_now: applied?.updated ?? [],
      ...(rotation.logError ? { problem: rotation.logError } : {}),
    },
    problem,
    recovery: RECOVERY_HINT,
  };
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  console.log("puddle status");
  console.log(
    `  identity:  ${
      initialized
        ? `initialized (${pubkey ?? "unreadable"})`
        : "not initialized"
    }`,
  );
  console.log(`  directory: ${paths.puddleDir}`);
  if (wrapping) {
    console.log(
      `  wrapping:  v${wrapping.version}, Argon2id ${
        wrapping.memory_kib / 1024
      } MiB, ${wrapping.passes} passes, ${wrapping.lanes} lane(s); XChaCha20-Poly1305`,
    );
  }
  console.log(
    session
      ? `  session:   unlocked (helper pid ${session.pid}, locks after ${
        formatDuration(session.idle_remaining_s)
      } idle)`
      : "  session:   locked",
  );
  console.log(
    `  pairing:   ${
      pair.pending
        ? `code pending${pair.expires_at ? ` until ${pair.expires_at}` : ""}`
        : "none pending"
    }`,
  );
  console.log(
    `  rekey:     ${
      rekey.pending
        ? `claim pending${rekey.expires_at ? ` until ${rekey.expires_at}` : ""}`
        : "none pending"
    }`,
  );
  console.log(
    `  rotation:  ${
      rotation.retired.length === 0
        ? "never rotated"
        : `${rotation.retired.length} retired key(s), newest ${
          rotation.retired[rotation.retired.length - 1]
        }`
    }`,
  );
  if (rotation.logError) {
    console.log(`  problem:   ${RETIRED_FILE}: ${rotation.logError}`);
  }
  if (applied && applied.updated.length > 0) {
    console.log(
      `  finished:  the key rotation's project changes (${
        applied.updated.join(", ")
      })`,
    );
  }
  if (problem) console.log(`  problem:   ${problem}`);
  if (!initialized) {
    console.log("next: `vigo swarm puddle init` on your first envoy");
  } else if (!session) {
    console.log("next: `vigo swarm puddle unlock` to sign");
  }
  console.log(`recovery: ${RECOVERY_HINT}`);
  return 0;
}

async function pubkey(args: string[]): Promise<number> {
  parseVerbArgs(args, {}, "vigo swarm puddle pubkey");
  const { puddleDir } = userPaths();
  await repairPuddleDir(puddleDir);
  console.log(formatPublicKey(readPublicKey(puddleDir)));
  return 0;
}

/**
 * Tells the user that a rotation is committed (only the new passphrase
 * counts) although replacing the files stopped after the commit point.
 */

async function rotate(args: string[]): Promise<number> {
  parseVerbArgs(args, {}, "vigo swarm puddle rotate-passphrase");
  const paths = userPaths();
  // A committed change an earlier command could not finish is finished
  // first (or reported), so the check below sees the identity as it stands.
  await repairPuddleDir(paths.puddleDir);
  if (!isInitialized(paths.puddleDir)) readPublicKey(paths.puddleDir);
  const reader = new SecretReader();
  let current: Uint8Array | undefined;
  let next: Uint8Array | undefined;
  try {
    current = await reader.read("current passphrase: ", "current passphrase");
    next = await readNewPassphrase(reader, "new passphrase");
    // Throws only before the commit point: the old passphrase still works.
    const change = await rotatePassphrase(paths.puddleDir, current, next);
    console.log(`✓ Passphrase changed; the key is rewrapped under a new salt`);
    console.log(`  pubkey: ${formatPublicKey(change.publicKey)} (unchanged)`);
    console.log(
      "  other envoys keep the old wrapping until you copy identity.{wrapped,salt} or re-pair them.",
    );
    if (change.unfinished) {
      warnUnfinishedChange(paths.puddleDir, change.unfinished, "passphrase");
    }
    return 0;
  } finally {
    current?.fill(0);
    next?.fill(0);
    reader.close();
  }
}

async function sessionHelper(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(args, {
    "parent-pid": { type: "string" },
    "idle-ms": { type: "string" },
  }, `vigo swarm puddle ${HELPER_VERB} --parent-pid PID --idle-ms MS`);
  const parentPid = Number(values["parent-pid"]);
  const idleMs = Number(values["idle-ms"]);
  if (!Number.isSafeInteger(parentPid) || !(idleMs > 0)) {
    throw new UsageError(
      "the session helper needs --parent-pid and --idle-ms.",
    );
  }
  const paths = userPaths();
  await runSessionHelper({
    socketPath: paths.sessionSocket,
    puddleDir: paths.puddleDir,
    parentPid,
    idleMs,
    watchdogMs: WATCHDOG_MS,
    logPath: `${paths.sessionDir}/helper.log`,
  });
  return 0;
}

/** `vigo swarm puddle`. */
export const PUDDLE_GROUP: VerbGroup = {
  command: "vigo swarm puddle",
  noun: "puddle verb",
  usage: USAGE,
  verbs: {
    init,
    unlock,
    lock,
    status,
    pubkey,
    "rotate-passphrase": rotate,
    pair,
    join,
    members,
    "rekey-pair": rekeyPair,
    rekey,
    name,
  },
  hidden: {
    [HELPER_VERB]: sessionHelper,
    [INSTALL_VERB]: () => installFromStdin(),
    [INSTALL_ROTATION_VERB]: () => installRotationFromStdin(),
  },
  gate: () => requireFeature("puddle"),
  mapError: (error) =>
    error instanceof PuddleError
      ? new CliError(error.message, error.hint)
      : error,
};

/** Runs `vigo swarm puddle <verb> …`. */
export async function runPuddle(args: string[]): Promise<number> {
  return await dispatch(PUDDLE_GROUP, args);
}
