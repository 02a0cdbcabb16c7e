/**
 * Git bundles as the unit of replication: thin ones (only what a peer
 * lacks, given tips it already has) or full ones, and their ingestion.
 *
 * @module
 */

import { sha1 } from "@noble/hashes/legacy.js";
import { git, gitWithInput, listRefs, walkNewObjects } from "./repo.ts";

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
 * has everything. git writes the bundle in `tempDir`, which must be private
 * (the agent's 0700 spool, emptied at start-up): a bundle holds a whole
 * repository, members-only ones included, and git makes it 0644.
 */
export async function createBundle(
  repo: string,
  tempDir: string,
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
  Deno.mkdirSync(tempDir, { recursive: true, mode: 0o700 });
  const file = await Deno.makeTempFile({
    prefix: "vigo-bundle-",
    dir: tempDir,
  });
  try {
    const args = ["-C", repo, "bundle", "create", "--quiet", file, "--all"];
    if (usable.length > 0) args.push("--not", ...usable);
    try {
      await git(args);
    } catch (error) {
      // Every ref points at objects the peer holds (a tag or a branch at
      // an existing commit): the signed ref state alone tells it.
      if (/empty bundle/i.test((error as Error).message)) return null;
      throw error;
    }
    return { bytes: await Deno.readFile(file), thin: usable.length > 0 };
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/**
 * Checks that the pack inside a bundle is complete: it starts with `PACK`
 * and ends with the SHA-1 of everything before its trailer. `git bundle
 * verify` checks only the header and prerequisites.
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

function indexOfBlankLine(bytes: Uint8Array, from = 0): number {
  for (let i = Math.max(0, from); i + 1 < bytes.length; i++) {
    if (bytes[i] === 0x0a && bytes[i + 1] === 0x0a) return i;
  }
  return -1;
}

/** Largest bundle header (signature, prerequisites, refs) read. */
export const MAX_BUNDLE_HEADER_BYTES = 16 * 1024 * 1024;

/** A bundle file's header and where its pack starts. */
interface BundleLayout {
  /** The header's lines, the signature line first. */
  lines: string[];
  /** Byte offset of the pack. */
  packStart: number;
}

/**
 * Reads a bundle file's header (at most {@link MAX_BUNDLE_HEADER_BYTES})
 * and checks its pack as {@link assertCompletePack} does, streaming: the
 * body never sits in memory whole.
 */
async function readBundleLayout(path: string): Promise<BundleLayout> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    const chunk = new Uint8Array(1024 * 1024);
    let head = new Uint8Array(0);
    let blank = -1;
    while (blank < 0 && head.length < Math.min(size, MAX_BUNDLE_HEADER_BYTES)) {
      const n = await file.read(chunk);
      if (n === null) break;
      const grown = new Uint8Array(head.length + n);
      grown.set(head);
      grown.set(chunk.subarray(0, n), head.length);
      blank = indexOfBlankLine(grown, head.length - 1);
      head = grown;
    }
    if (blank < 0 || blank > MAX_BUNDLE_HEADER_BYTES) {
      throw new BundleError(
        "not a valid git bundle: no pack after the header.",
      );
    }
    const packStart = blank + 2;
    const packSize = size - packStart;
    const magic = new TextDecoder().decode(
      head.subarray(packStart, packStart + 4),
    );
    if (packSize < 32 || (head.length >= packStart + 4 && magic !== "PACK")) {
      throw new BundleError(
        "not a valid git bundle: no pack after the header.",
      );
    }
    // SHA-1 here is git's pack checksum, an integrity check, not security.
    const hash = sha1.create();
    await file.seek(packStart, Deno.SeekMode.Start);
    let left = packSize - 20;
    let first = true;
    while (left > 0) {
      const n = await file.read(
        chunk.subarray(0, Math.min(chunk.length, left)),
      );
      if (n === null) break;
      const part = chunk.subarray(0, n);
      if (first && new TextDecoder().decode(part.subarray(0, 4)) !== "PACK") {
        throw new BundleError(
          "not a valid git bundle: no pack after the header.",
        );
      }
      first = false;
      hash.update(part);
      left -= n;
    }
    const trailer = new Uint8Array(20);
    let got = 0;
    while (left === 0 && got < 20) {
      const n = await file.read(trailer.subarray(got));
      if (n === null) break;
      got += n;
    }
    const digest = hash.digest();
    if (got < 20 || digest.some((b, i) => b !== trailer[i])) {
      throw new BundleError(
        "not a valid git bundle: the pack is truncated or corrupted.",
      );
    }
    const text = new TextDecoder().decode(head.subarray(0, blank));
    return { lines: text.split("\n"), packStart };
  } finally {
    file.close();
  }
}

/** The `refs/…` refs a bundle header lists: ref name → object id. */
function bundleRefs(lines: string[]): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line.startsWith("@") || line.startsWith("-")) continue;
    const match = /^([0-9a-f]{40}) (refs\/\S+)$/.exec(line);
    if (!match) continue;
    if (refs.has(match[2])) {
      throw new BundleError(
        `not a valid git bundle: it lists ${match[2]} twice.`,
      );
    }
    refs.set(match[2], match[1]);
  }
  return refs;
}

/**
 * Fetches every ref of a bundle into `repo` (forced: the bundle is the
 * sender's state). Objects land before refs move, so an interrupted ingest
 * leaves refs pointing at complete objects. Returns how many refs changed.
 * `bytes` is written to a temporary file (in `options.tempDir`, else the
 * system's) and ingested as {@link ingestBundleFile} does.
 *
 * Every failure is a {@link BundleError} (or {@link MissingPrerequisites})
 * whose message names no local path; its `detail` has git's full output.
 */
export async function ingestBundle(
  repo: string,
  bytes: Uint8Array,
  options: { tempDir?: string; objectsOnly?: boolean } = {},
): Promise<number> {
  assertCompletePack(bytes);
  let file: string;
  try {
    file = await Deno.makeTempFile({
      prefix: "vigo-bundle-",
      dir: options.tempDir,
    });
  } catch (error) {
    throw new BundleError(
      "this envoy could not store the bundle for checking.",
      (error as Error).message,
    );
  }
  try {
    try {
      await Deno.writeFile(file, bytes);
    } catch (error) {
      throw new BundleError(
        "this envoy could not store the bundle for checking.",
        (error as Error).message,
      );
    }
    return await ingestBundleFile(repo, file, {
      objectsOnly: options.objectsOnly,
    });
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/**
 * Ingests the bundle in the file at `path` into `repo`, with the checks a
 * careful host applies to a push, streaming the file (never reading it
 * into memory whole):
 *
 * 1. the pack after the header starts with `PACK` and ends with the SHA-1
 *    of its content;
 * 2. `git bundle verify` (missing prerequisites are a
 *    {@link MissingPrerequisites});
 * 3. `git index-pack --strict --fix-thin`: git's fsck of every object (the
 *    checks `receive.fsckObjects` applies to pushes, `.gitmodules` ones
 *    included) and of every link from the new objects, before the pack is
 *    installed;
 * 4. every new tip is connected (`git rev-list --objects`);
 * 5. the `refs/…` refs of the bundle are set in one transaction
 *    (`git update-ref --stdin`), unless `objectsOnly`: replicas take refs
 *    only from signed ref states (ref_apply.ts), never from a bundle.
 *
 * Returns how many refs changed. Failures are as for {@link ingestBundle};
 * an fsck refusal tells the peer only that the objects failed git's
 * checks, the detail (which object, which check) is for the log.
 */
export async function ingestBundleFile(
  repo: string,
  path: string,
  options: { objectsOnly?: boolean } = {},
): Promise<number> {
  const known: Array<[string, string]> = [
    [path, "<bundle>"],
    [realPathOr(path), "<bundle>"],
    [path.slice(path.lastIndexOf("/") + 1), "<bundle>"],
    [repo, "<repository>"],
    [realPathOr(repo), "<repository>"],
  ];
  const refuse = (reason: string, error: unknown): never => {
    if (error instanceof BundleError) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new BundleError(
      `${reason}: ${withoutLocalPaths(detail, known)}`,
      `bundle ${path}: ${detail}`,
    );
  };
  let layout: BundleLayout;
  try {
    layout = await readBundleLayout(path);
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError(
      "this envoy could not read the bundle back for checking.",
      `bundle ${path}: ${(error as Error).message}`,
    );
  }
  const verify = await new Deno.Command("git", {
    // Not --quiet: git 2.39 then says nothing about missing
    // prerequisites, which must be told apart (409, not 400).
    args: ["-C", repo, "bundle", "verify", path],
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
  if (layout.lines.some((line) => line.startsWith("@filter"))) {
    throw new BundleError(
      "filtered (partial) bundles are not accepted; send a full or thin bundle.",
    );
  }
  const refs = bundleRefs(layout.lines);
  const before = await listRefs(repo).catch((error) =>
    refuse("the repository could not be read", error)
  );
  // New objects go to a quarantine beside the bundle first (as
  // receive-pack does), so a refused pack leaves nothing in the repository.
  const quarantine = `${path.slice(0, path.lastIndexOf("/")) || "."}/${
    path.slice(path.lastIndexOf("/") + 1)
  }.objects`;
  known.unshift([quarantine, "<quarantine>"]);
  try {
    Deno.mkdirSync(`${quarantine}/pack`, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new BundleError(
      "this envoy could not store the bundle for checking.",
      `quarantine ${quarantine}: ${(error as Error).message}`,
    );
  }
  try {
    const env = {
      GIT_OBJECT_DIRECTORY: quarantine,
      GIT_ALTERNATE_OBJECT_DIRECTORIES: `${realPathOr(repo)}/objects`,
      GIT_QUARANTINE_PATH: quarantine,
    };
    // git's fsck of every object, as receive.fsckObjects does for a push.
    const index = await gitWithInput(
      ["-C", repo, "index-pack", "--stdin", "--fix-thin", "--strict"],
      { path, offset: layout.packStart },
      env,
    );
    if (!index.success) {
      if (/fsck|^error: object [0-9a-f]{40}: /m.test(index.stderr)) {
        throw new BundleError(
          "the bundle failed git's object checks (fsck); the receiving envoy's log names the object and the check.",
          `git index-pack --strict, bundle ${path}: ${index.stderr}`,
        );
      }
      refuse("the bundle could not be applied", new Error(index.stderr));
    }
    const updates = [...refs].filter(([ref, id]) => before.get(ref) !== id);
    if (updates.length > 0) {
      const connected = await walkNewObjects(
        repo,
        updates.map(([, id]) => id),
        env,
      );
      if (!connected.success) {
        refuse(
          "the bundle could not be applied",
          new Error(
            `it did not send all necessary objects: ${connected.stderr}`,
          ),
        );
      }
    }
    await migrateObjects(quarantine, `${repo}/objects`).catch((error) =>
      refuse("the bundle could not be stored", error)
    );
    if (updates.length === 0 || options.objectsOnly) return 0;
    const update = await gitWithInput(
      ["-C", repo, "update-ref", "--stdin"],
      updates.map(([ref, id]) => `update ${ref} ${id}\n`).join(""),
    );
    if (!update.success) {
      refuse("the bundle could not be applied", new Error(update.stderr));
    }
    return updates.length;
  } finally {
    await Deno.remove(quarantine, { recursive: true }).catch(() => {});
  }
}

/**
 * Moves the packs of a quarantine object directory into `objects`: each
 * `.pack` (and its other files) before its `.idx`, since git finds packs by
 * their index. Copies when a rename cannot cross file systems.
 */
async function migrateObjects(
  quarantine: string,
  objects: string,
): Promise<void> {
  const names = [...Deno.readDirSync(`${quarantine}/pack`)]
    .filter((e) => e.isFile && /^pack-[0-9a-f]+\.[a-z]+$/.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => Number(a.endsWith(".idx")) - Number(b.endsWith(".idx")));
  for (const name of names) {
    const from = `${quarantine}/pack/${name}`;
    const to = `${objects}/pack/${name}`;
    try {
      await Deno.rename(from, to);
    } catch (error) {
      if (
        !(error instanceof Error && /cross-device|EXDEV/i.test(error.message))
      ) {
        throw error;
      }
      const temp = `${objects}/pack/tmp_vigo_${crypto.randomUUID()}`;
      try {
        await Deno.copyFile(from, temp);
        await Deno.chmod(temp, 0o444);
        await Deno.rename(temp, to);
      } finally {
        await Deno.remove(temp).catch(() => {});
      }
    }
  }
}
