/**
 * Git bundles as the unit of replication: thin ones (only what a peer
 * lacks, given tips it already has) or full ones, and their ingestion.
 *
 * @module
 */

import { sha1 } from "@noble/hashes/legacy.js";
import { git, listRefs } from "./repo.ts";

/** Raised when a bundle needs commits the receiving repository lacks. */
export class MissingPrerequisites extends Error {}

async function hasCommit(repo: string, id: string): Promise<boolean> {
  const out = await new Deno.Command("git", {
    args: ["-C", repo, "cat-file", "-e", `${id}^{commit}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/**
 * A bundle of every ref of `repo`, leaving out what is reachable from
 * `known` (tips the peer already holds). Returns null when the peer already
 * has everything.
 */
export async function createBundle(
  repo: string,
  known: string[] = [],
): Promise<{ bytes: Uint8Array; thin: boolean } | null> {
  const usable: string[] = [];
  for (const id of new Set(known)) {
    if (/^[0-9a-f]{40,64}$/.test(id) && await hasCommit(repo, id)) {
      usable.push(id);
    }
  }
  const refs = await listRefs(repo);
  if (refs.size === 0) return null;
  if (
    usable.length > 0 && [...refs.values()].every((id) => usable.includes(id))
  ) return null;
  const file = await Deno.makeTempFile({ prefix: "vigo-bundle-" });
  try {
    const args = ["-C", repo, "bundle", "create", "--quiet", file, "--all"];
    if (usable.length > 0) args.push("--not", ...usable);
    await git(args);
    return { bytes: await Deno.readFile(file), thin: usable.length > 0 };
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/**
 * Checks that the pack inside a bundle is complete: it starts with `PACK`
 * and ends with the SHA-1 of everything before its trailer. `git bundle
 * verify` checks only the header and prerequisites, and a fetch that needs
 * no new objects never reads the pack at all.
 */
export function assertCompletePack(bytes: Uint8Array): void {
  const headerEnd = indexOfBlankLine(bytes);
  const pack = headerEnd < 0
    ? new Uint8Array(0)
    : bytes.subarray(headerEnd + 2);
  const magic = new TextDecoder().decode(pack.subarray(0, 4));
  if (pack.length < 32 || magic !== "PACK") {
    throw new Error("not a valid git bundle: no pack after the header.");
  }
  // SHA-1 here is git's pack checksum, an integrity check, not security.
  const digest = sha1(pack.subarray(0, pack.length - 20));
  const trailer = pack.subarray(pack.length - 20);
  if (digest.some((b, i) => b !== trailer[i])) {
    throw new Error(
      "not a valid git bundle: the pack is truncated or corrupted.",
    );
  }
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0x0a && bytes[i + 1] === 0x0a) return i;
  }
  return -1;
}

/**
 * Fetches every ref of a bundle into `repo` (forced: the bundle is the
 * sender's state). Objects land before refs move, so an interrupted ingest
 * leaves refs pointing at complete objects. Returns how many refs changed.
 */
export async function ingestBundle(
  repo: string,
  bytes: Uint8Array,
): Promise<number> {
  assertCompletePack(bytes);
  const file = await Deno.makeTempFile({ prefix: "vigo-bundle-" });
  try {
    await Deno.writeFile(file, bytes);
    const verify = await new Deno.Command("git", {
      args: ["-C", repo, "bundle", "verify", "--quiet", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!verify.success) {
      const why = new TextDecoder().decode(verify.stderr);
      if (/prerequisite/i.test(why)) {
        throw new MissingPrerequisites(
          "the bundle needs commits this repository lacks.",
        );
      }
      throw new Error(`not a valid git bundle: ${why.trim().split("\n")[0]}`);
    }
    const before = await listRefs(repo);
    await git([
      "-C",
      repo,
      "fetch",
      "--quiet",
      "--no-write-fetch-head",
      file,
      "+refs/*:refs/*",
    ]);
    const after = await listRefs(repo);
    let changed = 0;
    for (const [ref, id] of after) if (before.get(ref) !== id) changed++;
    return changed;
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}
