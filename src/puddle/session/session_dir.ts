/**
 * Who may be trusted as the session helper: the checks every client makes
 * on the socket's directory and on the process serving it, and the creation
 * of that directory by `unlock`.
 *
 * A session directory is usable only when it is a real directory (not a
 * symbolic link), owned by the expected user, with mode 0700. Together with
 * the kernel's word on the peer (SO_PEERCRED) this keeps a user from ever
 * talking to a helper that someone else planted, for instance by creating
 * `/tmp/vigo-<uid>` before its owner did.
 *
 * @module
 */

import { type SessionDirSource, userPaths } from "../../platform/paths.ts";
import { userByUid } from "../../platform/users.ts";
import { SessionError } from "./errors.ts";

/** What makes a session directory unusable. */
export type SessionDirProblem =
  | { kind: "missing" }
  | { kind: "symlink"; uid: number; target: string }
  | { kind: "not-directory"; uid: number }
  | { kind: "foreign-owner"; uid: number }
  | { kind: "mode"; mode: number };

/** The message of a locked puddle (no directory, no socket, nobody listening). */
export const LOCKED_MESSAGE =
  "the puddle is locked (no session helper is running).";

const PRIVATE_HINT_COMMAND = "export XDG_RUNTIME_DIR=$(mktemp -d)";

/** Looks at `dir` without following a symlink; null when it is fit for use. */
export function inspectSessionDir(
  dir: string,
  owner: number,
): SessionDirProblem | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.NotADirectory
    ) {
      return { kind: "missing" };
    }
    throw error;
  }
  const uid = info.uid ?? -1;
  if (info.isSymlink) {
    let target = "?";
    try {
      target = Deno.readLinkSync(dir);
    } catch {
      // Unreadable; the owner is what matters.
    }
    return { kind: "symlink", uid, target };
  }
  if (!info.isDirectory) return { kind: "not-directory", uid };
  if (uid !== owner) return { kind: "foreign-owner", uid };
  // Permission bits only: setgid (inherited from a parent) lets no one in.
  const mode = (info.mode ?? 0) & 0o777;
  if (mode !== 0o700) return { kind: "mode", mode };
  return null;
}

function nameOf(uid: number): string | undefined {
  try {
    return userByUid(uid)?.name;
  } catch {
    // No passwd access (the session helper's face): the number will do.
    return undefined;
  }
}

/** `name (uid N)`, or `uid N` where the passwd database cannot say. */
export function describeUid(uid: number): string {
  const name = nameOf(uid);
  return name === undefined ? `uid ${uid}` : `${name} (uid ${uid})`;
}

function describeExpected(owner: number): string {
  if (owner !== (Deno.uid() ?? 0)) return describeUid(owner);
  const name = nameOf(owner);
  return name === undefined
    ? `you (uid ${owner})`
    : `you (${name}, uid ${owner})`;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

/** Which rule chose `dir`, when it is the caller's own session directory. */
function sourceOf(dir: string): SessionDirSource | undefined {
  try {
    const paths = userPaths();
    return paths.sessionDir === dir ? paths.sessionDirSource : undefined;
  } catch {
    return undefined;
  }
}

/** The way out for a directory someone else controls. */
function foreignHint(dir: string, source: SessionDirSource | undefined) {
  switch (source) {
    case "home":
      return `${dir} is inside your own puddle directory, so only root can have put it there; remove it and run \`vigo swarm puddle unlock\` again.`;
    case "runtime":
      return `XDG_RUNTIME_DIR must name a directory only you can write; point it at one, e.g. \`${PRIVATE_HINT_COMMAND}\`, and run \`vigo swarm puddle unlock\` again.`;
    default:
      return `another user may have created it to catch your session. Use a private directory instead: \`${PRIVATE_HINT_COMMAND}\`, then \`vigo swarm puddle unlock\` (in every shell that uses vigo), and ask an administrator to remove ${dir}.`;
  }
}

/** Turns a problem into the error the user sees. */
export function sessionDirError(
  dir: string,
  owner: number,
  problem: SessionDirProblem,
): SessionError {
  const source = sourceOf(dir);
  switch (problem.kind) {
    case "missing":
      return new SessionError(LOCKED_MESSAGE, true);
    case "symlink":
      return new SessionError(
        `the session directory ${dir} is a symbolic link (to ${problem.target}) owned by ${
          describeUid(problem.uid)
        }; vigo will not follow it.`,
        false,
        foreignHint(dir, source),
      );
    case "not-directory":
      return new SessionError(
        `the session directory ${dir} is not a directory (it is owned by ${
          describeUid(problem.uid)
        }); vigo will not use it.`,
        false,
        problem.uid === owner
          ? `move ${dir} aside and run \`vigo swarm puddle unlock\` again.`
          : foreignHint(dir, source),
      );
    case "foreign-owner":
      return new SessionError(
        `the session directory ${dir} belongs to ${
          describeUid(problem.uid)
        }, not to ${
          describeExpected(owner)
        }; vigo will not use a session there.`,
        false,
        foreignHint(dir, source),
      );
    case "mode":
      return new SessionError(
        `the session directory ${dir} has mode ${
          octal(problem.mode)
        }, not 0700; vigo will not use a session that others could reach.`,
        false,
        `run \`chmod 700 ${dir}\` and try again.`,
      );
  }
}

/**
 * Refuses a session directory that is missing (as a locked puddle), a
 * symbolic link, not a directory, not owned by `owner`, or not mode 0700.
 */
export function checkSessionDir(dir: string, owner: number): void {
  const problem = inspectSessionDir(dir, owner);
  if (problem) throw sessionDirError(dir, owner, problem);
}

/**
 * Refuses a socket whose listening process does not run as `owner`, as the
 * kernel reports it (SO_PEERCRED).
 */
export function checkSessionPeer(
  socketPath: string,
  owner: number,
  peer: { uid: number; pid: number },
): void {
  if (peer.uid === owner) return;
  throw new SessionError(
    `the session socket ${socketPath} is served by a process of ${
      describeUid(peer.uid)
    } (pid ${peer.pid}), not of ${
      describeExpected(owner)
    }; vigo will not use it.`,
    false,
    foreignHint(socketPath.slice(0, socketPath.lastIndexOf("/")), undefined),
  );
}

/**
 * Creates the caller's session directory (mode 0700) or makes sure the
 * existing one is theirs: a wider mode on their own directory is tightened;
 * a symlink, a non-directory or another owner's directory is refused.
 */
export function ensureSessionDir(dir: string): void {
  const owner = Deno.uid() ?? 0;
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      const source = sourceOf(dir);
      throw new SessionError(
        `cannot create the session directory ${dir}: its parent directory does not exist.`,
        false,
        source === "runtime"
          ? `XDG_RUNTIME_DIR names a missing directory; create it (mode 0700) or unset it.`
          : source === "home"
          ? "run `vigo swarm puddle init` first."
          : undefined,
      );
    }
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const problem = inspectSessionDir(dir, owner);
  if (problem === null) return;
  if (problem.kind === "mode") {
    Deno.chmodSync(dir, 0o700);
    checkSessionDir(dir, owner);
    return;
  }
  throw sessionDirError(dir, owner, problem);
}
