/**
 * Files that belong to a user, read (and, for queues, deleted) by a root
 * process acting on that user's behalf, so that the kernel, not an earlier
 * check, refuses what is not the user's.
 *
 * Every path component below the home is opened with `openat(…,
 * O_NOFOLLOW|O_NONBLOCK|O_DIRECTORY)` and its owner checked on the opened
 * descriptor; the final file is opened with `O_NOFOLLOW|O_NONBLOCK` and
 * must be a regular file owned by the user. So a symlink, a FIFO, a device
 * or a file leased by its owner is refused at once instead of being
 * followed or blocking the agent, and a rename race cannot swap something
 * else in between a check and a use. Paths on a FUSE mount (whose server a
 * user may run, and which can stall any system call) are refused without
 * being touched.
 *
 * Deno's file API cannot pass these flags, so this module calls libc
 * through FFI (Linux, x86-64 and arm64; needs `--allow-ffi`).
 *
 * @module
 */

/** Raised when a user's file is refused (not missing): wrong type or owner. */
export class UserFileRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserFileRefused";
  }
}

const O_RDONLY = 0;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const ARM = Deno.build.arch === "aarch64";
const O_DIRECTORY = ARM ? 0o40000 : 0o200000;
const O_NOFOLLOW = ARM ? 0o100000 : 0o400000;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const ENOENT = 2;
const ELOOP = 40;
const ENOTDIR = 20;

const SYMBOLS = {
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  statx: {
    parameters: ["i32", "buffer", "i32", "u32", "buffer"],
    result: "i32",
  },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

function lib() {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return libc.symbols;
}

function errno(): number {
  const pointer = lib().__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

function cString(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  if (bytes.includes(0)) throw new UserFileRefused("a path holds a NUL byte.");
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

interface Stat {
  type: "file" | "dir" | "other";
  uid: number;
  size: number;
}

function statOf(dirfd: number, name: string, flags: number): Stat | null {
  const buffer = new Uint8Array(256);
  const rc = lib().statx(
    dirfd,
    cString(name),
    flags,
    STATX_BASIC_STATS,
    buffer,
  );
  if (rc !== 0) {
    const code = errno();
    if (code === ENOENT || code === ENOTDIR) return null;
    throw new Error(`statx failed (errno ${code}).`);
  }
  const view = new DataView(buffer.buffer);
  const mode = view.getUint16(28, true);
  const format = mode & S_IFMT;
  return {
    type: format === S_IFREG ? "file" : format === S_IFDIR ? "dir" : "other",
    uid: view.getUint32(20, true),
    size: Number(view.getBigUint64(40, true)),
  };
}

/** Mount points of FUSE filesystems, from this process's mount table. */
function fuseMounts(): string[] {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/self/mountinfo");
  } catch {
    return [];
  }
  const mounts: string[] = [];
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right || !right.startsWith("fuse")) continue;
    const point = left.split(" ")[4];
    if (point) {
      mounts.push(
        point.replace(
          /\\([0-7]{3})/g,
          (_, octal) => String.fromCharCode(parseInt(octal, 8)),
        ),
      );
    }
  }
  return mounts;
}

function onFuse(path: string): boolean {
  return fuseMounts().some((m) => path === m || path.startsWith(`${m}/`));
}

function checkName(name: string): void {
  if (
    name === "" || name === "." || name === ".." || name.includes("/") ||
    name.includes("\0")
  ) {
    throw new UserFileRefused(`${JSON.stringify(name)} is not a file name.`);
  }
}

function notFound(path: string): Deno.errors.NotFound {
  return new Deno.errors.NotFound(`${path} does not exist.`);
}

/**
 * Opens `name` in `dirfd` as a directory owned by `uid`, without following
 * a symlink and without blocking. Returns the descriptor.
 */
function openOwnedDirAt(
  dirfd: number,
  name: string,
  uid: number,
  shown: string,
  follow = false,
): number {
  const flags = O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC |
    (follow ? 0 : O_NOFOLLOW);
  const fd = lib().openat(dirfd, cString(name), flags, 0);
  if (fd < 0) {
    const code = errno();
    if (code === ENOENT) throw notFound(shown);
    if (code === ELOOP || code === ENOTDIR) {
      throw new UserFileRefused(`${shown} is not a directory (or a symlink).`);
    }
    throw new Error(`cannot open ${shown} (errno ${code}).`);
  }
  try {
    const info = statOf(fd, "", AT_EMPTY_PATH);
    if (!info || info.type !== "dir") {
      throw new UserFileRefused(`${shown} is not a directory.`);
    }
    if (info.uid !== uid) {
      throw new UserFileRefused(`${shown} is not owned by uid ${uid}.`);
    }
  } catch (error) {
    lib().close(fd);
    throw error;
  }
  return fd;
}

/** Reads a regular file owned by `uid` from `dirfd`, within `maxBytes`. */
function readOwnedAt(
  dirfd: number,
  name: string,
  uid: number,
  maxBytes: number,
  shown: string,
): Uint8Array {
  const fd = lib().openat(
    dirfd,
    cString(name),
    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
    0,
  );
  if (fd < 0) {
    const code = errno();
    if (code === ENOENT || code === ENOTDIR) throw notFound(shown);
    if (code === ELOOP) {
      throw new UserFileRefused(`${shown} is a symlink, not a regular file.`);
    }
    throw new UserFileRefused(
      `${shown} cannot be opened without blocking (errno ${code}); it is not a regular file.`,
    );
  }
  try {
    const info = statOf(fd, "", AT_EMPTY_PATH);
    if (!info || info.type !== "file") {
      throw new UserFileRefused(`${shown} is not a regular file.`);
    }
    if (info.uid !== uid) {
      throw new UserFileRefused(`${shown} is not owned by uid ${uid}.`);
    }
    if (info.size > maxBytes) {
      throw new UserFileRefused(`${shown} is larger than ${maxBytes} bytes.`);
    }
    // One byte more than allowed, to notice a file that grew meanwhile.
    const data = new Uint8Array(Math.min(info.size, maxBytes) + 1);
    let read = 0;
    while (read < data.length) {
      const n = Number(
        lib().read(fd, data.subarray(read), BigInt(data.length - read)),
      );
      if (n < 0) throw new Error(`cannot read ${shown} (errno ${errno()}).`);
      if (n === 0) break;
      read += n;
    }
    if (read > maxBytes) {
      throw new UserFileRefused(`${shown} is larger than ${maxBytes} bytes.`);
    }
    return data.subarray(0, read);
  } finally {
    lib().close(fd);
  }
}

/** One entry of an {@link OwnedDir} listing. */
export interface OwnedEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
}

/**
 * A directory inside a user's home, reached from the home one component at
 * a time without following symlinks, every component owned by the user.
 * Close it when done.
 */
export class OwnedDir {
  #fd: number;
  /** The path it was reached by (for messages only; never re-opened). */
  readonly path: string;
  /** The owner every entry used must have. */
  readonly uid: number;

  private constructor(fd: number, path: string, uid: number) {
    this.#fd = fd;
    this.path = path;
    this.uid = uid;
  }

  /**
   * Opens `home/relative` (relative: `/`-separated names, may be empty).
   * The home itself comes from passwd or the agent's configuration and may
   * be reached through symlinks; it must be a directory owned by `uid`.
   * Throws `Deno.errors.NotFound` when a component is missing and
   * {@link UserFileRefused} when one is not an owned directory.
   */
  static open(home: string, uid: number, relative = ""): OwnedDir {
    if (!home.startsWith("/")) {
      throw new UserFileRefused(`${home} is not an absolute home path.`);
    }
    const names = relative.split("/").filter((p) => p !== "");
    names.forEach(checkName);
    // A FUSE mount at any step is also at or above the last one, so one
    // look at the mount table, before opening anything, covers them all.
    const target = [home, ...names].join("/");
    if (onFuse(target)) {
      throw new UserFileRefused(`${target} is on a FUSE filesystem; skipped.`);
    }
    let fd = openOwnedDirAt(AT_FDCWD, home, uid, home, true);
    let path = home;
    try {
      for (const name of names) {
        path = `${path}/${name}`;
        const next = openOwnedDirAt(fd, name, uid, path);
        lib().close(fd);
        fd = next;
      }
    } catch (error) {
      lib().close(fd);
      throw error;
    }
    return new OwnedDir(fd, path, uid);
  }

  /** Opens a subdirectory by name, with the same rules. */
  dir(name: string): OwnedDir {
    checkName(name);
    const path = `${this.path}/${name}`;
    if (onFuse(path)) {
      throw new UserFileRefused(`${path} is on a FUSE filesystem; skipped.`);
    }
    return new OwnedDir(
      openOwnedDirAt(this.#fd, name, this.uid, path),
      path,
      this.uid,
    );
  }

  /** The entries of this directory (at most `limit`). */
  list(limit = 100_000): OwnedEntry[] {
    const entries: OwnedEntry[] = [];
    // The descriptor's own /proc link names exactly the opened directory.
    for (const entry of Deno.readDirSync(`/proc/self/fd/${this.#fd}`)) {
      entries.push({
        name: entry.name,
        isFile: entry.isFile,
        isDirectory: entry.isDirectory,
      });
      if (entries.length >= limit) break;
    }
    return entries;
  }

  /** True when `name` exists here (as anything; symlinks not followed). */
  has(name: string): boolean {
    checkName(name);
    return statOf(this.#fd, name, AT_SYMLINK_NOFOLLOW) !== null;
  }

  /** Reads `name`: a regular file owned by the user, within `maxBytes`. */
  readFile(name: string, maxBytes: number): Uint8Array {
    checkName(name);
    return readOwnedAt(
      this.#fd,
      name,
      this.uid,
      maxBytes,
      `${this.path}/${name}`,
    );
  }

  /** {@link readFile} parsed as JSON (256 KiB by default). */
  readJson(name: string, maxBytes = 256 * 1024): unknown {
    return JSON.parse(new TextDecoder().decode(this.readFile(name, maxBytes)));
  }

  /**
   * Removes `name` when it is a regular file owned by the user; reports
   * whether it removed it. Anything else is left alone and refused.
   */
  removeFile(name: string): boolean {
    checkName(name);
    const info = statOf(this.#fd, name, AT_SYMLINK_NOFOLLOW);
    if (!info) return false;
    if (info.type !== "file" || info.uid !== this.uid) {
      throw new UserFileRefused(
        `${this.path}/${name} is not a regular file owned by uid ${this.uid}; left in place.`,
      );
    }
    // unlinkat only ever touches this directory, which the user owns.
    if (lib().unlinkat(this.#fd, cString(name), 0) !== 0) {
      const code = errno();
      if (code === ENOENT) return false;
      throw new Error(`cannot remove ${this.path}/${name} (errno ${code}).`);
    }
    return true;
  }

  /** Removes the subdirectory `name` if it is empty; reports whether it did. */
  removeEmptyDir(name: string): boolean {
    checkName(name);
    const info = statOf(this.#fd, name, AT_SYMLINK_NOFOLLOW);
    if (!info || info.type !== "dir" || info.uid !== this.uid) return false;
    return lib().unlinkat(this.#fd, cString(name), AT_REMOVEDIR) === 0;
  }

  /** Releases the descriptor. */
  close(): void {
    if (this.#fd >= 0) lib().close(this.#fd);
    this.#fd = -1;
  }
}

/**
 * Runs `fn` on `home/relative` opened as an {@link OwnedDir}, closing it
 * afterwards. Returns `fallback` when the directory does not exist.
 */
export function withOwnedDir<T>(
  home: string,
  uid: number,
  relative: string,
  fn: (dir: OwnedDir) => T,
  fallback: T,
): T {
  let dir: OwnedDir;
  try {
    dir = OwnedDir.open(home, uid, relative);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return fallback;
    throw error;
  }
  try {
    return fn(dir);
  } finally {
    dir.close();
  }
}

/**
 * Reads a file that belongs to user `uid` by its full path: the final
 * component must be a regular file owned by `uid` (opened with
 * `O_NOFOLLOW|O_NONBLOCK`, checked on the descriptor). Prefer
 * {@link OwnedDir} where the directories above it are the user's too.
 */
export function readOwnedFile(
  path: string,
  uid: number,
  maxBytes: number,
): Uint8Array {
  const slash = path.lastIndexOf("/");
  if (slash < 0) throw new UserFileRefused(`${path} is not an absolute path.`);
  if (onFuse(path)) {
    throw new UserFileRefused(`${path} is on a FUSE filesystem; skipped.`);
  }
  const name = path.slice(slash + 1);
  checkName(name);
  const parent = path.slice(0, slash) || "/";
  const dirfd = lib().openat(
    AT_FDCWD,
    cString(parent),
    O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC,
    0,
  );
  if (dirfd < 0) {
    const code = errno();
    if (code === ENOENT || code === ENOTDIR) throw notFound(path);
    throw new Error(`cannot open ${parent} (errno ${code}).`);
  }
  try {
    return readOwnedAt(dirfd, name, uid, maxBytes, path);
  } finally {
    lib().close(dirfd);
  }
}

/** {@link readOwnedFile}, parsed as JSON (256 KiB by default). */
export function readOwnedJson(
  path: string,
  uid: number,
  maxBytes = 256 * 1024,
): unknown {
  return JSON.parse(
    new TextDecoder().decode(readOwnedFile(path, uid, maxBytes)),
  );
}
