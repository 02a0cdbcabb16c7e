/**
 * Proving to the local agent which puddle key this user holds: the agent
 * sends a fresh challenge on its git socket, the user's session helper
 * signs it, and the agent records the binding root-side (see
 * agent/puddle_bindings.ts). `puddle unlock` does this once the helper runs.
 *
 * @module
 */

import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import { formatPublicKey } from "../crypto/ed25519.ts";
import { SessionClient } from "../puddle/session/client.ts";
import {
  type MemberBindingBody,
  memberBindingBytes,
} from "./member_binding.ts";
import {
  type LineCarry,
  PROOF_TIMEOUT_MS,
  proofPayload,
  readHandshakeLine,
  writeHandshakeLine,
} from "./connect_protocol.ts";

async function readLine(conn: Deno.UnixConn, carry: LineCarry) {
  const line = await readHandshakeLine(conn, carry);
  if (line === null) throw new Error("the agent closed the connection.");
  return line;
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
    await writeHandshakeLine(conn, { op: "prove" });
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
      SIGN_CONTEXTS.puddleAgentChallenge,
      proofPayload({
        agent: challenge.agent,
        challenge: challenge.challenge,
        pubkey,
        uid: challenge.uid,
      }),
    );
    await writeHandshakeLine(conn, { pubkey, signature: toHex(signature) });
    let verdict = JSON.parse(await readLine(conn, carry));
    if (verdict.bind) {
      // The agent asks for the statement that this key lives on it, which it
      // presents to peers for this user; it must name this key.
      const bind = verdict.bind as MemberBindingBody;
      if (bind.member !== pubkey || bind.kind !== "member-envoy-binding") {
        throw new Error("the agent asked to bind another key; refused.");
      }
      const bound = await session.sign(
        SIGN_CONTEXTS.puddleEnvoyBinding,
        memberBindingBytes(bind),
      );
      await writeHandshakeLine(conn, { signature: toHex(bound) });
      verdict = JSON.parse(await readLine(conn, carry));
    }
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
