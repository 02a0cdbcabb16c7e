/**
 * The user homes an agent looks after: under agent.yaml's
 * `managed_users: passwd` every passwd account, `homes:` overrides winning;
 * under `managed_users: homes` only the users `homes:` lists. What is in
 * those homes is read through agent/user_state.ts, never trusted as proof.
 *
 * @module
 */

import { listUsers } from "../platform/users.ts";
import type { AgentConfig } from "./config.ts";

/** A user whose per-user state the agent may read. */
export interface ManagedHome {
  user: string;
  uid: number;
  home: string;
}

/**
 * The users whose homes the agent acts on, deduplicated by user. Under
 * agent.yaml's `managed_users: passwd` (the default): every passwd account
 * with a home, each `homes:` entry replacing or adding one. Under
 * `managed_users: homes`: only the `homes:` entries, so that agents sharing
 * a machine (local fleets) never act on each other's or the machine's users.
 * An entry's uid is its passwd uid, else the owner of its home; an entry
 * with neither is left out.
 */
export function managedHomes(config: AgentConfig): ManagedHome[] {
  const byUser = new Map<string, ManagedHome>();
  const passwd = listUsers();
  if (config.managedUsers !== "homes") {
    for (const entry of passwd) {
      if (entry.home && entry.home !== "/" && entry.home !== "/nonexistent") {
        byUser.set(entry.name, {
          user: entry.name,
          uid: entry.uid,
          home: entry.home,
        });
      }
    }
  }
  const uids = new Map(passwd.map((entry) => [entry.name, entry.uid]));
  for (const [user, home] of Object.entries(config.homes)) {
    let uid = uids.get(user);
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
