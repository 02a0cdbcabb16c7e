/**
 * Proving to the local agent which puddle key this user holds: the agent
 * sends a fresh challenge on its git socket, the user's session helper
 * signs it, and the agent records the binding root-side (see
 * agent/puddle_bindings.ts). `puddle unlock` does this once the helper runs.
 *
 * @module
 */

import { toHex } from "../crypto/hex.ts";
import { formatPublicKey } from "../crypto/ed25519.ts";
import { SessionClient } from "../puddle/session/client.ts";
import { PROOF_TIMEOUT_MS, proofPayload } from "./connect_protocol.ts";

async function readLine(
  conn: Deno.UnixConn,
  carry: { bytes: Uint8Array },
): Promise<string> {
  const buffer = new Uint8Array(4096);
  for (;;) {
    const newline = carry.bytes.indexOf(0x0a);
    if (newline >= 0) {
      const line = new TextDecoder().decode(carry.bytes.subarray(0, newline));
      carry.bytes = carry.bytes.slice(newline + 1);
      return line;
    }
    if (carry.bytes.length > 4096) {
      throw new Error("the agent sent an oversized line.");
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the agent closed the connection.");
    const joined = new Uint8Array(carry.bytes.length + n);
    joined.set(carry.bytes);
    joined.set(buffer.subarray(0, n), carry.bytes.length);
    carry.bytes = joined;
  }
}

async function writeLine(conn: Deno.UnixConn, value: unknown) {
  const bytes = new TextEncoder().encode(JSON.stringify(value) + "\n");
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

/**
 * Proves possession of the session helper's key to the agent listening on
 * `agentSocket`. Resolves to `true` when the agent recorded it, `false` when
 * no agent listens; throws with the agent's reason when it refused.
 */
export async function proveToAgent(
  agentSocket: string,
  session: SessionClient,
  publicKey: Uint8Array,
): Promise<boolean> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: agentSocket });
  } catch {
    return false;
  }
  const timer = setTimeout(() => conn.close(), PROOF_TIMEOUT_MS);
  try {
    const carry = { bytes: new Uint8Array(0) };
    await writeLine(conn, { op: "prove" });
    const challenge = JSON.parse(await readLine(conn, carry));
    if (challenge.ok === false) throw new Error(String(challenge.error));
    if (
      typeof challenge.challenge !== "string" ||
      typeof challenge.agent !== "string" ||
      typeof challenge.uid !== "number"
    ) {
      throw new Error("the agent sent no challenge.");
    }
    const pubkey = formatPublicKey(publicKey);
    const signature = await session.sign(
      "vigo-swarm/v1/puddle-agent-challenge",
      proofPayload({
        agent: challenge.agent,
        challenge: challenge.challenge,
        pubkey,
        uid: challenge.uid,
      }),
    );
    await writeLine(conn, { pubkey, signature: toHex(signature) });
    const verdict = JSON.parse(await readLine(conn, carry));
    if (verdict.ok !== true) {
      throw new Error(String(verdict.error ?? "the agent refused the proof."));
    }
    return true;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}
