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
