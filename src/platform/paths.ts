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
  /** True when {@link sessionDir} is the documented fallback under /tmp. */
  sessionDirIsFallback: boolean;
  /** The session helper's Unix socket. */
  sessionSocket: string;
}

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/{2,}/g, "/");
}

/** Builds the system paths from `VIGO_ROOT` (default `/`). */
export function systemPaths(): SystemPaths {
  const root = Deno.env.get("VIGO_ROOT") || "/";
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
 * The session socket lives in `$XDG_RUNTIME_DIR/vigo/` on Linux. Without
 * `XDG_RUNTIME_DIR` it falls back to `/tmp/vigo-<uid>/` (created 0700 and
 * checked for ownership before use); on macOS it is `$TMPDIR/lockbox-<uid>/`.
 */
export function userPaths(uid: number = Deno.uid() ?? 0): UserPaths {
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new Error(
      "HOME is not set, so the puddle directory cannot be found; set HOME and retry.",
    );
  }
  let sessionDir: string;
  let sessionDirIsFallback = false;
  const runtime = Deno.env.get("XDG_RUNTIME_DIR");
  if (Deno.build.os === "darwin") {
    sessionDir = join(Deno.env.get("TMPDIR") || "/tmp", `lockbox-${uid}`);
    sessionDirIsFallback = true;
  } else if (runtime) {
    sessionDir = join(runtime, "vigo");
  } else {
    sessionDir = `/tmp/vigo-${uid}`;
    sessionDirIsFallback = true;
  }
  return {
    home,
    puddleDir: join(home, ".vigo-puddle"),
    gitbackDir: join(home, ".vigo-gitback"),
    sessionDir,
    sessionDirIsFallback,
    sessionSocket: join(sessionDir, "puddle.sock"),
  };
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
