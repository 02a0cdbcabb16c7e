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
 */
export function writeFileAtomic(
  path: string,
  data: Uint8Array,
  mode: number,
): void {
  const temp = `${dirname(path)}/.${basename(path)}.${randomSuffix()}.tmp`;
  const file = Deno.openSync(temp, { write: true, createNew: true, mode });
  try {
    // The umask may have narrowed the mode; set it exactly.
    Deno.chmodSync(temp, mode);
    let written = 0;
    while (written < data.length) {
      written += file.writeSync(data.subarray(written));
    }
    file.syncSync();
  } catch (error) {
    file.close();
    Deno.removeSync(temp);
    throw error;
  }
  file.close();
  try {
    Deno.renameSync(temp, path);
  } catch (error) {
    Deno.removeSync(temp);
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

const JOURNAL_NAME = ".commit-journal";
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
 * Replaces several files in `dir` as one unit. The new contents are first
 * written (atomically) to a journal; then each file is replaced; then the
 * journal is removed. A crash at any point is repaired by
 * {@link recoverFileSet}, which rolls the journal forward, so readers never
 * act on a mix of old and new files. Callers hold the directory's lock.
 */
export function commitFileSet(dir: string, entries: FileSetEntry[]): void {
  const journal = `${dir}/${JOURNAL_NAME}`;
  const encoded = encodeJournal(entries);
  writeFileAtomic(journal, encoded, 0o600);
  encoded.fill(0);
  applyEntries(dir, entries);
  Deno.removeSync(journal);
  syncDirectory(dir);
}

function applyEntries(dir: string, entries: FileSetEntry[]): void {
  for (const entry of entries) {
    writeFileAtomic(`${dir}/${entry.name}`, entry.data, entry.mode);
  }
}

/**
 * Finishes a {@link commitFileSet} that a crash interrupted, and removes
 * temp files a crash left behind. Returns true when it rolled forward.
 * Callers hold the directory's lock.
 */
export function recoverFileSet(dir: string): boolean {
  let rolled = false;
  const journal = `${dir}/${JOURNAL_NAME}`;
  if (exists(journal)) {
    const bytes = Deno.readFileSync(journal);
    const entries = decodeJournal(bytes);
    bytes.fill(0);
    // The journal itself is written atomically, so an unreadable one was
    // never complete and nothing was replaced from it.
    if (entries) {
      applyEntries(dir, entries);
      for (const e of entries) e.data.fill(0);
      rolled = true;
    }
    Deno.removeSync(journal);
  }
  for (const entry of Deno.readDirSync(dir)) {
    if (
      entry.isFile && entry.name.startsWith(".") && entry.name.endsWith(".tmp")
    ) {
      removeIfExists(`${dir}/${entry.name}`);
    }
  }
  if (rolled) syncDirectory(dir);
  return rolled;
}

/**
 * Reads a file that belongs to user `uid`, for a privileged process acting
 * on that user's behalf. Refuses symlinks, non-regular files and files owned
 * by anyone else; the ownership check is made on the opened descriptor, so
 * neither a symlink nor a hard link to someone else's file gets through.
 */
export function readOwnedFile(
  path: string,
  uid: number,
  maxBytes: number,
): Uint8Array {
  const before = Deno.lstatSync(path);
  if (!before.isFile || before.isSymlink) {
    throw new Error(`${path} is not a regular file.`);
  }
  if (before.uid !== uid) {
    throw new Error(`${path} is not owned by uid ${uid}.`);
  }
  const file = Deno.openSync(path, { read: true });
  try {
    const info = file.statSync();
    if (
      !info.isFile || info.uid !== uid || info.ino !== before.ino ||
      info.dev !== before.dev
    ) {
      throw new Error(`${path} changed while it was being opened.`);
    }
    if (info.size > maxBytes) {
      throw new Error(`${path} is larger than ${maxBytes} bytes.`);
    }
    const data = new Uint8Array(info.size);
    let read = 0;
    while (read < data.length) {
      const n = file.readSync(data.subarray(read));
      if (n === null) break;
      read += n;
    }
    return data.subarray(0, read);
  } finally {
    file.close();
  }
}

/** {@link readOwnedFile}, parsed as JSON (a user's state file, 256 KiB by default). */
export function readOwnedJson(
  path: string,
  uid: number,
  maxBytes = 256 * 1024,
): unknown {
  return JSON.parse(
    new TextDecoder().decode(readOwnedFile(path, uid, maxBytes)),
  );
}
