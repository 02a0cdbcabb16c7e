/**
 * Adoption: projects that peers hold become local projects here, so a
 * freshly paired envoy gets its repositories (through DR catch-up) without
 * manual steps. Founded projects are adopted at `puddle unlock`; memberships
 * by the agent, from a chain a peer holds (see agent/member_adopt.ts).
 * Neither adopts a project the user dropped here (`left.json`, see left.ts)
 * until they join it again.
 *
 * @module
 */

import { formatPublicKey } from "../crypto/ed25519.ts";
import { exists } from "../platform/fs.ts";
import { projectId as computeProjectId } from "./project_id.ts";
import { readLeft } from "./left.ts";
import {
  projectDir,
  ProjectError,
  writeDelegations,
  writeProjectState,
} from "./project.ts";
import type { DelegationWire } from "./delegations.ts";
import { mintBootstrapToken, verifyChain } from "./tokens.ts";
import {
  checkScopeStatement,
  DEFAULT_SCOPE,
  type ScopeStatementWire,
} from "./scope_statement.ts";
import type { Signer } from "../crypto/signed_object.ts";

/** Hidden CLI verb by which the agent writes an adopted membership as the user. */
export const ADOPT_VERB = "_adopt-project";

/**
 * Writes the local state of an adopted project: `me` presents `chain`, of
 * the project `handle` that `founder` founded.
 */
function writeAdopted(
  gitbackDir: string,
  adopted: {
    projectId: string;
    handle: string;
    founder: Uint8Array;
    me: Uint8Array;
    /** The founder's scope statement as given; kept only if it verifies. */
    statement: unknown;
    chain: unknown[];
    /** The founder's delegations the chain verified with. */
    delegations?: readonly DelegationWire[];
  },
): void {
  const founder = formatPublicKey(adopted.founder);
  const mine = formatPublicKey(adopted.me);
  const statement = checkScopeStatement(adopted.statement, adopted.projectId);
  writeProjectState(gitbackDir, {
    version: 1,
    project_id: adopted.projectId,
    handle: adopted.handle,
    founder,
    scope: statement?.body.scope ?? DEFAULT_SCOPE,
    scope_statement: statement?.wire ?? null,
    members: founder === mine ? [founder] : [founder, mine],
    cross_subnet_members: [],
    created_at: new Date().toISOString(),
    tombstoned_at: null,
  }, { version: 1, chain: adopted.chain });
  writeDelegations(gitbackDir, adopted.projectId, adopted.delegations ?? []);
}

/**
 * Adopts a project this key is a member of, from a chain a peer held: the
 * chain must verify for `projectId` with `me` as presenter, through the
 * founder's `delegations` given with it (kept in `delegations.json`). The
 * founder's scope statement given with it is kept when it verifies;
 * without one the project is members-only. Any other `scope` given is not
 * looked at. Does nothing when the project is already here; refuses one
 * the user dropped here.
 */
export async function adoptMembership(
  gitbackDir: string,
  projectId: string,
  me: Uint8Array,
  input:
    | { chain?: unknown; scope_statement?: unknown; delegations?: unknown }
    | null,
): Promise<void> {
  if (exists(`${projectDir(gitbackDir, projectId)}/project.json`)) return;
  if (readLeft(gitbackDir).has(projectId)) {
    throw new ProjectError(
      `you left project ${projectId} on this envoy; it is not adopted again.`,
      "join it again with a new invitation (`vigo swarm gitback project join`) to hold it here.",
    );
  }
  const delegations = input?.delegations ?? [];
  if (!Array.isArray(delegations)) {
    throw new ProjectError(
      "the adopted project's delegations are not a list; nothing was adopted.",
    );
  }
  const verified = await verifyChain(input?.chain, {
    projectId,
    presenter: me,
    delegations,
  });
  writeAdopted(gitbackDir, {
    projectId,
    handle: verified.handle,
    founder: verified.founder,
    me,
    statement: input?.scope_statement,
    // verifyChain accepted it, so it is a non-empty array.
    chain: input?.chain as unknown[],
    delegations: verified.founderPath.delegations.map((d) => d.wire),
  });
}

/**
 * One entry of the agent's `gitback-announced.json`: a project `host`
 * announced and, asked over mutual TLS, confirmed holding.
 */
export interface AnnouncedProject {
  project_id: string;
  handle: string;
  /** What `scope_statement` says; `members-only` without one. */
  scope: "swarm-wide" | "members-only";
  /** The founder's statement the host holds, verified by the agent. */
  scope_statement?: ScopeStatementWire | null;
  host: string;
  /** ISO 8601 time of the host's answer. */
  confirmed_at: string;
}

const ANNOUNCED_FIELDS = [
  "confirmed_at",
  "handle",
  "host",
  "project_id",
  "scope",
].join();
const ANNOUNCED_FIELDS_SIGNED = [
  "confirmed_at",
  "handle",
  "host",
  "project_id",
  "scope",
  "scope_statement",
].join();
const HOST =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** True when `value` is exactly an {@link AnnouncedProject}. */
function isAnnouncedProject(value: unknown): value is AnnouncedProject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  const entry = value as Record<string, unknown>;
  const fields = Object.keys(entry).sort().join();
  return (fields === ANNOUNCED_FIELDS ||
    fields === ANNOUNCED_FIELDS_SIGNED) &&
    typeof entry.project_id === "string" &&
    /^[0-9a-f]{64}$/.test(entry.project_id) &&
    typeof entry.handle === "string" &&
    /^(?!\.)[A-Za-z0-9._-]{1,64}$/.test(entry.handle) &&
    (entry.scope === "swarm-wide" || entry.scope === "members-only") &&
    typeof entry.host === "string" && HOST.test(entry.host) &&
    typeof entry.confirmed_at === "string" &&
    !Number.isNaN(Date.parse(entry.confirmed_at));
}

/**
 * Reads the agent's cache of confirmed announcements: a JSON array of
 * {@link AnnouncedProject}, each with exactly those fields
 * (`scope_statement` may be left out). Entries
 * of any other shape are skipped; an absent or unreadable file, or one
 * that is not an array, reads as empty.
 */
export function readAnnounced(path: string): AnnouncedProject[] {
  try {
    const value = JSON.parse(Deno.readTextFileSync(path));
    return Array.isArray(value) ? value.filter(isAnnouncedProject) : [];
  } catch {
    return [];
  }
}

/**
 * Adopts every project in the agent's cache of confirmed announcements
 * whose id this signer's key and the confirmed handle reproduce, and that
 * has no local state yet, unless the user dropped it here (`left.json`;
 * founding it again with `project init` clears that). The entry's scope
 * statement is kept when it verifies (it is this key's own); the entry's
 * `scope` alone decides nothing, and without a statement the project is
 * members-only. Returns the handles adopted.
 */
export async function adoptFoundedProjects(
  gitbackDir: string,
  announcedPath: string,
  signer: Signer,
): Promise<string[]> {
  const adopted: string[] = [];
  const announced = readAnnounced(announcedPath);
  const left = announced.length > 0 ? readLeft(gitbackDir) : new Set();
  for (const entry of announced) {
    const handle = entry.handle;
    if (left.has(entry.project_id)) continue;
    if (exists(`${projectDir(gitbackDir, entry.project_id)}/project.json`)) {
      continue;
    }
    let id: string;
    try {
      id = await computeProjectId(signer.publicKey, handle);
    } catch {
      continue;
    }
    if (id !== entry.project_id || adopted.includes(handle)) continue;
    // Any host's statement will do, as long as it verifies.
    const statement = announced.find((other) =>
      other.project_id === id &&
      checkScopeStatement(other.scope_statement, id) !== null
    )?.scope_statement;
    writeAdopted(gitbackDir, {
      projectId: id,
      handle,
      founder: signer.publicKey,
      me: signer.publicKey,
      statement,
      chain: [await mintBootstrapToken(signer, handle)],
    });
    adopted.push(handle);
  }
  return adopted;
}
