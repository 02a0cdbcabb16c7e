/**
 * Root-side storage of verified envelopes, shared by the sweep (envelopes
 * users queue) and gossip (envelopes peers send).
 *
 * @module
 */

import { writeTextAtomic } from "../platform/fs.ts";
import { verifyLeave, verifyRevocation } from "../gitback/envelopes.ts";
import { envelopesDir } from "../gitback/repo.ts";
import type { AgentConfig } from "./config.ts";

/** The two kinds of envelope. */
export type EnvelopeKind = "revokes" | "leaves";

/** Stores a verified envelope under `name` (idempotent). */
export function storeEnvelope(
  config: AgentConfig,
  projectId: string,
  kind: EnvelopeKind,
  name: string,
  envelope: unknown,
): boolean {
  const dir = envelopesDir(config.paths, projectId, kind);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = `${dir}/${name}.json`;
  try {
    Deno.statSync(path);
    return false;
  } catch {
    writeTextAtomic(path, JSON.stringify(envelope) + "\n", 0o644);
    return true;
  }
}

/**
 * Verifies an envelope of `kind` for `projectId` (signature, project, and for
 * revocations the signer's authority) and stores it. Returns true when it
 * was new; throws when it does not verify.
 */
export async function acceptEnvelope(
  config: AgentConfig,
  projectId: string,
  kind: EnvelopeKind,
  envelope: unknown,
): Promise<boolean> {
  if (kind === "revokes") {
    const verified = await verifyRevocation(envelope, { projectId });
    return storeEnvelope(config, projectId, kind, verified.tokenId, envelope);
  }
  const verified = await verifyLeave(envelope, { projectId });
  return storeEnvelope(config, projectId, kind, verified.id, envelope);
}
