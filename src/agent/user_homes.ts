/**
 * The user homes an agent looks after: every passwd account, plus the
 * `homes:` overrides of agent.yaml (which win, for test fleets).
 *
 * @module
 */

import { listUsers } from "../platform/users.ts";
import { readOwnedFile } from "../platform/fs.ts";
import type { AgentConfig } from "./config.ts";

/** A user whose per-user state the agent may read. */
export interface ManagedHome {
  user: string;
  uid: number;
  home: string;
}

/** Every user with a home, overrides applied, deduplicated by user. */
export function managedHomes(config: AgentConfig): ManagedHome[] {
  const byUser = new Map<string, ManagedHome>();
  for (const entry of listUsers()) {
    if (entry.home && entry.home !== "/" && entry.home !== "/nonexistent") {
      byUser.set(entry.name, {
        user: entry.name,
        uid: entry.uid,
        home: entry.home,
      });
    }
  }
  for (const [user, home] of Object.entries(config.homes)) {
    const known = byUser.get(user);
    let uid = known?.uid;
    if (uid === undefined) {
      try {
        uid = Deno.statSync(home).uid ?? undefined;
      } catch {
        continue;
      }
    }
    if (uid !== undefined) byUser.set(user, { user, uid, home });
  }
  return [...byUser.values()];
}

/**
 * The `ed25519:<hex>` puddle key of a managed user, read from a file that
 * user owns; throws when there is none.
 */
export function puddleKeyOf({ uid, home }: ManagedHome): string {
  return new TextDecoder().decode(
    readOwnedFile(`${home}/.vigo-puddle/identity.pub`, uid, 256),
  ).trim();
}
