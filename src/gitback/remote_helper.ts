/**
 * The `git-remote-gitback` face: git runs it for `gitback://` URLs and talks
 * the remote-helper protocol on stdin/stdout. It offers the `connect`
 * capability: for each git service it opens the local agent's git socket,
 * proves through the user's session helper that it holds the token's key,
 * and then passes git's pack protocol through unchanged.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { StdinLines } from "../platform/tty.ts";
import { UnixSocketClient } from "../platform/unix_socket.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import { SessionClient, SessionError } from "../puddle/session/client.ts";
import { parseProjectUrl } from "./project_id.ts";
import { readDelegations, readTokens } from "./project.ts";
import { type RefStateBody, refStateBytes } from "./ref_state.ts";
import {
  challengePayload,
  type ConnectRequest,
  type GitService,
  type LineCarry,
  readHandshakeLine,
  writeHandshakeLine,
} from "./connect_protocol.ts";

/** Capabilities announced to git, one per line. */
export const CAPABILITIES = ["connect"];

class HelperFailure extends Error {}

/** Reads one handshake line; the agent closing first is a failure. */
async function readLine(conn: Deno.UnixConn, carry: LineCarry) {
  let line: string | null;
  try {
    line = await readHandshakeLine(conn, carry);
  } catch (error) {
    throw new HelperFailure((error as Error).message);
  }
  if (line === null) {
    throw new HelperFailure(
      "the agent closed the connection during the handshake.",
    );
  }
  return line;
}

/**
 * A refusal, with a hint when a key rotation has not yet updated the
 * user's projects (their chains are stale until it has). The rotation
 * module loads only on this path, not on every git operation.
 */
async function withRotationHint(
  refusal: string,
  puddleDir: string,
): Promise<string> {
  const { FOUNDER_UPDATES } = await import("../puddle/rekey.ts");
  try {
    Deno.lstatSync(`${puddleDir}/${FOUNDER_UPDATES}`);
  } catch {
    return refusal;
  }
  return `${refusal} A key rotation has not finished updating your projects: run \`vigo swarm puddle status\`, which finishes it, then retry.`;
}

/**
 * The project id a friendly `gitback://<name>/<handle>` stands for. The
 * name modules load only on this path, not on every git operation.
 */
async function resolveName(name: string, handle: string): Promise<string> {
  const names = await import("../puddle/names.ts");
  const { resolveFriendly } = await import("./friendly_url.ts");
  const paths = userPaths();
  try {
    return resolveFriendly(
      paths.gitbackDir,
      name,
      handle,
      names.readNameMap(names.nameMapPath(systemPaths().varLib)),
      names.readNameClaim(paths.puddleDir),
    );
  } catch (error) {
    const hint = (error as { hint?: string }).hint;
    throw new HelperFailure(
      `${(error as Error).message}${hint ? ` ${hint}` : ""}`,
    );
  }
}

/** Opens the agent socket and completes the handshake for `service`. */
async function connectService(
  url: string,
  service: GitService,
  handoff: boolean,
): Promise<
  { conn: Deno.UnixConn; carry: Uint8Array; ticket?: string; handoff?: string }
> {
  const parsed = parseProjectUrl(url);
  const paths = userPaths();
  const target = "id" in parsed ? parsed : {
    id: await resolveName(parsed.name, parsed.handle),
    handle: parsed.handle,
  };
  const tokens = readTokens(paths.gitbackDir, target.id);
  // After a founder rotation, chains verify only with its delegations.
  const delegations = readDelegations(paths.gitbackDir, target.id);
  const socketPath = `${systemPaths().varRun}/gitback.sock`;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socketPath });
  } catch {
    throw new HelperFailure(
      `cannot reach the gitback agent at ${socketPath}; is \`vigo agent\` running on this envoy?`,
    );
  }
  const request: ConnectRequest = {
    op: "connect",
    service,
    project_id: target.id,
    handle: target.handle,
    chain: tokens.chain,
    ...(delegations.length > 0 ? { delegations } : {}),
    ...(handoff ? { handoff: true } : {}),
  };
  const carry = { bytes: new Uint8Array(0) };
  await writeHandshakeLine(conn, request);
  const reply = JSON.parse(await readLine(conn, carry));
  if (reply.ok === false) {
    throw new HelperFailure(
      await withRotationHint(String(reply.error), paths.puddleDir),
    );
  }
  if (typeof reply.challenge !== "string" || typeof reply.agent !== "string") {
    throw new HelperFailure("the agent sent no challenge.");
  }
  let signature: Uint8Array;
  try {
    const session = await SessionClient.connect(paths.sessionSocket);
    try {
      signature = await session.sign(
        SIGN_CONTEXTS.puddleAgentChallenge,
        challengePayload({
          agent: reply.agent,
          challenge: reply.challenge,
          projectId: target.id,
          service,
          uid: Deno.uid() ?? 0,
        }),
      );
    } finally {
      session.close();
    }
  } catch (error) {
    conn.close();
    if (error instanceof SessionError && error.locked) {
      throw new HelperFailure(
        "the puddle is locked, so this push or fetch cannot be signed; run `vigo swarm puddle unlock`.",
      );
    }
    throw error;
  }
  await writeHandshakeLine(conn, { signature: toHex(signature) });
  const verdict = JSON.parse(await readLine(conn, carry));
  if (verdict.ok !== true) {
    conn.close();
    throw new HelperFailure(
      String(verdict.error ?? "the agent refused the connection."),
    );
  }
  return {
    conn,
    carry: carry.bytes,
    ticket: typeof verdict.ticket === "string" ? verdict.ticket : undefined,
    handoff: typeof verdict.handoff === "string" ? verdict.handoff : undefined,
  };
}

/** Longest answer read from the hand-off socket. */
const MAX_HANDOFF_ANSWER = 4096;
/** How long a fetch handed off may run before the helper gives up. */
const HANDOFF_RUN_MS = 24 * 3600 * 1000;

/**
 * Hands git's pipes (this process's standard input and output) to the
 * agent with `ticket` (agent/fetch_handoff.ts), so upload-pack talks to git
 * directly, and waits for its exit. The socket must be served by the
 * socket file's owner (the agent), as the kernel reports it.
 */
async function handOff(ticket: string): Promise<number> {
  const path = `${systemPaths().varRun}/gitback-fd.sock`;
  let client: UnixSocketClient;
  try {
    client = await UnixSocketClient.connect(path);
  } catch (error) {
    throw new HelperFailure(
      `cannot hand the fetch to the agent at ${path} (${
        (error as Error).message.replace(/\.$/, "")
      }); is \`vigo agent\` running on this envoy?`,
    );
  }
  try {
    if (client.peerCredentials().uid !== Deno.statSync(path).uid) {
      throw new HelperFailure(
        `${path} is not served by its owner; not handing the fetch over.`,
      );
    }
    await client.sendWithDescriptors(
      new TextEncoder().encode(
        JSON.stringify({ op: "handoff", ticket }) + "\n",
      ),
      [0, 1],
      Date.now() + 10_000,
    );
    const deadline = Date.now() + HANDOFF_RUN_MS;
    const buffer = new Uint8Array(MAX_HANDOFF_ANSWER);
    let length = 0;
    while (!buffer.subarray(0, length).includes(0x0a)) {
      if (length === buffer.length) {
        throw new HelperFailure(
          "the agent's answer to the hand-off is too long.",
        );
      }
      const n = await client.read(buffer.subarray(length), deadline);
      if (n === null) {
        throw new HelperFailure(
          "the agent closed the hand-off without an answer.",
        );
      }
      length += n;
    }
    const answer = JSON.parse(
      new TextDecoder().decode(buffer.subarray(0, buffer.indexOf(0x0a))),
    );
    if (answer.ok !== true) {
      throw new HelperFailure(String(answer.error ?? "the hand-off failed."));
    }
    return answer.code === 0 ? 0 : 1;
  } finally {
    client.close();
  }
}

/**
 * After a push: asks the agent for the ref state the push produced and
 * signs it through the session helper, so replicas apply it. The state
 * must be for this project and name this user's key as its signer.
 */
async function signPushedState(
  url: string,
  ticket: string,
): Promise<void> {
  const target = parseProjectUrl(url);
  const paths = userPaths();
  const conn = await Deno.connect({
    transport: "unix",
    path: `${systemPaths().varRun}/gitback.sock`,
  });
  try {
    const carry = { bytes: new Uint8Array(0) };
    await writeHandshakeLine(conn, { op: "sign-refs", ticket });
    const offer = JSON.parse(await readLine(conn, carry));
    if (offer.ok === false) throw new HelperFailure(String(offer.error));
    if (offer.body === null) return;
    const body = offer.body as RefStateBody;
    let signature: Uint8Array;
    try {
      const session = await SessionClient.connect(paths.sessionSocket);
      try {
        const own = await session.request({ op: "PUBKEY" });
        if (
          !("id" in target) || body?.project_id !== target.id ||
          !own.ok || !("pubkey" in own) || body.signer !== own.pubkey
        ) {
          throw new HelperFailure(
            "the agent offered a ref state for another project or key; not signed.",
          );
        }
        signature = await session.sign(
          SIGN_CONTEXTS.gitbackRefs,
          refStateBytes(body),
        );
      } finally {
        session.close();
      }
    } catch (error) {
      // git has already printed the refs as pushed: say that they are not.
      const why = error instanceof SessionError && error.locked
        ? "the puddle is locked"
        : (error as Error).message.replace(/\.$/, "");
      throw new HelperFailure(
        `the new ref state was not signed (${why}), so the envoy undoes this push; run \`vigo swarm puddle unlock\` if needed and push again.`,
      );
    }
    await writeHandshakeLine(conn, { signature: toHex(signature) });
    const verdict = JSON.parse(await readLine(conn, carry));
    if (verdict.ok !== true) {
      throw new HelperFailure(
        String(verdict.error ?? "the agent refused the signed ref state."),
      );
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function writeAll(
  to: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
) {
  let written = 0;
  while (written < bytes.length) {
    written += await to.write(bytes.subarray(written));
  }
}

/** Passes bytes both ways until both directions are done. */
async function bridge(
  conn: Deno.UnixConn,
  carry: Uint8Array,
  early: Uint8Array,
) {
  const toAgent = (async () => {
    if (early.length > 0) await conn.write(early);
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      let written = 0;
      while (written < n) {
        written += await conn.write(buffer.subarray(written, n));
      }
    }
    await conn.closeWrite().catch(() => {});
  })();
  const fromAgent = (async () => {
    if (carry.length > 0) await writeAll(Deno.stdout, carry);
    // A plain loop with a large buffer moves packs faster than streams.
    const buffer = new Uint8Array(1024 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(Deno.stdout, buffer.subarray(0, n));
    }
  })();
  await fromAgent;
  // Once the service has finished, git has nothing more to say to it.
  toAgent.catch(() => {});
}

/** Runs the remote-helper conversation until git closes stdin. */
export async function runRemoteHelper(args: string[]): Promise<number> {
  if (args.length < 2) {
    console.error(
      "error: git-remote-gitback is run by git for gitback:// URLs",
    );
    console.error("hint: use `git clone gitback://<project_id>/<handle>`");
    return 2;
  }
  const url = args[1];
  const lines = new StdinLines();
  const encoder = new TextEncoder();
  try {
    for (;;) {
      const line = await lines.next();
      if (line === null) return 0;
      const command = new TextDecoder().decode(line);
      if (command === "") return 0;
      if (command === "capabilities") {
        await Deno.stdout.write(
          encoder.encode(CAPABILITIES.join("\n") + "\n\n"),
        );
        continue;
      }
      const match = /^connect (git-upload-pack|git-receive-pack)$/.exec(
        command,
      );
      if (match) {
        // A fetch whose git has sent nothing ahead can take the pack from
        // upload-pack directly: no byte of git's is in flight to lose.
        const early = lines.takeBuffered();
        const { conn, carry, ticket, handoff } = await connectService(
          url,
          match[1] as GitService,
          match[1] === "git-upload-pack" && early.length === 0,
        );
        await Deno.stdout.write(encoder.encode("\n"));
        if (handoff) {
          conn.close();
          return await handOff(handoff);
        }
        await bridge(conn, carry, early);
        if (ticket) await signPushedState(url, ticket);
        return 0;
      }
      console.error(`error: git-remote-gitback does not support '${command}'`);
      return 1;
    }
  } catch (error) {
    const message = (error as Error).message.replace(/\.$/, "");
    console.error(`error: ${message}`);
    const hint = (error as { hint?: string }).hint;
    if (hint) console.error(`hint: ${hint}`);
    return 1;
  }
}
