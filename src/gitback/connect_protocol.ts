/**
 * The handshake on the agent's git socket, shared by `git-remote-gitback`
 * (client) and the agent (server). After it, the connection carries git's
 * own pack protocol, byte for byte.
 *
 * @module
 */

import { canonicalBytes } from "../crypto/canonical.ts";
import { DELEGATION_MAX_LEN } from "./delegations.ts";

/** The git services the socket proxies. */
export type GitService = "git-upload-pack" | "git-receive-pack";

/**
 * Longest handshake line, in bytes: a connect request with the longest
 * chain and the most delegations of the largest size fits.
 */
export const MAX_HANDSHAKE_LINE = 256 * 1024;
/** The handshake must finish within this time. */
export const HANDSHAKE_TIMEOUT_MS = 15_000;

/** First line from the client. */
export interface ConnectRequest {
  op: "connect";
  service: GitService;
  project_id: string;
  handle: string;
  /** Token chain, root first, as stored in tokens.json. */
  chain: unknown[];
  /**
   * The founder's delegations, first rotation first, as stored in
   * delegations.json; left out when the founder never rotated.
   */
  delegations?: unknown[];
  /**
   * For a fetch: the client can hand its own descriptors over for the pack
   * (agent/fetch_handoff.ts), so the agent answers with a ticket.
   */
  handoff?: boolean;
}

/** The agent's answer to a valid request: a fresh challenge. */
export interface ChallengeMessage {
  challenge: string;
  agent: string;
}

/** The bytes the client signs to prove it holds the leaf subject's key. */
export function challengePayload(fields: {
  agent: string;
  challenge: string;
  projectId: string;
  service: GitService;
  uid: number;
}): Uint8Array {
  return canonicalBytes({
    v: 1,
    kind: "gitback-connect",
    agent: fields.agent,
    challenge: fields.challenge,
    project_id: fields.projectId,
    service: fields.service,
    uid: fields.uid,
  });
}

/** Checks the shape of a parsed first line. */
export function parseConnectRequest(value: unknown): ConnectRequest {
  const r = value as Partial<ConnectRequest> | null;
  if (typeof r !== "object" || r === null || r.op !== "connect") {
    throw new Error('the first line must be {"op":"connect", …}.');
  }
  if (r.service !== "git-upload-pack" && r.service !== "git-receive-pack") {
    throw new Error("service must be git-upload-pack or git-receive-pack.");
  }
  if (
    typeof r.project_id !== "string" || !/^[0-9a-f]{64}$/.test(r.project_id)
  ) {
    throw new Error("project_id must be 64 lowercase hex digits.");
  }
  if (typeof r.handle !== "string") throw new Error("handle is missing.");
  if (!Array.isArray(r.chain)) throw new Error("chain must be an array.");
  if (
    r.delegations !== undefined &&
    (!Array.isArray(r.delegations) ||
      r.delegations.length > DELEGATION_MAX_LEN)
  ) {
    throw new Error(
      `delegations must be a list of at most ${DELEGATION_MAX_LEN}.`,
    );
  }
  if (r.handoff !== undefined && typeof r.handoff !== "boolean") {
    throw new Error("handoff must be true or false.");
  }
  return r as ConnectRequest;
}

/** Longest proof-of-possession exchange, end to end. */
export const PROOF_TIMEOUT_MS = 10_000;

/**
 * The bytes a user signs (`{"op":"prove"}` on the git socket) to show the
 * agent which puddle key they hold: bound to this agent, this challenge,
 * the key and the caller's uid as the kernel reports it.
 */
export function proofPayload(fields: {
  agent: string;
  challenge: string;
  pubkey: string;
  uid: number;
}): Uint8Array {
  return canonicalBytes({
    v: 1,
    kind: "puddle-proof",
    agent: fields.agent,
    challenge: fields.challenge,
    pubkey: fields.pubkey,
    uid: fields.uid,
  });
}

/** What a client of the git socket keeps between reads: bytes past a line. */
export interface LineCarry {
  bytes: Uint8Array;
}

/**
 * Reads one `\n`-terminated line from the agent's socket, keeping what
 * follows it in `carry` (the pack protocol may start right after). Resolves
 * to null when the agent closed first; throws on a line over
 * {@link MAX_HANDSHAKE_LINE}, finished or not.
 */
export async function readHandshakeLine(
  conn: Deno.UnixConn,
  carry: LineCarry,
): Promise<string | null> {
  const buffer = new Uint8Array(4096);
  for (;;) {
    const newline = carry.bytes.indexOf(0x0a);
    if ((newline < 0 ? carry.bytes.length : newline) > MAX_HANDSHAKE_LINE) {
      throw new Error("the agent sent an oversized handshake line.");
    }
    if (newline >= 0) {
      const line = new TextDecoder().decode(carry.bytes.subarray(0, newline));
      carry.bytes = carry.bytes.slice(newline + 1);
      return line;
    }
    const n = await conn.read(buffer);
    if (n === null) return null;
    const joined = new Uint8Array(carry.bytes.length + n);
    joined.set(carry.bytes);
    joined.set(buffer.subarray(0, n), carry.bytes.length);
    carry.bytes = joined;
  }
}

/** Writes `value` as one JSON line to the agent's socket. */
export async function writeHandshakeLine(
  conn: Deno.UnixConn,
  value: unknown,
): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(value) + "\n");
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}
