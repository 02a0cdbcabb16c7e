/**
 * Usercrate policy: which Unix users may use puddle and gitback on this
 * envoy. `vigo config apply` turns a usercrate file into one root-owned
 * JSON file per user; the CLI reads it before any puddle or gitback verb.
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import type { SystemPaths } from "../platform/paths.ts";
import { readFileBounded, writeTextAtomic } from "../platform/fs.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import { canonicalBytes } from "../crypto/canonical.ts";
import { toHex } from "../crypto/hex.ts";

/** One `type: user` resource of a usercrate. */
export interface UserPolicy {
  user: string;
  home: string;
  puddle: boolean;
  gitback: boolean;
}

/** A policy as stored, with where it came from. */
export interface StoredPolicy extends UserPolicy {
  applied_at: string;
  source: string;
}

const USERNAME = /^[a-z_][a-z0-9_.-]{0,31}$/;
const MAX_USERCRATE_BYTES = 1024 * 1024;

/** True for names this program accepts as Unix user names. */
export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

/** The directory holding one `<user>.json` per user. */
export function policyDir(paths: SystemPaths): string {
  return `${paths.varLib}/usercrate-policy`;
}

/** Parses usercrate YAML into user policies, or throws naming the problem. */
export function parseUsercrate(text: string, source: string): UserPolicy[] {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new Error(`${source} is not valid YAML: ${(error as Error).message}`);
  }
  const resources = (document as { resources?: unknown } | null)?.resources;
  if (!Array.isArray(resources)) {
    throw new Error(`${source} has no \`resources:\` list.`);
  }
  const users: UserPolicy[] = [];
  resources.forEach((resource, index) => {
    if (typeof resource !== "object" || resource === null) {
      throw new Error(`${source}: resource ${index + 1} is not a mapping.`);
    }
    const r = resource as Record<string, unknown>;
    if (r.type !== "user") return;
    const where = `${source}: user resource ${index + 1}`;
    if (typeof r.username !== "string" || !USERNAME.test(r.username)) {
      throw new Error(`${where} needs a valid \`username\`.`);
    }
    if (typeof r.home !== "string" || !r.home.startsWith("/")) {
      throw new Error(`${where} (${r.username}) needs an absolute \`home\`.`);
    }
    for (const flag of ["puddle", "gitback"]) {
      if (r[flag] !== undefined && typeof r[flag] !== "boolean") {
        throw new Error(
          `${where} (${r.username}): \`${flag}\` must be true or false.`,
        );
      }
    }
    if (users.some((u) => u.user === r.username)) {
      throw new Error(`${where}: ${r.username} is listed twice.`);
    }
    users.push({
      user: r.username,
      home: r.home,
      puddle: r.puddle === true,
      gitback: r.gitback === true,
    });
  });
  return users;
}

/** Reads a usercrate file from disk and parses it. */
export function readUsercrate(file: string): UserPolicy[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileBounded(file, MAX_USERCRATE_BYTES);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`usercrate file ${file} does not exist.`);
    }
    throw error;
  }
  return parseUsercrate(new TextDecoder().decode(bytes), file);
}

/** Writes one policy file per user (0644: users read their own flags). */
export function writePolicies(
  paths: SystemPaths,
  users: UserPolicy[],
  source: string,
): string[] {
  const dir = policyDir(paths);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const appliedAt = new Date().toISOString();
  return users.map((user) => {
    const path = `${dir}/${user.user}.json`;
    const stored: StoredPolicy = { ...user, applied_at: appliedAt, source };
    writeTextAtomic(path, JSON.stringify(stored, null, 2) + "\n", 0o644);
    return path;
  });
}

/** The stored policy of `user`, or undefined when none was applied. */
export function readPolicy(
  paths: SystemPaths,
  user: string,
): StoredPolicy | undefined {
  if (!USERNAME.test(user)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(
      new TextDecoder().decode(
        readFileBounded(`${policyDir(paths)}/${user}.json`, 64 * 1024),
      ),
    );
  } catch {
    return undefined;
  }
  const record = value as Partial<StoredPolicy> | null;
  if (
    typeof record !== "object" || record === null || record.user !== user
  ) {
    return undefined;
  }
  return {
    user,
    home: String(record.home ?? ""),
    puddle: record.puddle === true,
    gitback: record.gitback === true,
    applied_at: String(record.applied_at ?? ""),
    source: String(record.source ?? ""),
  };
}

/** Most users one published policy may list. */
export const MAX_PUBLISHED_USERS = 4096;
/** Largest published policy document. */
export const MAX_PUBLISHED_POLICY_BYTES = 2 * 1024 * 1024;

/**
 * The usercrate policy the fleet server publishes (`vigo config publish`)
 * and every agent converges to: the users, sorted by name, and the digest
 * that names this exact list.
 */
export interface PublishedPolicy {
  version: 1;
  /** Lowercase hex sha256 of the RFC 8785 form of `users`. */
  digest: string;
  /** When it was published (ISO 8601). */
  published_at: string;
  users: UserPolicy[];
}

/** The digest of a published user list: sha256 of its canonical JSON. */
export function policyDigest(users: UserPolicy[]): string {
  return toHex(sha256(canonicalBytes(users)));
}

/** Builds the published form of `users` (sorted by user name). */
export function publishedPolicy(
  users: UserPolicy[],
  publishedAt: string,
): PublishedPolicy {
  const sorted = users.map((u) => ({
    user: u.user,
    home: u.home,
    puddle: u.puddle,
    gitback: u.gitback,
  })).sort((a, b) => a.user < b.user ? -1 : a.user > b.user ? 1 : 0);
  return {
    version: 1,
    digest: policyDigest(sorted),
    published_at: publishedAt,
    users: sorted,
  };
}

/**
 * Parses a published policy as received from the fleet server: strict
 * fields, valid user names (each once), absolute homes, and a digest that
 * matches the list. Throws a sentence naming the problem.
 */
export function parsePublishedPolicy(bytes: Uint8Array): PublishedPolicy {
  if (bytes.length > MAX_PUBLISHED_POLICY_BYTES) {
    throw new Error(
      `the published policy is ${bytes.length} bytes, more than the ${MAX_PUBLISHED_POLICY_BYTES} accepted.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new Error("the published policy is not UTF-8 JSON.");
  }
  const doc = value as Partial<PublishedPolicy> | null;
  if (
    typeof doc !== "object" || doc === null || doc.version !== 1 ||
    typeof doc.digest !== "string" || typeof doc.published_at !== "string" ||
    !Array.isArray(doc.users) || doc.users.length > MAX_PUBLISHED_USERS
  ) {
    throw new Error(
      "the published policy is malformed: it needs version 1, digest, published_at and at most 4096 users.",
    );
  }
  const seen = new Set<string>();
  const users = doc.users.map((u: unknown, i: number) => {
    const r = u as Partial<UserPolicy> | null;
    if (
      typeof r !== "object" || r === null ||
      Object.keys(r).sort().join(",") !== "gitback,home,puddle,user" ||
      typeof r.user !== "string" || !USERNAME.test(r.user) ||
      typeof r.home !== "string" || !r.home.startsWith("/") ||
      typeof r.puddle !== "boolean" || typeof r.gitback !== "boolean"
    ) {
      throw new Error(`the published policy's user ${i + 1} is malformed.`);
    }
    if (seen.has(r.user)) {
      throw new Error(`the published policy lists ${r.user} twice.`);
    }
    seen.add(r.user);
    return { user: r.user, home: r.home, puddle: r.puddle, gitback: r.gitback };
  });
  if (policyDigest(users) !== doc.digest) {
    throw new Error(
      "the published policy's digest does not match its users; it was changed on the way or by a broken server.",
    );
  }
  return {
    version: 1,
    digest: doc.digest,
    published_at: doc.published_at,
    users,
  };
}

/** Removes `user`'s policy file; false when there was none. */
export function removePolicy(paths: SystemPaths, user: string): boolean {
  if (!USERNAME.test(user)) return false;
  try {
    Deno.removeSync(`${policyDir(paths)}/${user}.json`);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The users that have a policy file here, by name. */
export function policyUsers(paths: SystemPaths): string[] {
  const users: string[] = [];
  try {
    for (const entry of Deno.readDirSync(policyDir(paths))) {
      const match = /^(.+)\.json$/.exec(entry.name);
      if (entry.isFile && match && USERNAME.test(match[1])) {
        users.push(match[1]);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return users.sort();
}
