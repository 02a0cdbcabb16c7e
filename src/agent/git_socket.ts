/**
 * The agent's git socket, `<VIGO_ROOT>/var/run/vigo/gitback.sock`.
 *
 * Any local user may connect; the kernel (SO_PEERCRED) says which. A
 * connection names a project and presents a token chain; the agent checks
 * the chain offline, then challenges the caller to sign with the leaf
 * subject's puddle key through the caller's own session helper. Only then
 * does it run `git upload-pack` or `git receive-pack` on the bare repository
 * and pipe the bytes.
 *
 * @module
 */

import net from "node:net";
import { spawn } from "node:child_process";
import { peerCredentials, socketDescriptor } from "../platform/peercred.ts";
import { FetchHandoffs, handoffSocketPath } from "./fetch_handoff.ts";
import { userByUid } from "../platform/users.ts";
import { exists, removeIfExists } from "../platform/fs.ts";
import { recordProjectMeta } from "./announce.ts";
import {
  DEFAULT_SCOPE,
  type Scope,
  type ScopeStatementWire,
} from "../gitback/scope_statement.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import { fromHex } from "../crypto/hex.ts";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS, verifyWithContext } from "../crypto/signed.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import { toHex } from "../crypto/hex.ts";
import type { Role } from "../gitback/tokens.ts";
import {
  nextRefStateBody,
  readRefStates,
  type RefStateBody,
  type RefStateWire,
  refStateWire,
  verifyRefState,
} from "../gitback/ref_state.ts";
import { applyRefStates, setRefs } from "../gitback/ref_apply.ts";
import { installRoleHook } from "../gitback/ref_rules.ts";
import { withProjectLock } from "./project_lock.ts";
import {
  memberBindingBody,
  type MemberBindingWire,
  memberBindingWire,
  verifyMemberBinding,
} from "../gitback/member_binding.ts";
import {
  bareRepoPath,
  createStagingRepo,
  gitbackBase,
  installStagedRepo,
  listRefs,
  removeStaleStaging,
  repairHead,
  writeRepoMeta,
} from "../gitback/repo.ts";
import {
  challengePayload,
  type ConnectRequest,
  HANDSHAKE_TIMEOUT_MS,
  MAX_HANDSHAKE_LINE,
  parseConnectRequest,
  proofPayload,
} from "../gitback/connect_protocol.ts";
import { type AgentConfig, gitbackEnabledHere } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import { readPolicy } from "../envoy/policy.ts";
import { type ManagedHome, managedHomes } from "../envoy/user_homes.ts";
import { collectEnvoyStatus } from "../gitback/envoy_status.ts";
import { listUserProjects, readUserProject } from "./user_state.ts";
import { recordBinding } from "./puddle_bindings.ts";
import {
  delegationSummary,
  storedDelegations,
  verifyChainWithDelegations,
} from "./delegation_store.ts";
import {
  isTombstoned,
  readTombstone,
  tombstoneRefusal,
} from "./tombstone_store.ts";

/** Called after a push changed refs, with the refs before and after. */
export type PushListener = (
  projectId: string,
  chain: unknown[],
  before: Map<string, string>,
  after: Map<string, string>,
) => void;

/** Options for {@link startGitSocket}. */
export interface GitSocketOptions {
  config: AgentConfig;
  log: Logger;
  onPush?: PushListener;
  /** Connections one uid may hold open at once (8). */
  maxPerUid?: number;
  /** Connections open at once, all users together (64). */
  maxTotal?: number;
  /** Where fetches are handed off without a relay (fetch_handoff.ts). */
  handoffs?: FetchHandoffs;
}

/** Default cap on one uid's open connections. */
export const MAX_CONNECTIONS_PER_UID = 8;
/** Default cap on open connections, all users together. */
export const MAX_CONNECTIONS_TOTAL = 64;

/** The socket's path under the agent's roots. */
export function gitSocketPath(config: AgentConfig): string {
  return `${config.paths.varRun}/gitback.sock`;
}

class Refusal extends Error {}

/** Reads newline-terminated lines from a socket, keeping what follows. */
class HandshakeReader {
  #buffer = new Uint8Array(0);
  #waiters: ((line: string | null) => void)[] = [];
  #ended = false;

  constructor(private socket: net.Socket) {
    socket.on("data", this.#onData);
    socket.on("end", () => {
      this.#ended = true;
      this.#flush();
    });
  }

  #onData = (chunk: Uint8Array) => {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    this.#buffer = joined;
    // Every line counts, finished or not: the first newline must come
    // within the cap.
    const newline = this.#buffer.indexOf(0x0a);
    if ((newline < 0 ? this.#buffer.length : newline) > MAX_HANDSHAKE_LINE) {
      this.#tooLong = true;
      this.socket.off("data", this.#onData);
      this.#buffer = new Uint8Array(0);
      this.#ended = true;
      this.#flush();
      return;
    }
    this.#flush();
  };

  #tooLong = false;

  /** True when the peer sent a line over the cap (the reader then stops). */
  get tooLong(): boolean {
    return this.#tooLong;
  }

  #flush() {
    while (this.#waiters.length > 0) {
      const newline = this.#buffer.indexOf(0x0a);
      if (newline < 0) {
        if (this.#ended) this.#waiters.shift()!(null);
        return;
      }
      const line = new TextDecoder().decode(this.#buffer.subarray(0, newline));
      this.#buffer = this.#buffer.slice(newline + 1);
      this.#waiters.shift()!(line);
    }
  }

  /** The next line, or null if the peer closed first. */
  line(): Promise<string | null> {
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#flush();
    });
  }

  /** Stops reading lines; returns bytes already received past them. */
  detach(): Uint8Array {
    this.socket.off("data", this.#onData);
    return this.#buffer;
  }
}

function send(socket: net.Socket, value: unknown) {
  socket.write(JSON.stringify(value) + "\n");
}

/** {@link send}, resolving once the line is in the kernel's hands. */
function sendFlushed(socket: net.Socket, value: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.write(
      JSON.stringify(value) + "\n",
      (error) => error ? reject(error) : resolve(),
    )
  );
}

async function authorize(
  config: AgentConfig,
  log: Logger,
  uid: number,
  request: ConnectRequest,
) {
  const user = userByUid(uid)?.name;
  if (!user) {
    throw new Refusal(`uid ${uid} has no account on ${config.hostname}.`);
  }
  if (!gitbackEnabledHere(config)) {
    throw new Refusal(`gitback is not enabled on ${config.hostname}.`);
  }
  if (uid !== 0 && !readPolicy(config.paths, user)?.gitback) {
    throw new Refusal(
      `gitback is not enabled for user ${user} on ${config.hostname}; an operator sets \`gitback: true\` in the usercrate.`,
    );
  }
  // The founder closed the project: say where it went, whatever the chain.
  const tombstoned = tombstoneRefusal(config.paths, request.project_id);
  if (tombstoned) throw new Refusal(tombstoned);
  try {
    // The delegations the caller holds, merged with those recorded here.
    const verified = await verifyChainWithDelegations(
      config.paths,
      request.chain,
      request.delegations,
      {
        projectId: request.project_id,
        revoked: revokedTokenIds(config.paths, request.project_id),
      },
      log,
    );
    if (verified.handle !== request.handle) {
      throw new Refusal(
        `the handle ${
          JSON.stringify(request.handle)
        } does not belong to project ${request.project_id}.`,
      );
    }
    return { user, verified };
  } catch (error) {
    if (error instanceof Refusal) throw error;
    throw new Refusal(`access refused: ${(error as Error).message}`);
  }
}

/** Answers `{"op":"status"}`: root sees every user, others their own. */
async function answerStatus(
  socket: net.Socket,
  config: AgentConfig,
  uid: number,
): Promise<void> {
  const homes = managedHomes(config).filter((h) => uid === 0 || h.uid === uid);
  const projects = homes.flatMap((home) =>
    listUserProjects(home).map((p) => ({
      project_id: p.projectId,
      handle: p.handle,
      scope: p.scope,
    }))
  );
  const status = await collectEnvoyStatus(
    config.paths,
    projects,
    uid === 0,
    (projectId) => delegationSummary(config.paths, projectId),
    (projectId) => {
      const tombstone = readTombstone(config.paths, projectId);
      return tombstone ? { successor: tombstone.body.successor } : null;
    },
  );
  send(socket, { ok: true, status });
  socket.end();
}

/**
 * Answers `{"op":"prove"}`: a fresh challenge that the caller signs with
 * their puddle key through their session helper; the agent then records
 * which key this uid holds (puddle_bindings.ts).
 */
async function answerProof(
  socket: net.Socket,
  reader: HandshakeReader,
  config: AgentConfig,
  log: Logger,
  uid: number,
): Promise<void> {
  const user = userByUid(uid)?.name;
  if (!user) {
    throw new Refusal(`uid ${uid} has no account on ${config.hostname}.`);
  }
  const challenge = encodeBase64(crypto.getRandomValues(new Uint8Array(32)));
  send(socket, { challenge, agent: config.hostname, uid });
  const answer = await reader.line();
  if (answer === null) return;
  let key: Uint8Array;
  let signature: Uint8Array;
  try {
    const parsed = JSON.parse(answer);
    key = parsePublicKey(String(parsed.pubkey));
    signature = fromHex(String(parsed.signature));
  } catch {
    throw new Refusal(
      'the proof must be {"pubkey": "ed25519:<hex>", "signature": "<hex>"}.',
    );
  }
  // The canonical spelling of the key, whatever spelling was sent.
  const canonical = formatPublicKey(key);
  const payload = proofPayload({
    agent: config.hostname,
    challenge,
    pubkey: canonical,
    uid,
  });
  if (
    !verifyWithContext(
      key,
      SIGN_CONTEXTS.puddleAgentChallenge,
      payload,
      signature,
    )
  ) {
    log.warn("puddle proof signature failure", { user });
    throw new Refusal("the proof was not signed by the key it names.");
  }
  // Then the statement peers ask for: this key lives on this envoy.
  const bind = memberBindingBody({ member: canonical, envoy: config.hostname });
  send(socket, { bind });
  const signed = await reader.line();
  if (signed === null) return;
  let statement: MemberBindingWire;
  try {
    statement = memberBindingWire(
      bind,
      fromHex(String(JSON.parse(signed).signature)),
    );
    verifyMemberBinding(statement, {
      member: canonical,
      envoy: config.hostname,
    });
  } catch (error) {
    throw new Refusal(
      `the binding statement was refused: ${(error as Error).message}`,
    );
  }
  recordBinding(config.paths, { uid, user, pubkey: canonical, statement });
  log.info("puddle key proven", { user, pubkey: canonical });
  send(socket, { ok: true });
  socket.end();
}

async function serveConnection(
  socket: net.Socket,
  uid: number,
  options: GitSocketOptions,
): Promise<void> {
  const { config, log } = options;
  const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
  const reader = new HandshakeReader(socket);
  let request: ConnectRequest | undefined;
  try {
    const first = await reader.line();
    if (first === null) {
      if (reader.tooLong) {
        throw new Refusal(
          `the request line is longer than ${MAX_HANDSHAKE_LINE} bytes.`,
        );
      }
      return;
    }
    if (first.trim() === '{"op":"status"}') {
      clearTimeout(timer);
      await answerStatus(socket, config, uid);
      return;
    }
    if (first.trim() === '{"op":"prove"}') {
      await answerProof(socket, reader, config, log, uid);
      return;
    }
    let parsed: { op?: unknown; ticket?: unknown };
    try {
      parsed = JSON.parse(first);
    } catch (error) {
      throw new Refusal(`malformed request: ${(error as Error).message}`);
    }
    if (parsed?.op === "sign-refs") {
      await answerSignRefs(socket, reader, uid, parsed.ticket);
      return;
    }
    try {
      request = parseConnectRequest(parsed);
    } catch (error) {
      throw new Refusal(`malformed request: ${(error as Error).message}`);
    }
    const { user, verified } = await authorize(config, log, uid, request);

    const challenge = encodeBase64(crypto.getRandomValues(new Uint8Array(32)));
    send(socket, { challenge, agent: config.hostname });
    const second = await reader.line();
    if (second === null) {
      if (reader.tooLong) {
        throw new Refusal(
          `the answer line is longer than ${MAX_HANDSHAKE_LINE} bytes.`,
        );
      }
      return;
    }
    let signature: Uint8Array;
    try {
      signature = fromHex(String(JSON.parse(second).signature));
    } catch {
      throw new Refusal('the challenge answer must be {"signature": "<hex>"}.');
    }
    const payload = challengePayload({
      agent: config.hostname,
      challenge,
      projectId: request.project_id,
      service: request.service,
      uid,
    });
    const subject = parsePublicKey(verified.leaf.body.subject);
    if (
      !verifyWithContext(
        subject,
        SIGN_CONTEXTS.puddleAgentChallenge,
        payload,
        signature,
      )
    ) {
      log.warn("git socket signature failure", {
        user,
        project: request.project_id,
      });
      throw new Refusal(
        "the challenge was not signed by the token's subject; unlock the puddle that holds this token.",
      );
    }
    // The caller just proved possession of the subject's key.
    recordBinding(config.paths, {
      uid,
      user,
      pubkey: formatPublicKey(subject),
    });

    const repo = bareRepoPath(config.paths, request.project_id);
    const pushing = request.service === "git-receive-pack";
    if (!pushing && !exists(repo)) {
      throw new Refusal(
        `${config.hostname} holds no bare repository for ${request.handle} yet; push to it first.`,
      );
    }
    clearTimeout(timer);
    log.info("git session", {
      user,
      service: request.service,
      project: request.project_id,
      role: verified.role,
    });
    if (pushing) {
      await servePush(socket, reader, request, options, {
        uid,
        signer: subject,
        role: verified.role,
        meta: {
          handle: verified.handle,
          ...callerScope(config, uid, request.project_id),
        },
      });
      return;
    }
    // A helper that can take the pack straight from upload-pack gets a
    // ticket to hand its own descriptors over (fetch_handoff.ts).
    const ticket = request.handoff === true
      ? options.handoffs?.offer(uid, repo, request.project_id) ?? null
      : null;
    if (ticket !== null) {
      await sendFlushed(socket, { ok: true, handoff: ticket });
      return;
    }
    await sendFlushed(socket, { ok: true });
    await runService(socket, reader.detach(), request, repo, options);
  } catch (error) {
    if (error instanceof Refusal) {
      log.warn("git socket refused", {
        uid,
        project: request?.project_id ?? "-",
        reason: error.message,
      });
      if (!socket.destroyed) {
        send(socket, { ok: false, error: error.message });
        socket.end();
      }
      return;
    }
    log.error("git socket failure", { error: (error as Error).message });
    socket.destroy();
  } finally {
    clearTimeout(timer);
  }
}

/** How long a finished push waits for its pusher to sign the new ref state. */
export const SIGN_WINDOW_MS = 15_000;

/** A push whose ref state waits for the pusher's signature. */
class PendingPush {
  body: Promise<RefStateBody | null>;
  signature: Promise<RefStateWire | null>;
  outcome: Promise<{ ok: true; seq: number } | { ok: false; error: string }>;
  offer!: (body: RefStateBody | null) => void;
  sign!: (wire: RefStateWire | null) => void;
  finish!: (
    outcome: { ok: true; seq: number } | { ok: false; error: string },
  ) => void;

  constructor(readonly uid: number, readonly chain: unknown[]) {
    this.body = new Promise((resolve) => this.offer = resolve);
    this.signature = new Promise((resolve) => this.sign = resolve);
    this.outcome = new Promise((resolve) => this.finish = resolve);
  }
}

/** Pushes waiting for a signature, by the ticket their pusher was given. */
const pendingPushes = new Map<string, PendingPush>();

/** The pusher's side of a push: who, with which role and project record. */
interface Pusher {
  uid: number;
  signer: Uint8Array;
  role: Role;
  /** The handle, and the founder's scope statement (verified) from the pusher's state. */
  meta: {
    handle: string;
    scope: Scope;
    statement: ScopeStatementWire | null;
  };
}

/**
 * A push: receive-pack runs under the role hook (ref_rules.ts), on the
 * repository or, for a first push, on a staging repository. When refs
 * moved, the pusher's helper is asked (by the ticket it was given) to sign
 * the new ref state; a signed state is recorded and fans out, an unsigned
 * one is rolled back (a first push leaves nothing). The project's lock is
 * held throughout, so no delivery or other push interleaves.
 */
async function servePush(
  socket: net.Socket,
  reader: HandshakeReader,
  request: ConnectRequest,
  options: GitSocketOptions,
  pusher: Pusher,
): Promise<void> {
  const { config, log } = options;
  const projectId = request.project_id;
  const ticket = toHex(crypto.getRandomValues(new Uint8Array(32)));
  const pending = new PendingPush(pusher.uid, request.chain);
  pendingPushes.set(ticket, pending);
  try {
    await withProjectLock(projectId, async () => {
      const repo = bareRepoPath(config.paths, projectId);
      const fresh = !exists(repo);
      const target = fresh
        ? await createStagingRepo(config.paths, projectId)
        : repo;
      let keep = !fresh;
      try {
        send(socket, { ok: true, ticket });
        const before = await listRefs(target);
        const code = await runService(
          socket,
          reader.detach(),
          request,
          target,
          options,
          pusher.role,
        );
        const after = code === 0 ? await listRefs(target) : before;
        const moved = after.size !== before.size ||
          [...after].some(([ref, id]) => before.get(ref) !== id);
        if (!moved) return;
        const stored = readRefStates(target);
        pending.offer(nextRefStateBody({
          projectId,
          parent: stored.current,
          refs: after,
          signer: pusher.signer,
        }));
        const wire = await Promise.race([
          pending.signature,
          new Promise<null>((resolve) => {
            const t = setTimeout(() => resolve(null), SIGN_WINDOW_MS);
            pending.signature.then(() => clearTimeout(t));
          }),
        ]);
        try {
          if (!wire) {
            throw new Error(
              "the pusher did not sign the new ref state in time",
            );
          }
          const verified = await verifyRefState(wire, {
            projectId,
            revoked: revokedTokenIds(config.paths, projectId),
            tombstoned: isTombstoned(config.paths, projectId),
            delegations: storedDelegations(config.paths, projectId),
          });
          if (verified.body.signer !== formatPublicKey(pusher.signer)) {
            throw new Error("the ref state was signed by another key");
          }
          await applyRefStates(target, [verified]);
        } catch (error) {
          const reason = (error as Error).message;
          if (!fresh) {
            await setRefs(
              target,
              stored.current
                ? new Map(Object.entries(stored.current.body.refs))
                : before,
            );
          }
          log.warn("push rolled back", { project: projectId, reason });
          pending.finish({
            ok: false,
            error: `${reason}; the push was undone.`,
          });
          return;
        }
        let installed = target;
        if (fresh) {
          // The scope lands with the repository: no crash leaves it unknown.
          writeRepoMeta(target, {
            handle: pusher.meta.handle,
            scope: pusher.meta.scope,
            scope_statement: pusher.meta.statement,
          });
          installed = await installStagedRepo(config.paths, projectId, target);
          keep = true;
        }
        // First push: the record. Later ones: a record without a statement
        // gets the pusher's, if it verified (recordProjectMeta keeps the
        // first verified statement).
        recordProjectMeta(config, { projectId, ...pusher.meta });
        await repairHead(installed, await listRefs(installed));
        // Fan-out records what it owes each peer before the pusher hears
        // back (fanout.ts), so a stop right after the push loses nothing.
        options.onPush?.(projectId, request.chain, before, after);
        pending.finish({
          ok: true,
          seq: readRefStates(installed).current?.body.seq ?? 0,
        });
      } finally {
        if (!keep) {
          await Deno.remove(target, { recursive: true }).catch(() => {});
        }
      }
    });
  } finally {
    pending.offer(null);
    pending.finish({ ok: false, error: "the push changed no refs." });
    pendingPushes.delete(ticket);
  }
}

/**
 * Answers `{"op":"sign-refs","ticket":…}`: the pusher's helper, after its
 * push, gets the new ref state to sign through its session helper.
 */
async function answerSignRefs(
  socket: net.Socket,
  reader: HandshakeReader,
  uid: number,
  ticket: unknown,
): Promise<void> {
  const pending = typeof ticket === "string"
    ? pendingPushes.get(ticket)
    : undefined;
  if (!pending || pending.uid !== uid) {
    // Finished, or never this caller's: nothing of theirs waits.
    send(socket, { ok: true, body: null });
    return;
  }
  const body = await pending.body;
  if (!body) {
    send(socket, { ok: true, body: null });
    return;
  }
  send(socket, { body });
  const answer = await reader.line();
  if (answer === null) {
    pending.sign(null);
    return;
  }
  let signature: Uint8Array;
  try {
    signature = fromHex(String(JSON.parse(answer).signature));
  } catch {
    pending.sign(null);
    throw new Refusal('the answer must be {"signature": "<hex>"}.');
  }
  pending.sign(refStateWire(body, signature, pending.chain));
  send(socket, await pending.outcome);
}

async function runService(
  socket: net.Socket,
  pending: Uint8Array,
  request: ConnectRequest,
  repo: string,
  options: GitSocketOptions,
  role?: Role,
): Promise<number> {
  const pushing = request.service === "git-receive-pack";
  const child = pushing
    ? spawn("git", [
      "-c",
      `core.hooksPath=${roleHookDir(options.config)}`,
      "receive-pack",
      repo,
    ], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, VIGO_ROLE: role ?? "member" },
    })
    : spawn(request.service, [repo], {
      // A fetch's pack goes from upload-pack straight into the caller's
      // socket, not through this process. Only the write side is handed
      // over: this socket keeps reading (the node layer always has a read
      // in flight, so a child reading the descriptor would race it for the
      // caller's bytes) and relays what the caller says, which for a fetch
      // is only its wants and haves. Every line this process wrote is in
      // the kernel before upload-pack starts (sendFlushed), so nothing can
      // interleave.
      stdio: ["pipe", socketDescriptor(socket) ?? "pipe", "pipe"],
    });
  const stderr: Uint8Array[] = [];
  child.stderr?.on("data", (chunk: Uint8Array) => stderr.push(chunk));
  if (pending.length > 0) child.stdin?.write(pending);
  if (child.stdin) socket.pipe(child.stdin);
  child.stdout?.pipe(socket);
  socket.on("error", () => child.kill("SIGTERM"));
  child.stdin?.on("error", () => {});
  const code = await new Promise<number>((resolve) =>
    child.on("close", (c) => resolve(c ?? 1))
  );
  socket.end();
  if (code !== 0) {
    options.log.warn("git service failed", {
      service: request.service,
      project: request.project_id,
      code,
      stderr: new TextDecoder().decode(
        Uint8Array.from(stderr.flatMap((c) => [...c])),
      ).trim().slice(0, 300),
    });
  }
  return code;
}

/** Where the role hook lives (root-owned, written at start-up). */
function roleHookDir(config: AgentConfig): string {
  return `${gitbackBase(config.paths)}/hooks`;
}

/**
 * The scope of a push by `uid`: the founder's statement in the caller's
 * project.json, verified (user_state.ts); `members-only` without one. The
 * file's `scope` field decides nothing.
 */
function callerScope(
  config: AgentConfig,
  uid: number,
  projectId: string,
): { scope: Scope; statement: ScopeStatementWire | null } {
  for (
    const home of managedHomes(config).filter((h: ManagedHome) => h.uid === uid)
  ) {
    const project = readUserProject(home, projectId);
    if (project) {
      return { scope: project.scope, statement: project.scopeStatement };
    }
  }
  return { scope: DEFAULT_SCOPE, statement: null };
}

/**
 * Logs an event at most once per period per key, counting the ones left
 * out, so that a flood of refused connections cannot flood the log.
 */
class RateLimitedLog {
  #last = new Map<number, { at: number; suppressed: number }>();
  constructor(private periodMs: number) {}

  note(key: number, write: (suppressed: number) => void): void {
    const now = Date.now();
    const entry = this.#last.get(key);
    if (entry && now - entry.at < this.periodMs) {
      entry.suppressed++;
      return;
    }
    if (this.#last.size > 4096) this.#last.clear();
    write(entry?.suppressed ?? 0);
    this.#last.set(key, { at: now, suppressed: 0 });
  }
}

/** Listens on the git socket until closed. */
export async function startGitSocket(
  options: GitSocketOptions,
): Promise<{ path: string; close(): Promise<void> }> {
  const path = gitSocketPath(options.config);
  const { log } = options;
  const maxPerUid = options.maxPerUid ?? MAX_CONNECTIONS_PER_UID;
  const maxTotal = options.maxTotal ?? MAX_CONNECTIONS_TOTAL;
  Deno.mkdirSync(options.config.paths.varRun, { recursive: true, mode: 0o755 });
  removeIfExists(path);
  installRoleHook(roleHookDir(options.config));
  const staged = removeStaleStaging(options.config.paths);
  if (staged > 0) {
    log.info("removed unfinished first pushes", { count: staged });
  }
  const handoffs = new FetchHandoffs(log);
  handoffs.start(handoffSocketPath(options.config.paths.varRun));
  options = { ...options, handoffs };
  const open = new Map<number, number>();
  const sockets = new Set<net.Socket>();
  let total = 0;
  const busyLog = new RateLimitedLog(10_000);
  // Half-open: git closes its side after sending a pack and still waits
  // for receive-pack's report on ours.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    // A client that hangs up early makes writes fail (EPIPE): that ends
    // this connection only, never the agent.
    socket.on("error", (error: Error & { code?: string }) => {
      // A client that went away is no news; anything else is logged.
      if (error.code !== "EPIPE" && error.code !== "ECONNRESET") {
        log.warn("git socket connection error", { error: error.message });
      }
      socket.destroy();
    });
    let uid: number;
    try {
      uid = peerCredentials(socket).uid;
    } catch (error) {
      log.error("git socket failure", { error: (error as Error).message });
      socket.destroy();
      return;
    }
    const mine = open.get(uid) ?? 0;
    if (mine >= maxPerUid || total >= maxTotal) {
      busyLog.note(
        uid,
        (suppressed) =>
          log.warn("git socket busy", { uid, open: mine, total, suppressed }),
      );
      send(socket, {
        ok: false,
        error: mine >= maxPerUid
          ? `uid ${uid} already has ${mine} gitback connections open (the limit); retry when some finish.`
          : `the agent is serving ${total} gitback connections (the limit); retry shortly.`,
      });
      socket.end();
      return;
    }
    open.set(uid, mine + 1);
    total++;
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      total--;
      const left = (open.get(uid) ?? 1) - 1;
      if (left > 0) open.set(uid, left);
      else open.delete(uid);
    });
    serveConnection(socket, uid, options).then(
      // Our side is done; the connection (and its slot) ends once the
      // client's side does, or at once if it already did.
      () => {
        if (!socket.destroyed) socket.end();
      },
      (error) => {
        log.error("git socket failure", { error: (error as Error).message });
        socket.destroy();
      },
    );
  });
  server.on("error", (error: Error) => {
    log.error("git socket listener error", { error: error.message });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  // Every local user may connect; the kernel tells us who did.
  Deno.chmodSync(path, 0o666);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A stopping agent ends its sessions rather than waiting for them.
        for (const socket of sockets) socket.destroy();
        removeIfExists(path);
      }).then(() => handoffs.close()),
  };
}
