/**
 * A token signer backed by the user's puddle session helper, so that gitback
 * signs without ever holding the private key.
 *
 * @module
 */

import { parsePublicKey } from "../crypto/ed25519.ts";
import type { SignContext } from "../crypto/signed.ts";
import { SessionClient, SessionError } from "../puddle/session/client.ts";
import { ProjectError } from "./project.ts";
import type { Signer } from "../crypto/signed_object.ts";

/**
 * Connects to the session helper at `socketPath` and returns a signer for
 * its key. Fails with a hint when the puddle is locked.
 */
export async function sessionSigner(
  socketPath: string,
): Promise<Signer & { close(): void }> {
  let client: SessionClient;
  try {
    client = await SessionClient.connect(socketPath);
  } catch (error) {
    if (error instanceof SessionError && error.locked) {
      throw new ProjectError(
        "this verb signs with your puddle key, and the puddle is locked.",
        "run `vigo swarm puddle unlock` first.",
      );
    }
    throw error;
  }
  const reply = await client.request({ op: "PUBKEY" });
  if (!reply.ok || !("pubkey" in reply)) {
    client.close();
    throw new ProjectError("the session helper did not report its public key.");
  }
  return {
    publicKey: parsePublicKey(reply.pubkey),
    sign: (context: SignContext, body: Uint8Array) =>
      client.sign(context, body),
    close: () => client.close(),
  };
}
