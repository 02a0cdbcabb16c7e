/**
 * Friendly names: a puddle's signed claim to a human name
 * (`~/.vigo-puddle/name-claim.json`, 0644, public by construction), and
 * resolving `gitback://<name>/<handle>` through the fleet's name map.
 *
 * Claim body (RFC 8785):
 * `{"v":1,"kind":"puddle-name-claim","name","key":"ed25519:<hex>","at"}`,
 * signed by `key` under `vigo-swarm/v1/puddle-name-claim`; wire form
 * `{"body","sig"}`.
 *
 * The name map (`var/lib/vigo/swarm/puddle/names.json`, written by the
 * agent from the fleet server): `{"version":1,"names":{"<name>":["ed25519:<hex>",…]}}`.
 * A name with one key resolves to it; with several it is ambiguous and
 * resolves to nothing (the hex form is needed). A name is a hint, never a
 * trust anchor: the project id a URL resolves to is still verified.
 *
 * @module
 */

import { formatPublicKey, parsePublicKey } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  decodeSigned,
  type SignedObject,
  type Signer,
  signObject,
  verifySigned,
} from "../crypto/signed_object.ts";
import {
  exists,
  readFileBounded,
  removeIfExists,
  writeTextAtomic,
} from "../platform/fs.ts";
import { PuddleError } from "./identity.ts";

/** The claim file in `~/.vigo-puddle`. */
export const NAME_CLAIM_FILE = "name-claim.json";
/** Most bytes of a claim file, or of one claim's base64 body. */
export const MAX_NAME_CLAIM_BYTES = 1024;
/** Most bytes of the name map read. */
export const MAX_NAME_MAP_BYTES = 4 * 1024 * 1024;

/**
 * A name: 2 to 32 of `a-z`, `0-9` and `-`, starting with a letter and not
 * ending with `-`. Lowercase only, so that two spellings are one name; a
 * letter first, so that no name is a project id.
 */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;

/** The signed body of a claim. */
export interface NameClaimBody {
  v: 1;
  kind: "puddle-name-claim";
  name: string;
  key: string;
  at: number;
}

/** A verified claim. */
export interface NameClaim {
  name: string;
  key: string;
  wire: SignedObject;
}

/** Throws a clear error unless `name` follows {@link NAME_PATTERN}. */
export function validateName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new PuddleError(
      `${
        JSON.stringify(name)
      } is not a valid name: use 2-32 of a-z 0-9 and -, starting with a letter and not ending with -.`,
    );
  }
}

const KEYS = "at,key,kind,name,v";

function checkBody(b: Record<string, unknown>): NameClaimBody {
  if (
    Object.keys(b).sort().join(",") !== KEYS || b.v !== 1 ||
    b.kind !== "puddle-name-claim" || typeof b.name !== "string" ||
    !NAME_PATTERN.test(b.name) || typeof b.key !== "string" ||
    !/^ed25519:[0-9a-f]{64}$/.test(b.key) || !Number.isSafeInteger(b.at) ||
    (b.at as number) < 0
  ) {
    throw new PuddleError("the name claim is malformed.");
  }
  return b as unknown as NameClaimBody;
}

/** Signs `signer`'s claim to `name`. */
export async function signNameClaim(
  signer: Signer,
  name: string,
  now = Math.floor(Date.now() / 1000),
): Promise<SignedObject> {
  validateName(name);
  const body: NameClaimBody = {
    v: 1,
    kind: "puddle-name-claim",
    name,
    key: formatPublicKey(signer.publicKey),
    at: now,
  };
  return await signObject(signer, SIGN_CONTEXTS.puddleNameClaim, body);
}

/**
 * Verifies a claim: its form, its name, and the signature of the key it
 * names. Throws a PuddleError saying what failed.
 */
export function verifyNameClaim(wire: unknown): NameClaim {
  const decoded = decodeSigned(wire, {
    maxBodyChars: MAX_NAME_CLAIM_BYTES,
    check: checkBody,
    refuse: () => {
      throw new PuddleError("the name claim is not a signed object.");
    },
  });
  const { body } = decoded;
  if (
    !verifySigned(
      parsePublicKey(body.key),
      SIGN_CONTEXTS.puddleNameClaim,
      decoded.bytes,
      decoded.wire.sig,
    )
  ) {
    throw new PuddleError(
      `the claim to ${body.name} is not signed by the key it names.`,
    );
  }
  return { name: body.name, key: body.key, wire: decoded.wire };
}

/** The user's own claim, verified; null when there is none or it is bad. */
export function readNameClaim(puddleDir: string): NameClaim | null {
  const path = `${puddleDir}/${NAME_CLAIM_FILE}`;
  if (!exists(path)) return null;
  try {
    return verifyNameClaim(
      JSON.parse(
        new TextDecoder().decode(readFileBounded(path, MAX_NAME_CLAIM_BYTES)),
      ),
    );
  } catch {
    return null;
  }
}

/** Writes the user's claim (0644: public by construction). */
export function writeNameClaim(puddleDir: string, wire: SignedObject): void {
  writeTextAtomic(
    `${puddleDir}/${NAME_CLAIM_FILE}`,
    JSON.stringify(wire) + "\n",
    0o644,
  );
}

/** Removes the user's claim; true when there was one. */
export function clearNameClaim(puddleDir: string): boolean {
  return removeIfExists(`${puddleDir}/${NAME_CLAIM_FILE}`);
}

/** The fleet's name map: name → the keys that claim it. */
export type NameMap = Map<string, string[]>;

/**
 * Parses a name map document, `{"version":1,"names":{"<name>":[keys…]}}`,
 * of at most {@link MAX_NAME_MAP_BYTES}. The document itself must be
 * UTF-8 JSON with version 1 and a `names` object, else this throws a
 * sentence saying what is wrong. Within it, a name that breaks
 * {@link NAME_PATTERN}, an entry that is not a list, and keys that are
 * not `ed25519:<hex>` are left out (a map is a hint, so one bad entry does
 * not cost the rest); a key listed twice for a name counts once, in the
 * order of its first listing.
 */
export function parseNameMap(bytes: Uint8Array): NameMap {
  if (bytes.length > MAX_NAME_MAP_BYTES) {
    throw new PuddleError(
      `the name map is ${bytes.length} bytes, more than the ${MAX_NAME_MAP_BYTES} accepted.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new PuddleError("the name map is not UTF-8 JSON.");
  }
  const doc = value as { version?: unknown; names?: unknown } | null;
  if (
    typeof doc !== "object" || doc === null || Array.isArray(doc) ||
    doc.version !== 1 || typeof doc.names !== "object" ||
    doc.names === null || Array.isArray(doc.names)
  ) {
    throw new PuddleError(
      'the name map is malformed: it must be {"version":1,"names":{…}}.',
    );
  }
  const map: NameMap = new Map();
  for (const [name, keys] of Object.entries(doc.names)) {
    if (!NAME_PATTERN.test(name) || !Array.isArray(keys)) continue;
    const valid = keys.filter((k): k is string =>
      typeof k === "string" && /^ed25519:[0-9a-f]{64}$/.test(k)
    );
    if (valid.length > 0) map.set(name, [...new Set(valid)]);
  }
  return map;
}

/** Reads the name map at `path`; empty when there is none or it is bad. */
export function readNameMap(path: string): NameMap {
  try {
    return parseNameMap(readFileBounded(path, MAX_NAME_MAP_BYTES));
  } catch {
    // No map yet (no fleet server, or not fetched): names resolve from
    // the user's own claim only.
    return new Map();
  }
}

/**
 * The key `name` stands for: the map's one key for it, else the user's own
 * claim when it names `name`. Throws when the map holds several keys for it
 * (ambiguous) or nothing knows it.
 */
export function resolveName(
  name: string,
  map: NameMap,
  own: NameClaim | null,
): string {
  const keys = map.get(name) ?? [];
  if (keys.length > 1) {
    throw new PuddleError(
      `the name ${name} is claimed by ${keys.length} puddles (${
        keys.join(", ")
      }); it resolves to none of them.`,
      "use the hex form, gitback://<project_id>/<handle>.",
    );
  }
  if (keys.length === 1) return keys[0];
  if (own?.name === name) return own.key;
  throw new PuddleError(
    `no puddle claims the name ${name} in this envoy's name map.`,
    "use the hex form, gitback://<project_id>/<handle>, or check the name.",
  );
}

/** The name `key` goes by in `map` alone (unambiguously), or null. */
export function nameOf(key: string, map: NameMap): string | null {
  for (const [name, keys] of map) {
    if (keys.length === 1 && keys[0] === key) return name;
  }
  return null;
}

/** Where the agent keeps the fleet's name map, under `var/lib/vigo`. */
export function nameMapPath(varLib: string): string {
  return `${varLib}/swarm/puddle/names.json`;
}
