/**
 * The traits this envoy reports to the fleet server (swarm/traits.ts owns
 * the format): per managed user, their puddle and what they hold of
 * gitback.
 *
 * Root reads these from homes a user alone can write, so nothing there is
 * taken on its word. Every file is read through platform/user_files.ts
 * (owned regular files, no symlinks, bounded); a file that is missing,
 * refused or invalid only empties its own field. What the fleet sees as a
 * user's key is the key that user proved to hold here
 * (puddle_bindings.ts), never `identity.pub`; a name claim counts only when
 * it verifies and is signed by that key; retired keys only from a rotation
 * log that verifies as a chain ending at that key; and a project's members
 * only as keys verified here: its current founder, and local users whose
 * proven key holds a chain that verifies for the project.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import type { SignedObject } from "../crypto/signed_object.ts";
import { pidAlive } from "../platform/process.ts";
import { type OwnedDir, withOwnedDir } from "../platform/user_files.ts";
import type { AgentConfig } from "../envoy/config.ts";
import { isValidUsername } from "../envoy/policy.ts";
import { type ManagedHome, managedHomes } from "../envoy/user_homes.ts";
import {
  MAX_REF_CHARS,
  MAX_TRAIT_HEADS,
  MAX_TRAIT_MEMBERS,
  MAX_TRAIT_PROJECTS,
  MAX_TRAIT_RETIRED,
  MAX_TRAIT_USERS,
  MAX_TRAITS_BYTES,
  type ProjectTrait,
  type PuddleTrait,
  TRAIT_HEAD_ID,
  TRAIT_PUBKEY,
  TRAIT_REF,
  type Traits,
  type UserTraits,
} from "../swarm/traits.ts";
import {
  MAX_NAME_CLAIM_BYTES,
  NAME_CLAIM_FILE,
  verifyNameClaim,
} from "../puddle/names.ts";
import {
  MAX_PENDING_BYTES,
  PAIR_PENDING,
  REKEY_PENDING,
} from "../puddle/pair.ts";
import {
  decodeRetiredLog,
  MAX_RETIRED_BYTES,
  RETIRED_FILE,
} from "../puddle/rotation.ts";
import { SESSION_SENTINEL } from "../puddle/session/sentinel.ts";
import { IDENTITY_FILES } from "../puddle/identity.ts";
import { HANDLE_PATTERN } from "../gitback/project_id.ts";
import { revokedTokenIds } from "../gitback/revocations.ts";
import {
  countProjectEnvelopes,
  repositoryFacts,
} from "../gitback/envoy_status.ts";
import { boundKeyOf } from "./puddle_bindings.ts";
import {
  delegationSummary,
  verifyChainWithDelegations,
} from "./delegation_store.ts";
import { readTombstone } from "./tombstone_store.ts";
import {
  listUserProjects,
  readUserProject,
  type UserProject,
} from "./user_state.ts";

/** Where puddle state lives below a home. */
const PUDDLE_DIR = ".vigo-puddle";
/** `identity.wrapped` is 87 bytes; anything past this is not one. */
const MAX_WRAPPED_BYTES = 4096;
/** `session.unlocked` holds a decimal pid and a newline. */
const MAX_SENTINEL_BYTES = 64;
/** Refs the envoys keep for themselves (lost tips); not the project's heads. */
const OWN_REFS = "refs/gitback/";

/** Reads `fn` from an opened `~/.vigo-puddle`; `fallback` on any failure. */
function fromPuddleDir<T>(
  home: ManagedHome,
  fn: (dir: OwnedDir) => T,
  fallback: T,
): T {
  try {
    return withOwnedDir(home.home, home.uid, PUDDLE_DIR, fn, fallback);
  } catch {
    return fallback;
  }
}

/** True when the sentinel names a live process of this user. */
function sessionUnlocked(dir: OwnedDir): boolean {
  if (!dir.has(SESSION_SENTINEL)) return false;
  const text = new TextDecoder().decode(
    dir.readFile(SESSION_SENTINEL, MAX_SENTINEL_BYTES),
  ).trim();
  if (!/^[1-9]\d{0,9}$/.test(text)) return false;
  const pid = Number(text);
  if (!pidAlive(pid)) return false;
  // Any live pid would do for the sentinel's own readers; root also wants
  // the process to be the user's, so that another user's (or its own)
  // process cannot be named.
  try {
    return Deno.statSync(`/proc/${pid}`).uid === dir.uid;
  } catch {
    return false;
  }
}

/** True when a pending code file is there and not yet expired. */
function pendingLive(dir: OwnedDir, name: string, nowMs: number): boolean {
  try {
    if (!dir.has(name)) return false;
    const value = JSON.parse(
      new TextDecoder().decode(dir.readFile(name, MAX_PENDING_BYTES)),
    ) as { version?: unknown; expires_at?: unknown } | null;
    return value?.version === 1 && typeof value.expires_at === "string" &&
      Date.parse(value.expires_at) > nowMs;
  } catch {
    return false;
  }
}

/** The verified claim's wire form, only when `pubkey` signed it. */
function nameClaimOf(dir: OwnedDir, pubkey: string): SignedObject | null {
  try {
    if (!dir.has(NAME_CLAIM_FILE)) return null;
    const claim = verifyNameClaim(
      dir.readJson(NAME_CLAIM_FILE, MAX_NAME_CLAIM_BYTES),
    );
    return claim.key === pubkey ? claim.wire : null;
  } catch {
    return null;
  }
}

/**
 * The keys the rotation log retired, when it verifies as a chain that ends
 * at `pubkey` (as docs/formats.md requires of the log); else none. So a
 * log copied from someone else, forged, or left from another history
 * retires nobody's key.
 */
function retiredKeysOf(dir: OwnedDir, pubkey: string): string[] {
  try {
    if (!dir.has(RETIRED_FILE)) return [];
    const rotations = decodeRetiredLog(
      dir.readFile(RETIRED_FILE, MAX_RETIRED_BYTES),
    );
    if (rotations.length === 0) return [];
    if (rotations[rotations.length - 1].body.new !== pubkey) return [];
    const retired = [
      ...new Set(rotations.map((r) => r.body.old).filter((k) => k !== pubkey)),
    ];
    return retired.slice(-MAX_TRAIT_RETIRED);
  } catch {
    return [];
  }
}

/**
 * One user's puddle trait: null unless they proved a key here and their
 * `identity.wrapped` can be read as theirs.
 */
function puddleTraitOf(
  config: AgentConfig,
  home: ManagedHome,
  nowMs: number,
): PuddleTrait | null {
  const pubkey = boundKeyOf(config.paths, home.uid);
  if (pubkey === null || !TRAIT_PUBKEY.test(pubkey)) return null;
  return fromPuddleDir(home, (dir) => {
    let wrappedSha256: string;
    try {
      const wrapped = dir.readFile(IDENTITY_FILES.wrapped, MAX_WRAPPED_BYTES);
      wrappedSha256 = toHex(sha256(wrapped));
      wrapped.fill(0);
    } catch {
      return null;
    }
    let unlocked = false;
    try {
      unlocked = sessionUnlocked(dir);
    } catch {
      // Unreadable sentinel: locked.
    }
    return {
      pubkey,
      wrapped_sha256: wrappedSha256,
      unlocked,
      name_claim: nameClaimOf(dir, pubkey),
      pair_pending: pendingLive(dir, PAIR_PENDING, nowMs),
      rekey_pending: pendingLive(dir, REKEY_PENDING, nowMs),
      retired: retiredKeysOf(dir, pubkey),
    };
  }, null);
}

/** What one project looks like here, whichever user holds it. */
interface SharedProject {
  heads: Record<string, string>;
  repo_bytes: number;
  revokes: number;
  leaves: number;
  delegations: number;
  tombstoned: boolean;
  signed_seq: number | null;
  /** The current founder as recorded here, or null when unknown. */
  founder: string | null;
}

/** One user's claim to a project and what verified of it. */
interface Holding {
  user: string;
  project: UserProject;
  /** The user's proven key, when their chain verified for the project. */
  member: string | null;
  /** The chain's handle and current founder, when it verified. */
  handle: string | null;
  founder: string | null;
}

/**
 * What one project looks like here, whichever user holds it: read once
 * from the bare repository (repositoryFacts), the envelopes, and the
 * agent's delegation and tombstone records.
 */
async function sharedProject(
  config: AgentConfig,
  projectId: string,
): Promise<SharedProject> {
  const facts = await repositoryFacts(config.paths, projectId);
  const record = delegationSummary(config.paths, projectId);
  const heads = facts
    ? Object.fromEntries(
      [...facts.refs]
        .filter(([ref, id]) =>
          !ref.startsWith(OWN_REFS) && ref.length <= MAX_REF_CHARS &&
          TRAIT_REF.test(ref) && TRAIT_HEAD_ID.test(id)
        )
        .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
        .slice(0, MAX_TRAIT_HEADS),
    )
    : {};
  // The founder now: the last delegation's key, else (never rotated) the
  // genesis key of the signed state; unknown without a record here.
  const founder = record
    ? record.current_founder ?? facts?.genesis ?? null
    : null;
  return {
    heads,
    repo_bytes: safeCount(facts?.bytes),
    revokes: countProjectEnvelopes(config.paths, projectId, "revokes"),
    leaves: countProjectEnvelopes(config.paths, projectId, "leaves"),
    delegations: safeCount(record?.delegations),
    tombstoned: readTombstone(config.paths, projectId) !== null,
    signed_seq: facts?.signedSeq === null || facts?.signedSeq === undefined
      ? null
      : safeCount(facts.signedSeq),
    founder: founder !== null && TRAIT_PUBKEY.test(founder) ? founder : null,
  };
}

function safeCount(value: number | undefined): number {
  return Number.isSafeInteger(value) && (value as number) >= 0
    ? value as number
    : 0;
}

/**
 * What verified of `home`'s hold on `project`: their proven key is the leaf
 * of their own chain, and the chain verifies for the project with the
 * delegations recorded here and without revoked or left tokens.
 */
async function verifyHolding(
  config: AgentConfig,
  home: ManagedHome,
  project: UserProject,
  boundKey: string | null,
  now: number,
  revoked: Map<string, Set<string>>,
): Promise<Holding> {
  const holding: Holding = {
    user: home.user,
    project,
    member: null,
    handle: null,
    founder: null,
  };
  if (boundKey === null) return holding;
  const chain = readUserProject(home, project.projectId, { chain: true })
    ?.chain;
  if (!chain) return holding;
  try {
    let ids = revoked.get(project.projectId);
    if (!ids) {
      ids = revokedTokenIds(config.paths, project.projectId);
      revoked.set(project.projectId, ids);
    }
    // Nothing offered: only the delegations recorded here count, and the
    // record is left as it is.
    const verified = await verifyChainWithDelegations(config.paths, chain, [], {
      projectId: project.projectId,
      presenter: parsePublicKey(boundKey),
      revoked: ids,
      now,
    });
    holding.member = boundKey;
    holding.handle = verified.handle;
    holding.founder = formatPublicKey(verified.currentFounder);
  } catch {
    // Not a member by this chain.
  }
  return holding;
}

/** The user's entry for one project, or null when it cannot be shown. */
function projectTrait(
  holding: Holding,
  shared: SharedProject,
  members: string[],
): ProjectTrait | null {
  const handle = holding.handle ?? holding.project.handle;
  if (!HANDLE_PATTERN.test(handle)) return null;
  return {
    project_id: holding.project.projectId,
    handle,
    scope: holding.project.scope,
    heads: shared.heads,
    repo_bytes: shared.repo_bytes,
    revokes: shared.revokes,
    leaves: shared.leaves,
    delegations: shared.delegations,
    tombstoned: shared.tombstoned,
    signed_seq: shared.signed_seq,
    members,
  };
}

function encode(traits: Traits): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(traits));
}

function byteLength(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).length;
}

/**
 * Trims `traits` until it encodes within {@link MAX_TRAITS_BYTES}: gitback
 * project entries go from the end first, then, only if that is not
 * enough, whole users from the end.
 */
function fitToSize(traits: Traits): void {
  for (let pass = 0; pass < 8; pass++) {
    let excess = encode(traits).length - MAX_TRAITS_BYTES;
    if (excess <= 0) return;
    for (let u = traits.users.length - 1; u >= 0 && excess > 0; u--) {
      const projects = traits.users[u].gitback?.projects ?? [];
      while (projects.length > 0 && excess > 0) {
        // Its bytes and the comma that separated it.
        excess -= byteLength(projects.pop()) + 1;
      }
    }
    while (traits.users.length > 0 && excess > 0) {
      excess -= byteLength(traits.users.pop()) + 1;
    }
  }
}

/**
 * Builds this envoy's traits at `now` (unix seconds): one entry per
 * managed user (at most {@link MAX_TRAIT_USERS}, those with a puddle or
 * gitback trait first), within every bound of swarm/traits.ts, so that
 * `parseTraits(…, {certificateHost: config.hostname})` accepts it. A user
 * file that is missing, refused or invalid only empties its own field.
 */
export async function collectTraits(
  config: AgentConfig,
  now: number,
): Promise<Traits> {
  now = Math.floor(now);
  const nowMs = now * 1000;
  const homes = managedHomes(config)
    .filter((h) => isValidUsername(h.user))
    .sort((a, b) => a.user < b.user ? -1 : a.user > b.user ? 1 : 0);

  // Each user's projects and what verified of them.
  const revoked = new Map<string, Set<string>>();
  const holdings = new Map<string, Holding[]>();
  const byProject = new Map<string, Holding[]>();
  for (const home of homes) {
    const projects = listUserProjects(home).slice(0, MAX_TRAIT_PROJECTS);
    if (projects.length === 0) continue;
    const boundKey = boundKeyOf(config.paths, home.uid);
    const mine: Holding[] = [];
    for (const project of projects) {
      const holding = await verifyHolding(
        config,
        home,
        project,
        boundKey,
        now,
        revoked,
      );
      mine.push(holding);
      const list = byProject.get(project.projectId) ?? [];
      list.push(holding);
      byProject.set(project.projectId, list);
    }
    holdings.set(home.user, mine);
  }

  // What each held project looks like here, computed once for all holders.
  const shared = new Map<string, SharedProject>();
  const members = new Map<string, string[]>();
  for (const [projectId, list] of byProject) {
    const facts = await sharedProject(config, projectId);
    shared.set(projectId, facts);
    const founder = facts.founder ??
      list.find((h) => h.founder !== null)?.founder ?? null;
    const keys = [
      ...(founder ? [founder] : []),
      ...list.map((h) => h.member).filter((k): k is string => k !== null),
    ];
    members.set(projectId, [...new Set(keys)].slice(0, MAX_TRAIT_MEMBERS));
  }

  const users: UserTraits[] = homes.map((home) => {
    let puddle: PuddleTrait | null = null;
    try {
      puddle = puddleTraitOf(config, home, nowMs);
    } catch {
      // Nothing of this user's puddle can be vouched for.
    }
    const mine = holdings.get(home.user) ?? [];
    const projects = mine
      .map((h) =>
        projectTrait(
          h,
          shared.get(h.project.projectId)!,
          members.get(h.project.projectId) ?? [],
        )
      )
      .filter((p): p is ProjectTrait => p !== null);
    return {
      user: home.user,
      puddle,
      gitback: mine.length === 0 ? null : { projects },
    };
  });

  // Over the user cap, the users with something to report go first.
  const reporting = users.filter((u) =>
    u.puddle !== null || u.gitback !== null
  );
  const silent = users.filter((u) => u.puddle === null && u.gitback === null);
  const kept = [...reporting, ...silent].slice(0, MAX_TRAIT_USERS)
    .sort((a, b) => a.user < b.user ? -1 : a.user > b.user ? 1 : 0);
  const traits: Traits = {
    v: 1,
    envoy: config.hostname,
    at: now,
    users: kept,
  };
  fitToSize(traits);
  return traits;
}
