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
import { peerCredentials } from "../platform/peercred.ts";
import { userByUid } from "../platform/users.ts";
import { exists, readOwnedJson, removeIfExists } from "../platform/fs.ts";
import { recordProjectMeta } from "./announce.ts";
import { encodeBase64 } from "../platform/encoding.ts";
import { fromHex } from "../crypto/hex.ts";
import { parsePublicKey } from "../crypto/ed25519.ts";
import { verifyWithContext } from "../crypto/signed.ts";
import { verifyChain } from "../gitback/tokens.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import {
  bareRepoPath,
  ensureBareRepo,
  listRefs,
  repairHead,
  tombstonePath,
} from "../gitback/repo.ts";
import {
  challengePayload,
  type ConnectRequest,
  HANDSHAKE_TIMEOUT_MS,
  MAX_HANDSHAKE_LINE,
  parseConnectRequest,
} from "../gitback/connect_protocol.ts";
import { type AgentConfig, gitbackEnabledHere } from "./config.ts";
import type { Logger } from "./log.ts";
import { readPolicy } from "./policy.ts";
import { managedHomes } from "./user_homes.ts";
import { collectEnvoyStatus } from "../gitback/envoy_status.ts";

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
}

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
    if (
      this.#buffer.indexOf(0x0a) < 0 && this.#buffer.length > MAX_HANDSHAKE_LINE
    ) {
      this.socket.destroy();
      return;
    }
    this.#flush();
  };

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

async function authorize(
  config: AgentConfig,
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
  const tombstoned = exists(tombstonePath(config.paths, request.project_id));
  try {
    const verified = await verifyChain(request.chain, {
      projectId: request.project_id,
      revoked: revokedTokenIds(config.paths, request.project_id),
      tombstoned,
    });
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

async function serveConnection(
  socket: net.Socket,
  options: GitSocketOptions,
): Promise<void> {
  const { config, log } = options;
  const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
  const reader = new HandshakeReader(socket);
  let uid = -1;
  let request: ConnectRequest | undefined;
  try {
    uid = peerCredentials(socket).uid;
    const first = await reader.line();
    if (first === null) return;
    if (first.trim() === '{"op":"status"}') {
      clearTimeout(timer);
      const status = await collectEnvoyStatus(
        config.paths,
        managedHomes(config).map((h) => `${h.home}/.vigo-gitback`),
      );
      send(socket, { ok: true, status });
      socket.end();
      return;
    }
    try {
      request = parseConnectRequest(JSON.parse(first));
    } catch (error) {
      throw new Refusal(`malformed request: ${(error as Error).message}`);
    }
    const { user, verified } = await authorize(config, uid, request);

    const challenge = encodeBase64(crypto.getRandomValues(new Uint8Array(32)));
    send(socket, { challenge, agent: config.hostname });
    const second = await reader.line();
    if (second === null) return;
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
        "vigo-swarm/v1/puddle-agent-challenge",
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

    let repo = bareRepoPath(config.paths, request.project_id);
    if (request.service === "git-receive-pack") {
      repo = await ensureBareRepo(config.paths, request.project_id);
      recordProjectMeta(config, {
        projectId: request.project_id,
        handle: verified.handle,
        scope: callerScope(config, uid, request.project_id),
      });
    } else if (!exists(repo)) {
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
    send(socket, { ok: true });
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

async function runService(
  socket: net.Socket,
  pending: Uint8Array,
  request: ConnectRequest,
  repo: string,
  options: GitSocketOptions,
): Promise<void> {
  const pushing = request.service === "git-receive-pack";
  const before = pushing ? await listRefs(repo) : undefined;
  const child = spawn(request.service, [repo], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stderr: Uint8Array[] = [];
  child.stderr.on("data", (chunk: Uint8Array) => stderr.push(chunk));
  if (pending.length > 0) child.stdin.write(pending);
  socket.pipe(child.stdin);
  child.stdout.pipe(socket);
  socket.on("error", () => child.kill("SIGTERM"));
  child.stdin.on("error", () => {});
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
    return;
  }
  if (pushing && before) {
    const after = await listRefs(repo);
    await repairHead(repo, after);
    if (!options.onPush) return;
    const changed = after.size !== before.size ||
      [...after].some(([ref, id]) => before.get(ref) !== id);
    if (changed) {
      options.onPush(request.project_id, request.chain, before, after);
    }
  }
}

/** The scope in the caller's project.json, if it can be read. */
function callerScope(
  config: AgentConfig,
  uid: number,
  projectId: string,
): string {
  for (const home of managedHomes(config).filter((h) => h.uid === uid)) {
    try {
      const project = readOwnedJson(
        `${home.home}/.vigo-gitback/${projectId}/project.json`,
        uid,
      ) as { scope?: unknown };
      if (project.scope === "members-only") return "members-only";
      return "swarm-wide";
    } catch {
      // Try the next home of this uid.
    }
  }
  return "swarm-wide";
}

/** Listens on the git socket until closed. */
export async function startGitSocket(
  options: GitSocketOptions,
): Promise<{ path: string; close(): Promise<void> }> {
  const path = gitSocketPath(options.config);
  Deno.mkdirSync(options.config.paths.varRun, { recursive: true, mode: 0o755 });
  removeIfExists(path);
  // Half-open: git closes its side after sending a pack and still waits
  // for receive-pack's report on ours.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    serveConnection(socket, options).catch((error) => {
      options.log.error("git socket failure", {
        error: (error as Error).message,
      });
      socket.destroy();
    });
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
        removeIfExists(path);
      }),
  };
}
