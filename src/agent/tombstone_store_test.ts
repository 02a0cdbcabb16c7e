import assert from "node:assert/strict";
import { generateSeed } from "../crypto/ed25519.ts";
import { seedSigner } from "../crypto/signed_object.ts";
import type { SystemPaths } from "../platform/paths.ts";
import { signDelegation } from "../gitback/delegations.ts";
import { projectId as makeProjectId } from "../gitback/project_id.ts";
import { tombstonePath } from "../gitback/repo.ts";
import { signTombstone, TombstoneError } from "../gitback/tombstone.ts";
import { storedDelegations } from "./delegation_store.ts";
import {
  acceptTombstone,
  isTombstoned,
  readTombstone,
  tombstoneRefusal,
} from "./tombstone_store.ts";
import { systemPathsUnder } from "../platform/paths.ts";

function withRoot(fn: (paths: SystemPaths) => Promise<void>) {
  return async () => {
    const root = Deno.makeTempDirSync({ prefix: "vigo-tombstones-" });
    try {
      await fn(systemPathsUnder(root));
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  };
}

const genesis = seedSigner(generateSeed());
const next = seedSigner(generateSeed());
const other = seedSigner(generateSeed());
const id = await makeProjectId(genesis.publicKey, "notes");
const successor = await makeProjectId(next.publicKey, "notes");
const fields = { projectId: id, handle: "notes", genesis: genesis.publicKey };

Deno.test(
  "a verified tombstone is stored once, public, and the first one stays",
  withRoot(async (paths) => {
    assert.equal(isTombstoned(paths, id), false);
    assert.equal(tombstoneRefusal(paths, id), null);
    const first = await signTombstone(genesis, { ...fields, successor });
    const second = await signTombstone(genesis, {
      ...fields,
      successor: null,
    });
    assert.equal(await acceptTombstone(paths, id, first), true);
    assert.equal(await acceptTombstone(paths, id, first), false);
    assert.equal(await acceptTombstone(paths, id, second), false);
    assert.deepEqual(readTombstone(paths, id)?.wire, first);
    assert.equal(
      tombstoneRefusal(paths, id),
      `project ${id} is tombstoned (re-founded as ${successor}); use gitback://${successor}/notes.`,
    );
    const path = tombstonePath(paths, id);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o644);
    assert.deepEqual(JSON.parse(Deno.readTextFileSync(path)), first);
  }),
);

Deno.test(
  "a tombstone from anyone but the current founder is refused and writes nothing",
  withRoot(async (paths) => {
    const forged = await signTombstone(other, {
      ...fields,
      genesis: other.publicKey,
      projectId: await makeProjectId(other.publicKey, "notes"),
      successor,
    });
    await assert.rejects(
      acceptTombstone(paths, id, forged),
      (error: unknown) =>
        error instanceof TombstoneError && error.code === "wrong-project",
    );
    await assert.rejects(acceptTombstone(paths, id, { body: "", sig: "" }));
    await assert.rejects(
      acceptTombstone(paths, "../x", forged),
      /64 hex digits/,
    );
    assert.equal(isTombstoned(paths, id), false);
    assert.throws(() => Deno.lstatSync(tombstonePath(paths, id)));
  }),
);

Deno.test(
  "only a stored statement that verifies now tombstones: not a marker file, not a retired key's",
  withRoot(async (paths) => {
    const path = tombstonePath(paths, id);
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(path, "");
    assert.equal(isTombstoned(paths, id), false);

    // Stored while the genesis key was the founder…
    const old = await signTombstone(genesis, { ...fields, successor });
    assert.equal(await acceptTombstone(paths, id, old), true);
    assert.equal(isTombstoned(paths, id), true);
    // …it no longer counts once a delegation retires that key, and the
    // new founder's tombstone, offered with the delegation, replaces it.
    const rotation = [
      await signDelegation(genesis, {
        projectId: id,
        position: 1,
        previous: null,
        to: next.publicKey,
        sealed: [],
      }),
    ];
    const renewed = await signTombstone(next, {
      ...fields,
      successor,
      delegations: rotation,
    });
    await assert.rejects(
      acceptTombstone(paths, id, renewed),
      /not the project's founder/,
    );
    assert.equal(
      await acceptTombstone(paths, id, renewed, { delegations: rotation }),
      true,
    );
    assert.deepEqual(storedDelegations(paths, id), rotation);
    assert.deepEqual(readTombstone(paths, id)?.wire, renewed);
    await assert.rejects(
      acceptTombstone(paths, id, old),
      /retired by delegation 1/,
    );
  }),
);
