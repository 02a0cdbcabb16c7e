/**
 * Every filesystem root the program touches, resolved in one place.
 *
 * This is the only module that reads environment variables for paths:
 * `VIGO_ROOT` moves all system state (so several envoys fit on one machine),
 * `HOME`, `XDG_RUNTIME_DIR` and `TMPDIR` locate the calling user's state.
 *
 * @module
 */

/** Root-owned system directories of one envoy. */
export interface SystemPaths {
  /** The prefix every system path hangs from (`/` in production). */
  root: string;
  /** Configuration: `agent.yaml`, TLS material. */
  etc: string;
  /** Persistent agent state. */
  varLib: string;
  /** Runtime sockets and pid files. */
  varRun: string;
}

/** Paths that belong to one Unix user. */
export interface UserPaths {
  /** The user's home directory. */
  home: string;
  /** `~/.vigo-puddle`: identity and session state. */
  puddleDir: string;
  /** `~/.vigo-gitback`: per-project state. */
  gitbackDir: string;
  /** Directory holding the session helper's socket and log. */
  sessionDir: string;
  /** Which rule chose {@link sessionDir} (see {@link userPaths}). */
  sessionDirSource: SessionDirSource;
  /** True when {@link sessionDir} is the shared-directory fallback under /tmp. */
  sessionDirIsFallback: boolean;
  /** The session helper's Unix socket. */
  sessionSocket: string;
}

/**
 * Where the session socket directory came from: `$XDG_RUNTIME_DIR/vigo`
 * (`runtime`), `~/.vigo-puddle/run` (`home`), `/tmp/vigo-<uid>` (`tmp`) or
 * macOS's per-user `$TMPDIR` (`darwin`).
 */
export type SessionDirSource = "runtime" | "home" | "tmp" | "darwin";

/**
 * The longest Unix socket path, in bytes: `sun_path` holds 108 bytes with
 * the terminating NUL.
 */
export const MAX_SOCKET_PATH_BYTES = 107;

/** File name of the session helper's socket inside the session directory. */
export const SESSION_SOCKET_NAME = "puddle.sock";

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/{2,}/g, "/");
}

/** Builds the system paths from `VIGO_ROOT` (default `/`). */
export function systemPaths(): SystemPaths {
  return systemPathsUnder(Deno.env.get("VIGO_ROOT") || "/");
}

/** The system paths of a tree rooted at `root` (a test fleet's envoy). */
export function systemPathsUnder(root: string): SystemPaths {
  return {
    root,
    etc: join(root, "etc/vigo"),
    varLib: join(root, "var/lib/vigo"),
    varRun: join(root, "var/run/vigo"),
  };
}

/**
 * Builds the calling user's paths from `HOME` and `XDG_RUNTIME_DIR`.
 *
 * The session socket directory is chosen by a fixed rule that depends only
 * on these variables, never on what exists on disk (so that nobody else can
 * steer it), and `scripts/vigo` computes the same rule for Deno's
 * permissions:
 *
 * 1. `XDG_RUNTIME_DIR` set (Linux): `$XDG_RUNTIME_DIR/vigo`.
 * 2. Otherwise `$HOME/.vigo-puddle/run`, when the socket path
 *    `$HOME/.vigo-puddle/run/puddle.sock` fits a Unix socket address
 *    ({@link MAX_SOCKET_PATH_BYTES} bytes of UTF-8). Other users cannot
 *    create anything under the user's home.
 * 3. Otherwise `/tmp/vigo-<uid>`, which another user could create first;
 *    the session client refuses it unless it is the caller's own 0700
 *    directory.
 *
 * On macOS it is `$TMPDIR/lockbox-<uid>/` (`$TMPDIR` is per-user there).
 * Paths are joined with repeated slashes collapsed.
 */
export function userPaths(uid: number = Deno.uid() ?? 0): UserPaths {
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new Error(
      "HOME is not set, so the puddle directory cannot be found; set HOME and retry.",
    );
  }
  return {
    home,
    puddleDir: join(home, ".vigo-puddle"),
    gitbackDir: join(home, ".vigo-gitback"),
    ...sessionPathsFor({
      home,
      runtime: Deno.env.get("XDG_RUNTIME_DIR"),
      uid,
      os: Deno.build.os,
      tmpdir: Deno.build.os === "darwin" ? Deno.env.get("TMPDIR") : undefined,
    }),
  };
}

/** What decides where a user's session socket lives. */
export interface SessionPathInputs {
  /** `HOME`. */
  home: string;
  /** `XDG_RUNTIME_DIR`, when set. */
  runtime?: string;
  /** The user's uid. */
  uid: number;
  /** `Deno.build.os`; Linux unless given. */
  os?: typeof Deno.build.os;
  /** `TMPDIR` (macOS only). */
  tmpdir?: string;
}

/**
 * The session directory rule of {@link userPaths}, from explicit inputs (for
 * code and tests that compute another user's paths). Pure: it looks at
 * nothing on disk.
 */
export function sessionPathsFor(
  inputs: SessionPathInputs,
): Pick<
  UserPaths,
  "sessionDir" | "sessionDirSource" | "sessionDirIsFallback" | "sessionSocket"
> {
  let sessionDir: string;
  let sessionDirSource: SessionDirSource;
  const inHome = join(inputs.home, ".vigo-puddle", "run");
  if (inputs.os === "darwin") {
    sessionDir = join(inputs.tmpdir || "/tmp", `lockbox-${inputs.uid}`);
    sessionDirSource = "darwin";
  } else if (inputs.runtime) {
    sessionDir = join(inputs.runtime, "vigo");
    sessionDirSource = "runtime";
  } else if (socketPathFits(join(inHome, SESSION_SOCKET_NAME))) {
    sessionDir = inHome;
    sessionDirSource = "home";
  } else {
    sessionDir = `/tmp/vigo-${inputs.uid}`;
    sessionDirSource = "tmp";
  }
  return {
    sessionDir,
    sessionDirSource,
    sessionDirIsFallback: sessionDirSource === "tmp" ||
      sessionDirSource === "darwin",
    sessionSocket: join(sessionDir, SESSION_SOCKET_NAME),
  };
}

/** True when `path` fits a Unix socket address (UTF-8 bytes, without NUL). */
export function socketPathFits(path: string): boolean {
  return new TextEncoder().encode(path).length <= MAX_SOCKET_PATH_BYTES;
}

/**
 * The command that re-enters this program, for spawning the session helper.
 *
 * The development launcher exports `VIGO_LAUNCHER` (its own path); a compiled
 * binary is its own executable.
 */
export function selfCommand(): string {
  return Deno.env.get("VIGO_LAUNCHER") || Deno.execPath();
}
