/**
 * Git bundles as the unit of replication: thin ones (only what a peer
 * lacks, given tips it already has) or full ones, and their ingestion.
 *
 * @module
 */

import { sha1 } from "@noble/hashes/legacy.js";
import { git, listRefs } from "./repo.ts";

/**
 * A bundle could not be ingested. `message` says why without naming any
 * path of this envoy (no temporary file, no repository), so a receiver may
 * send it back to the peer that delivered the bundle; `detail` is the full
 * account (git's own output, paths included) for this envoy's log only.
 */
export class BundleError extends Error {
  /** Everything known about the failure; never send it to a peer. */
  readonly detail: string;
  constructor(message: string, detail: string = message) {
    super(message);
    this.name = "BundleError";
    this.detail = detail;
  }
}

/** Raised when a bundle needs commits the receiving repository lacks. */
export class MissingPrerequisites extends BundleError {
  constructor(message: string, detail?: string) {
    super(message, detail);
    this.name = "MissingPrerequisites";
  }
}

/** Longest reason taken from git's output into a {@link BundleError}. */
const MAX_REASON = 300;

/**
 * `text` (git's or Deno's error output) without local paths: each of
 * `known` is replaced by its label, then anything else that looks like an
 * absolute path by `<path>`; control characters become spaces and the
 * result is cut to {@link MAX_REASON} characters.
 */
export function withoutLocalPaths(
  text: string,
  known: Array<[path: string, label: string]> = [],
): string {
  let out = text;
  const pairs = known
    .filter(([path]) => path.length > 1)
    // Longer first, so a path is replaced before any prefix of it.
    .sort((a, b) => b[0].length - a[0].length);
  for (const [path, label] of pairs) out = out.replaceAll(path, label);
  out = out
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .replace(/(^|[\s'"`(\[=:,])(?:file:\/\/)?\/+[^\s'"`)\],]*/g, "$1<path>")
    .replace(/^git \S+ failed: /, "")
    .replace(/\b(?:error|fatal|warning): /g, "")
    .replace(/\s+/g, " ")
    .trim();
  return out.length > MAX_REASON ? `${out.slice(0, MAX_REASON)}…` : out;
}

function realPathOr(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

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
    throw new BundleError("not a valid git bundle: no pack after the header.");
  }
  // SHA-1 here is git's pack checksum, an integrity check, not security.
  const digest = sha1(pack.subarray(0, pack.length - 20));
  const trailer = pack.subarray(pack.length - 20);
  if (digest.some((b, i) => b !== trailer[i])) {
    throw new BundleError(
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
 *
 * Every failure is a {@link BundleError} (or {@link MissingPrerequisites})
 * whose message names no local path; its `detail` has git's full output.
 */
export async function ingestBundle(
  repo: string,
  bytes: Uint8Array,
): Promise<number> {
  assertCompletePack(bytes);
  let file: string;
  try {
    file = await Deno.makeTempFile({ prefix: "vigo-bundle-" });
  } catch (error) {
    throw new BundleError(
      "this envoy could not store the bundle for checking.",
      (error as Error).message,
    );
  }
  const known: Array<[string, string]> = [
    [file, "<bundle>"],
    [realPathOr(file), "<bundle>"],
    [file.slice(file.lastIndexOf("/") + 1), "<bundle>"],
    [repo, "<repository>"],
    [realPathOr(repo), "<repository>"],
  ];
  const refuse = (reason: string, error: unknown): never => {
    if (error instanceof BundleError) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new BundleError(
      `${reason}: ${withoutLocalPaths(detail, known)}`,
      detail,
    );
  };
  try {
    try {
      await Deno.writeFile(file, bytes);
    } catch (error) {
      throw new BundleError(
        "this envoy could not store the bundle for checking.",
        (error as Error).message,
      );
    }
    const verify = await new Deno.Command("git", {
      // Not --quiet: git 2.39 then says nothing about missing
      // prerequisites, which must be told apart (409, not 400).
      args: ["-C", repo, "bundle", "verify", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!verify.success) {
      const why = new TextDecoder().decode(verify.stderr).trim();
      if (/prerequisite/i.test(why)) {
        throw new MissingPrerequisites(
          "the bundle needs commits this repository lacks.",
          `git bundle verify: ${why}`,
        );
      }
      if (
        known.some(([path, label]) =>
          label === "<repository>" && why.includes(path)
        )
      ) {
        throw new BundleError(
          `this envoy could not use its repository: ${
            withoutLocalPaths(why.split("\n")[0], known)
          }`,
          `git bundle verify: ${why}`,
        );
      }
      throw new BundleError(
        `not a valid git bundle: ${
          withoutLocalPaths(why.split("\n")[0], known) || "git refused it"
        }`,
        `git bundle verify: ${why}`,
      );
    }
    const before = await listRefs(repo).catch((error) =>
      refuse("the repository could not be read", error)
    );
    await git([
      "-C",
      repo,
      "fetch",
      "--quiet",
      "--no-write-fetch-head",
      file,
      "+refs/*:refs/*",
    ]).catch((error) => refuse("the bundle could not be applied", error));
    const after = await listRefs(repo).catch((error) =>
      refuse("the repository could not be read", error)
    );
    let changed = 0;
    for (const [ref, id] of after) if (before.get(ref) !== id) changed++;
    return changed;
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}
