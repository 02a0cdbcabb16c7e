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
import type { MemberBindingWire } from "../gitback/member_binding.ts";

/** One binding. */
export interface PuddleBinding {
  uid: number;
  user: string;
  /** `ed25519:<hex>`. */
  pubkey: string;
  /** When the challenge was answered (ISO 8601). */
  proven_at: string;
  /**
   * The user's signed statement binding their key to this envoy
   * (gitback/member_binding.ts), made at unlock; absent until then.
   */
  statement?: MemberBindingWire;
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

/**
 * Records that `uid` proved possession of `pubkey` just now, with the
 * user's binding statement when one was made; a statement recorded earlier
 * for the same key is kept.
 */
export function recordBinding(
  paths: SystemPaths,
  binding: Omit<PuddleBinding, "proven_at">,
): void {
  parsePublicKey(binding.pubkey);
  const path = bindingPath(paths, binding.uid);
  Deno.mkdirSync(bindingsDir(paths), { recursive: true, mode: 0o700 });
  const earlier = readRecord(paths, binding.uid);
  const statement = binding.statement ??
    (earlier?.pubkey === binding.pubkey ? earlier.statement : undefined);
  const record: PuddleBinding = {
    uid: binding.uid,
    user: binding.user,
    pubkey: binding.pubkey,
    proven_at: new Date().toISOString(),
    ...(statement ? { statement } : {}),
  };
  writeTextAtomic(path, JSON.stringify(record) + "\n", 0o600);
}

function readRecord(paths: SystemPaths, uid: number): PuddleBinding | null {
  try {
    const record = JSON.parse(
      Deno.readTextFileSync(bindingPath(paths, uid)),
    ) as PuddleBinding;
    if (record.uid !== uid || typeof record.pubkey !== "string") return null;
    parsePublicKey(record.pubkey);
    return record;
  } catch {
    return null;
  }
}

/**
 * The binding statement `uid` made for their proven key, or null: what this
 * envoy presents to peers on that user's behalf.
 */
export function bindingStatementOf(
  paths: SystemPaths,
  uid: number,
): { pubkey: string; statement: MemberBindingWire } | null {
  const record = readRecord(paths, uid);
  return record?.statement
    ? { pubkey: record.pubkey, statement: record.statement }
    : null;
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

/**
 * The freshest binding statement any local user made here for `pubkey`
 * (several uids may have proven the same key), or null.
 */
export function statementForKey(
  paths: SystemPaths,
  pubkey: string,
): MemberBindingWire | null {
  let best: PuddleBinding | null = null;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(bindingsDir(paths))];
  } catch {
    return null;
  }
  for (const entry of entries) {
    const match = /^(\d{1,10})\.json$/.exec(entry.name);
    if (!entry.isFile || !match) continue;
    const record = readRecord(paths, Number(match[1]));
    if (record?.pubkey !== pubkey || !record.statement) continue;
    if (!best || record.proven_at > best.proven_at) best = record;
  }
  return best?.statement ?? null;
}
