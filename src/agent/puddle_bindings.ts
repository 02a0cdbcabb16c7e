/**
 * Root-side record of which puddle key each local user has proven to hold:
 * `<varLib>/swarm/puddle/bindings/<uid>.json`. A user proves possession by
 * signing a fresh challenge of the agent through their own session helper
 * (at `puddle unlock`, and on every git connection). Every decision the agent
 * takes for a user (member adoption, members-only delivery) rests on this
 * record, never on `identity.pub`, which the user alone can write.
 *
 * @module
 */

import type { SystemPaths } from "../platform/paths.ts";
import { writeTextAtomic } from "../platform/fs.ts";
import { parsePublicKey } from "../crypto/ed25519.ts";

/** One binding. */
export interface PuddleBinding {
  uid: number;
  user: string;
  /** `ed25519:<hex>`. */
  pubkey: string;
  /** When the challenge was answered (ISO 8601). */
  proven_at: string;
}

function bindingsDir(paths: SystemPaths): string {
  return `${paths.varLib}/swarm/puddle/bindings`;
}

function bindingPath(paths: SystemPaths, uid: number): string {
  if (!Number.isSafeInteger(uid) || uid < 0) {
    throw new Error(`${uid} is not a uid.`);
  }
  // Named by the kernel's uid, never by text a user chose.
  return `${bindingsDir(paths)}/${uid}.json`;
}

/** Records that `uid` proved possession of `pubkey` just now. */
export function recordBinding(
  paths: SystemPaths,
  binding: Omit<PuddleBinding, "proven_at">,
): void {
  parsePublicKey(binding.pubkey);
  const path = bindingPath(paths, binding.uid);
  Deno.mkdirSync(bindingsDir(paths), { recursive: true, mode: 0o700 });
  const record: PuddleBinding = {
    ...binding,
    proven_at: new Date().toISOString(),
  };
  writeTextAtomic(path, JSON.stringify(record) + "\n", 0o600);
}

/** The key `uid` last proved to hold, or null when it never did. */
export function boundKeyOf(paths: SystemPaths, uid: number): string | null {
  try {
    const record = JSON.parse(
      Deno.readTextFileSync(bindingPath(paths, uid)),
    ) as Partial<PuddleBinding>;
    if (record.uid !== uid || typeof record.pubkey !== "string") return null;
    parsePublicKey(record.pubkey);
    return record.pubkey;
  } catch {
    return null;
  }
}
