/**
 * Filesystem primitives: atomic writes with their final mode from creation,
 * private directories, mode checks, advisory locks and multi-file commits.
 *
 * @module
 */

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Flushes a directory entry so that a rename survives power loss. */
function syncDirectory(dir: string): void {
  try {
    const handle = Deno.openSync(dir, { read: true });
    try {
      handle.syncSync();
    } finally {
      handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  }
}

/**
 * Writes `data` to `path` so that readers see either the old file or the new
 * one, never a mix: temp file created with `mode`, fsync, rename, fsync dir.
 * When it throws, `path` was not replaced and the temp file is gone.
 */
export function writeFileAtomic(
  path: string,
  data: Uint8Array,
  mode: number,
): void {
  const temp = `${dirname(path)}/.${basename(path)}.${randomSuffix()}.tmp`;
  const file = Deno.openSync(temp, { write: true, createNew: true, mode });
  try {
    try {
      // The umask may have narrowed the mode; set it exactly.
      Deno.chmodSync(temp, mode);
      let written = 0;
      while (written < data.length) {
        written += file.writeSync(data.subarray(written));
      }
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temp, path);
  } catch (error) {
    // A full disk fails the write, the fsync or even the close; the partial
    // temp file must not stay to hold the space. Cleanup never hides why.
    try {
      Deno.removeSync(temp);
    } catch {
      // Gone already; or recoverFileSet sweeps it.
    }
    throw error;
  }
  syncDirectory(dirname(path));
}

/** Writes UTF-8 text atomically; for public, non-secret files only. */
export function writeTextAtomic(path: string, text: string, mode: number) {
  writeFileAtomic(path, new TextEncoder().encode(text), mode);
}

/** True when `path` exists (without following a final symlink). */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Removes a file if present; reports whether it was there. */
export function removeIfExists(path: string): boolean {
  try {
    Deno.removeSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Makes sure `dir` exists as a directory with exactly `mode`, owned by the
 * calling user. An existing directory with a wider mode is tightened; one
 * owned by someone else is refused, because its owner could swap our files.
 */
export function ensurePrivateDir(dir: string, mode = 0o700): void {
  try {
    Deno.mkdirSync(dir, { mode });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = Deno.lstatSync(dir);
  if (!info.isDirectory) {
    throw new Error(
      `${dir} exists but is not a directory; move it aside and retry.`,
    );
  }
  const uid = Deno.uid();
  if (uid !== null && info.uid !== uid) {
    throw new Error(
      `${dir} is owned by uid ${info.uid}, not by you (uid ${uid}); remove it and retry.`,
    );
  }
  if (((info.mode ?? 0) & 0o777) !== mode) Deno.chmodSync(dir, mode);
}

/** The permission bits of `path`. */
export function modeOf(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

/**
 * Refuses a secret file that group or others can read or write, as ssh does
 * for private keys, so a leaked copy is noticed instead of used.
 */
export function assertPrivateFile(path: string): void {
  const mode = modeOf(path);
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `${path} has mode ${
        mode.toString(8).padStart(4, "0")
      }, readable or writable by others; run \`chmod 600 ${path}\` and retry.`,
    );
  }
}

/** Reads a whole file, refusing files over `maxBytes`. */
export function readFileBounded(path: string, maxBytes: number): Uint8Array {
  const size = Deno.statSync(path).size;
  if (size > maxBytes) {
    throw new Error(
      `${path} is ${size} bytes, more than the ${maxBytes} allowed; it is not a file this program wrote.`,
    );
  }
  return Deno.readFileSync(path);
}

/**
 * Runs `fn` while holding an exclusive advisory lock on `lockPath`, so that
 * concurrent writers of the same state are serialized.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => T | Promise<T>,
): Promise<T> {
  const file = Deno.openSync(lockPath, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

/** One file of a {@link commitFileSet}. */
export interface FileSetEntry {
  /** File name inside the directory (no slashes). */
  name: string;
  /** Full contents. */
  data: Uint8Array;
  /** Final permission bits. */
  mode: number;
}

/** File name of the commit journal inside the directory it commits to. */
export const COMMIT_JOURNAL = ".commit-journal";
const JOURNAL_MAGIC = new TextEncoder().encode("VGJ1");

function encodeJournal(entries: FileSetEntry[]): Uint8Array {
  const names = entries.map((e) => new TextEncoder().encode(e.name));
  let size = JOURNAL_MAGIC.length + 4;
  entries.forEach((e, i) =>
    size += 2 + names[i].length + 4 + 4 + e.data.length
  );
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(JOURNAL_MAGIC, 0);
  let at = JOURNAL_MAGIC.length;
  view.setUint32(at, entries.length);
  at += 4;
  entries.forEach((e, i) => {
    view.setUint16(at, names[i].length);
    out.set(names[i], at + 2);
    at += 2 + names[i].length;
    view.setUint32(at, e.mode);
    view.setUint32(at + 4, e.data.length);
    out.set(e.data, at + 8);
    at += 8 + e.data.length;
  });
  return out;
}

function decodeJournal(bytes: Uint8Array): FileSetEntry[] | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) return null;
  for (let i = 0; i < JOURNAL_MAGIC.length; i++) {
    if (bytes[i] !== JOURNAL_MAGIC[i]) return null;
  }
  const count = view.getUint32(4);
  const entries: FileSetEntry[] = [];
  let at = 8;
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) return null;
    const nameLength = view.getUint16(at);
    if (at + 2 + nameLength + 8 > bytes.length) return null;
    const name = new TextDecoder().decode(
      bytes.subarray(at + 2, at + 2 + nameLength),
    );
    at += 2 + nameLength;
    const mode = view.getUint32(at);
    const length = view.getUint32(at + 4);
    at += 8;
    if (at + length > bytes.length || name.includes("/")) return null;
    entries.push({ name, mode, data: bytes.slice(at, at + length) });
    at += length;
  }
  return at === bytes.length ? entries : null;
}

/**
 * What {@link commitFileSet} did after its commit point. The change is
 * committed either way; when `finished` is false the journal stays and
 * {@link recoverFileSet} completes the change, and `cause` says what stopped
 * it here (a full disk, typically).
 */
export type CommitOutcome =
  | { finished: true }
  | { finished: false; cause: Error };

/**
 * Replaces several files in `dir` as one unit. The new contents are first
 * written (atomically) to a journal; then each file is replaced; then the
 * journal is removed. The journal being in place is the commit point:
 *
 * - when writing it fails, this throws and nothing changed;
 * - once it is in place the change stands. A failure while replacing the
 *   files or removing the journal does not throw: the outcome says the change
 *   is committed but unfinished, and {@link recoverFileSet} finishes it, as
 *   after a crash, so readers never act on a mix of old and new files.
 *
 * Callers hold the directory's lock (and have run {@link recoverFileSet}).
 */
export function commitFileSet(
  dir: string,
  entries: FileSetEntry[],
): CommitOutcome {
  const journal = `${dir}/${COMMIT_JOURNAL}`;
  const encoded = encodeJournal(entries);
  try {
    writeFileAtomic(journal, encoded, 0o600);
  } finally {
    encoded.fill(0);
  }
  try {
    applyEntries(dir, entries);
    Deno.removeSync(journal);
    syncDirectory(dir);
    return { finished: true };
  } catch (error) {
    return {
      finished: false,
      cause: error instanceof Error ? error : new Error(String(error)),
    };
  }
}

function applyEntries(dir: string, entries: FileSetEntry[]): void {
  for (const entry of entries) {
    writeFileAtomic(`${dir}/${entry.name}`, entry.data, entry.mode);
  }
}

/**
 * Finishes a {@link commitFileSet} that a crash or a failure (a full disk)
 * interrupted, and removes temp files left behind. Returns true when it
 * rolled forward. When rolling forward fails it throws and the journal stays,
 * so a later call finishes it. Callers hold the directory's lock.
 */
export function recoverFileSet(dir: string): boolean {
  // Temp files first: on a full disk they may hold the space needed below.
  for (const entry of Deno.readDirSync(dir)) {
    if (
      entry.isFile && entry.name.startsWith(".") && entry.name.endsWith(".tmp")
    ) {
      removeIfExists(`${dir}/${entry.name}`);
    }
  }
  const journal = `${dir}/${COMMIT_JOURNAL}`;
  if (!exists(journal)) return false;
  const bytes = Deno.readFileSync(journal);
  const entries = decodeJournal(bytes);
  bytes.fill(0);
  // The journal itself is written atomically, so an unreadable one was
  // never complete and nothing was replaced from it.
  if (entries) {
    try {
      applyEntries(dir, entries);
    } finally {
      for (const e of entries) e.data.fill(0);
    }
  }
  Deno.removeSync(journal);
  syncDirectory(dir);
  return entries !== null;
}

// Reading a user's files as root lives with the other owner-checked
// operations; re-exported here for the callers that import it from fs.ts.
export { readOwnedFile, readOwnedJson } from "./user_files.ts";
