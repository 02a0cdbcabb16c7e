/**
 * Tombstones: the current founder's signed word that a project is closed
 * for good, naming the project it was re-founded as (its successor), if
 * any. Every envoy that holds a tombstone that verifies refuses git for the
 * project, and tells whoever asks where the project went.
 *
 * Body (RFC 8785):
 * `{"v":1,"kind":"gitback-tombstone","project_id","handle","genesis":"ed25519:<hex>","signer":"ed25519:<hex>","successor":"<64 hex>"|null,"at"}`,
 * signed by `signer` under `vigo-swarm/v1/gitback-tombstone`. Wire form:
 * `{"body": "<base64 of the body>", "sig": "<128 hex>"}`, at most
 * {@link MAX_TOMBSTONE_BYTES} characters of base64 body.
 *
 * It verifies for a project, with the founder delegations the verifier
 * holds (delegations.ts), when `genesis` with `handle` makes the project
 * id, the delegations walk from `genesis`, and `signer` is the founder at
 * the end of that walk (the current founder) and signed it. A retired
 * founder key cannot tombstone, nor can an admin who is not the founder.
 * Like a delegation, it is judged without the clock (`at` is for people).
 *
 * This module is the one owner of the format and of the user's queue
 * `~/.vigo-gitback/<project_id>/tombstone.pending`; the envoy's record of
 * tombstones is `agent/tombstone_store.ts`.
 *
 * @module
 */

import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  refusalMessages,
  type SignedObject,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import {
  readFileBounded,
  removeIfExists,
  writeTextAtomic,
} from "../platform/fs.ts";
import {
  DelegationError,
  type FounderPath,
  verifyDelegations,
} from "./delegations.ts";
import { HANDLE_PATTERN, projectIdSync } from "./project_id.ts";

/** Most characters of a tombstone's base64 body (one is about 600). */
export const MAX_TOMBSTONE_BYTES = 2048;
/** Most bytes of a stored tombstone file, or of one in a queue. */
export const MAX_TOMBSTONE_FILE_BYTES = 4096;
/** The user's queue of signed tombstones, in a project's state directory. */
export const TOMBSTONE_PENDING = "tombstone.pending";
/** Most tombstones one queue file holds; the sweep takes no more. */
export const MAX_QUEUED_TOMBSTONES = 8;
/** Most bytes of a queue file. */
export const MAX_TOMBSTONE_PENDING_BYTES = MAX_QUEUED_TOMBSTONES *
  MAX_TOMBSTONE_FILE_BYTES;

/** A tombstone as it travels and is stored. */
export type TombstoneWire = SignedObject;

/** The signed body. */
export interface TombstoneBody {
  v: 1;
  kind: "gitback-tombstone";
  project_id: string;
  /** The project's handle; with `genesis` it makes `project_id`. */
  handle: string;
  /** The genesis founder's key, the one inside the project id. */
  genesis: string;
  /** The current founder's key, `ed25519:<hex>`; the signer. */
  signer: string;
  /** The project it was re-founded as, or null when there is none. */
  successor: string | null;
  /** When it was signed, Unix seconds (informational; decides nothing). */
  at: number;
}

/** A tombstone decoded and checked for form (not yet for signature). */
export interface DecodedTombstone {
  wire: TombstoneWire;
  bytes: Uint8Array;
  body: TombstoneBody;
  /** SHA-256 of the body bytes. */
  id: string;
}

/** A tombstone that verified. */
export interface VerifiedTombstone extends DecodedTombstone {
  /** The founder keys the delegations made, genesis first. */
  founderPath: FounderPath;
}

/** Why a tombstone was refused. */
export type TombstoneErrorCode =
  | "malformed"
  | "wrong-project"
  | "not-anchored"
  | "bad-delegation"
  | "retired-founder"
  | "not-founder"
  | "bad-signature";

/** A refused tombstone. */
export class TombstoneError extends Error {
  readonly code: TombstoneErrorCode;
  constructor(code: TombstoneErrorCode, message: string) {
    super(message);
    this.name = "TombstoneError";
    this.code = code;
  }
}

const KEYS = [
  "at",
  "genesis",
  "handle",
  "kind",
  "project_id",
  "signer",
  "successor",
  "v",
].join(",");
const HEX64 = /^[0-9a-f]{64}$/;
const PUBKEY = /^ed25519:[0-9a-f]{64}$/;
/** The last second a JavaScript Date can show. */
const MAX_TIME_S = 8_640_000_000_000;

function malformed(message: string): never {
  throw new TombstoneError("malformed", message);
}

function checkSuccessor(successor: unknown, projectId: unknown): void {
  if (successor === null) return;
  if (typeof successor !== "string" || !HEX64.test(successor)) {
    malformed("a tombstone's successor must be a 64-hex project id or null.");
  }
  if (successor === projectId) {
    malformed("a project cannot be re-founded as itself.");
  }
}

function checkBody(b: Record<string, unknown>): TombstoneBody {
  const keys = Object.keys(b).sort().join(",");
  if (keys !== KEYS) malformed(`a tombstone body has fields ${keys}.`);
  if (b.v !== 1 || b.kind !== "gitback-tombstone") {
    malformed("a tombstone body has an unknown version or kind.");
  }
  if (typeof b.project_id !== "string" || !HEX64.test(b.project_id)) {
    malformed("a tombstone has a bad project_id.");
  }
  if (typeof b.handle !== "string" || !HANDLE_PATTERN.test(b.handle)) {
    malformed("a tombstone has a bad handle.");
  }
  if (typeof b.genesis !== "string" || !PUBKEY.test(b.genesis)) {
    malformed("a tombstone has a bad genesis key.");
  }
  if (typeof b.signer !== "string" || !PUBKEY.test(b.signer)) {
    malformed("a tombstone has a bad signer key.");
  }
  checkSuccessor(b.successor, b.project_id);
  if (
    !Number.isSafeInteger(b.at) || (b.at as number) < 0 ||
    (b.at as number) > MAX_TIME_S
  ) {
    malformed("a tombstone has a bad time.");
  }
  return b as unknown as TombstoneBody;
}

const DECODE_MESSAGES = refusalMessages("tombstone", MAX_TOMBSTONE_BYTES);

/**
 * Decodes a wire tombstone and checks its form: exactly `{body, sig}`
 * within {@link MAX_TOMBSTONE_BYTES}, a canonical body with exactly the
 * fields above. Throws a {@link TombstoneError} (`malformed`).
 */
export function decodeTombstone(wire: unknown): DecodedTombstone {
  const decoded = decodeSigned(wire, {
    maxBodyChars: MAX_TOMBSTONE_BYTES,
    check: checkBody,
    refuse: (reason) => malformed(DECODE_MESSAGES[reason]),
  });
  return {
    wire: decoded.wire,
    bytes: decoded.bytes,
    body: decoded.body,
    id: decoded.id,
  };
}

/**
 * The key a tombstone must name as `genesis` to be for `projectId`, when
 * its `genesis` and `handle` make that id; null otherwise.
 */
export function tombstoneGenesis(
  decoded: DecodedTombstone,
  projectId: string,
): string | null {
  const { genesis, handle } = decoded.body;
  return projectIdSync(parsePublicKey(genesis), handle) === projectId
    ? genesis
    : null;
}

/**
 * Verifies a tombstone for `projectId` with the project's founder
 * `delegations` (first rotation first; none when the genesis founder never
 * rotated): form, project, `genesis` and `handle` making the project id,
 * the delegations walking from `genesis`, `signer` being the current
 * founder, and its signature. Synchronous, like
 * {@link verifyDelegations}. Throws a {@link TombstoneError} saying what
 * failed.
 */
export function verifyTombstone(
  wire: unknown,
  options: { projectId: string; delegations?: readonly unknown[] },
): VerifiedTombstone {
  const decoded = decodeTombstone(wire);
  const b = decoded.body;
  if (b.project_id !== options.projectId) {
    throw new TombstoneError(
      "wrong-project",
      `the tombstone is for project ${b.project_id}, not ${options.projectId}.`,
    );
  }
  if (!tombstoneGenesis(decoded, options.projectId)) {
    throw new TombstoneError(
      "not-anchored",
      `the tombstone's genesis key and handle do not make project ${options.projectId}.`,
    );
  }
  let founderPath: FounderPath;
  try {
    founderPath = verifyDelegations(options.delegations ?? [], {
      projectId: options.projectId,
      genesis: b.genesis,
    });
  } catch (error) {
    if (!(error instanceof DelegationError)) throw error;
    throw new TombstoneError(
      "bad-delegation",
      `the project's founder delegations do not verify: ${error.message}`,
    );
  }
  if (b.signer !== founderPath.current) {
    throw founderPath.isRetired(b.signer)
      ? new TombstoneError(
        "retired-founder",
        `the tombstone is signed by ${b.signer}, a founder key retired by delegation ${
          founderPath.retiredAt(b.signer)
        }; only the current founder ${founderPath.current} can tombstone the project.`,
      )
      : new TombstoneError(
        "not-founder",
        `the tombstone is signed by ${b.signer}, who is not the project's founder; only the current founder ${founderPath.current} can tombstone it.`,
      );
  }
  if (
    !verifySigned(
      parsePublicKey(b.signer),
      SIGN_CONTEXTS.gitbackTombstone,
      decoded.bytes,
      decoded.wire.sig,
    )
  ) {
    throw new TombstoneError(
      "bad-signature",
      `the tombstone is not signed by ${b.signer}.`,
    );
  }
  return { ...decoded, founderPath };
}

/**
 * The verified tombstone, or null when `wire` is absent or does not
 * verify ({@link verifyTombstone}).
 */
export function checkTombstone(
  wire: unknown,
  options: { projectId: string; delegations?: readonly unknown[] },
): VerifiedTombstone | null {
  if (wire === null || wire === undefined) return null;
  try {
    return verifyTombstone(wire, options);
  } catch {
    return null;
  }
}

/**
 * Signs the tombstone of `projectId` (`genesis` with `handle` must make
 * it), naming `successor` (a project id, or null). `signer` must be the
 * current founder by `delegations` (none when the founder never
 * rotated): anything else is refused here rather than by every envoy.
 */
export async function signTombstone(
  signer: Signer,
  fields: {
    projectId: string;
    handle: string;
    /** The genesis founder's key: raw, or `ed25519:<hex>`. */
    genesis: Uint8Array | string;
    successor: string | null;
    now?: number;
    /** The founder's delegations, first rotation first. */
    delegations?: readonly unknown[];
  },
): Promise<TombstoneWire> {
  const genesis = formatPublicKey(
    typeof fields.genesis === "string"
      ? parsePublicKey(fields.genesis)
      : fields.genesis,
  );
  const body: TombstoneBody = {
    v: 1,
    kind: "gitback-tombstone",
    project_id: fields.projectId,
    handle: fields.handle,
    genesis,
    signer: formatPublicKey(signer.publicKey),
    successor: fields.successor,
    at: fields.now ?? Math.floor(Date.now() / 1000),
  };
  checkBody(body as unknown as Record<string, unknown>);
  if (
    projectIdSync(parsePublicKey(genesis), fields.handle) !== body.project_id
  ) {
    throw new TombstoneError(
      "not-anchored",
      `the genesis key ${genesis} and handle ${
        JSON.stringify(fields.handle)
      } do not make project ${fields.projectId}.`,
    );
  }
  const wire = await signObject(signer, SIGN_CONTEXTS.gitbackTombstone, body);
  verifyTombstone(wire, {
    projectId: fields.projectId,
    delegations: fields.delegations,
  });
  return wire;
}

/**
 * The sentence every refusal of a tombstoned project uses:
 * `project <id> is tombstoned (re-founded as <successor>); use
 * gitback://<successor>/<handle>.`, or without a successor, that nothing
 * replaces it.
 */
export function tombstonedMessage(
  body: Pick<TombstoneBody, "project_id" | "handle" | "successor">,
): string {
  return body.successor
    ? `project ${body.project_id} is tombstoned (re-founded as ${body.successor}); use gitback://${body.successor}/${body.handle}.`
    : `project ${body.project_id} is tombstoned by its founder and was not re-founded; nothing can be fetched from or pushed to it any more.`;
}

/**
 * Appends a signed tombstone to the user's queue
 * `<gitbackDir>/<projectId>/tombstone.pending` (a JSON array, 0600,
 * written atomically) for the agent's sweep, which verifies and stores it
 * root-side and removes the file. Only a tombstone of the right form for
 * `projectId` is queued, at most {@link MAX_QUEUED_TOMBSTONES}; the file's
 * path is returned.
 *
 * (The `*.pending` helpers are moving to one module; until then this is
 * the tombstone queue's own.)
 */
export function queueTombstone(
  gitbackDir: string,
  projectId: string,
  wire: TombstoneWire,
): string {
  if (!HEX64.test(projectId)) {
    throw new TombstoneError(
      "malformed",
      "a project id must be 64 hex digits.",
    );
  }
  const decoded = decodeTombstone(wire);
  if (decoded.body.project_id !== projectId) {
    throw new TombstoneError(
      "wrong-project",
      `the tombstone is for project ${decoded.body.project_id}, not ${projectId}.`,
    );
  }
  const path = `${gitbackDir}/${projectId}/${TOMBSTONE_PENDING}`;
  let list: unknown[] = [];
  try {
    const value = JSON.parse(
      new TextDecoder().decode(
        readFileBounded(path, MAX_TOMBSTONE_PENDING_BYTES),
      ),
    );
    if (Array.isArray(value)) list = value;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      // A damaged queue is replaced: the sweep would refuse it anyway.
      removeIfExists(path);
    }
  }
  const { body, sig } = decoded.wire;
  if (list.some((w) => (w as TombstoneWire)?.sig === sig)) return path;
  if (list.length >= MAX_QUEUED_TOMBSTONES) {
    throw new Error(
      `${path} already holds ${list.length} tombstones; wait for the agent's sweep to take them, then queue again.`,
    );
  }
  list.push({ body, sig });
  writeTextAtomic(path, JSON.stringify(list, null, 2) + "\n", 0o600);
  return path;
}
