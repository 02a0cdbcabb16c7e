/**
 * Proving the user's key to the local agent after it changed hands to a
 * new session (`unlock`, `rekey-pair`).
 *
 * @module
 */

import { systemPaths, type UserPaths } from "../platform/paths.ts";
import { SessionClient } from "../puddle/session/client.ts";
import { proveToAgent } from "../gitback/agent_proof.ts";

/**
 * Shows the local agent, by signing its fresh challenge through the new
 * session, which key this user holds; the agent's decisions for this user
 * rest on that proof, never on identity.pub. Never fatal: says what
 * happened.
 */
export async function proveToLocalAgent(
  paths: UserPaths,
  publicKey: Uint8Array,
): Promise<string> {
  let session: SessionClient | undefined;
  try {
    session = await SessionClient.connect(paths.sessionSocket);
    const recorded = await proveToAgent(
      `${systemPaths().varRun}/gitback.sock`,
      session,
      publicKey,
    );
    return recorded
      ? "key proven to the local agent"
      : "no local agent answered (it learns your key at your next unlock or git push)";
  } catch (error) {
    return `the local agent did not take the proof: ${
      (error as Error).message
    }`;
  } finally {
    session?.close();
  }
}
