import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { SIGN_CONTEXTS } from "../crypto/signed.ts";
import {
  seedSigner,
  type Signer,
  signObject,
} from "../crypto/signed_object.ts";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import { signDelegation } from "./delegations.ts";
import { projectId as makeProjectId } from "./project_id.ts";
import { readProject, writeProjectState } from "./project.ts";
import {
  checkTombstone,
  decodeTombstone,
  MAX_TOMBSTONE_BYTES,
  queueTombstone,
  signTombstone,
  TOMBSTONE_PENDING,
  type TombstoneBody,
  tombstonedMessage,
  TombstoneError,
  type TombstoneErrorCode,
  type TombstoneWire,
  verifyTombstone,
} from "./tombstone.ts";

const NOW = 1_800_000_000;
const HANDLE = "vigo-web";
const newSigner = () => seedSigner(generateSeed());

const genesis = newSigner();
const next = newSigner();
const admin = newSigner();
const id = await makeProjectId(genesis.publicKey, HANDLE);
const successor = await makeProjectId(next.publicKey, HANDLE);
const rotation = [
  await signDelegation(genesis, {
    projectId: id,
    position: 1,
    previous: null,
    to: next.publicKey,
    sealed: [],
    now: NOW - 100,
  }),
];

/** A tombstone body signed by `signer`, whoever that is (for forgeries). */
async function forge(
  signer: Signer,
  fields: Partial<TombstoneBody> = {},
): Promise<TombstoneWire> {
  return await signObject(signer, SIGN_CONTEXTS.gitbackTombstone, {
    v: 1,
    kind: "gitback-tombstone",
    project_id: id,
    handle: HANDLE,
    genesis: formatPublicKey(genesis.publicKey),
    signer: formatPublicKey(signer.publicKey),
    successor,
    at: NOW,
    ...fields,
  });
}

function refused(
  wire: unknown,
  code: TombstoneErrorCode,
  pattern: RegExp,
  options: { projectId?: string; delegations?: unknown[] } = {},
): void {
  assert.throws(
    () =>
      verifyTombstone(wire, {
        projectId: options.projectId ?? id,
        delegations: options.delegations,
      }),
    (error: unknown) => {
      assert.ok(error instanceof TombstoneError, String(error));
      assert.equal(error.code, code, error.message);
      assert.match(error.message, pattern);
      return true;
    },
  );
  assert.equal(
    checkTombstone(wire, {
      projectId: options.projectId ?? id,
      delegations: options.delegations,
    }),
    null,
  );
}

Deno.test("the founder's tombstone verifies, names its successor, and is in canonical form", async () => {
  const wire = await signTombstone(genesis, {
    projectId: id,
    handle: HANDLE,
    genesis: genesis.publicKey,
    successor,
    now: NOW,
  });
  const verified = verifyTombstone(wire, { projectId: id });
  assert.deepEqual(verified.body, {
    v: 1,
    kind: "gitback-tombstone",
    project_id: id,
    handle: HANDLE,
    genesis: formatPublicKey(genesis.publicKey),
    signer: formatPublicKey(genesis.publicKey),
    successor,
    at: NOW,
  });
  assert.equal(verified.founderPath.current, verified.body.signer);
  assert.match(verified.id, /^[0-9a-f]{64}$/);
  assert.deepEqual(Object.keys(wire).sort(), ["body", "sig"]);
  assert.ok(wire.body.length < MAX_TOMBSTONE_BYTES / 2);
  assert.equal(
    tombstonedMessage(verified.body),
    `project ${id} is tombstoned (re-founded as ${successor}); use gitback://${successor}/${HANDLE}.`,
  );
  // The genesis key may be given in text form too.
  const text = await signTombstone(genesis, {
    projectId: id,
    handle: HANDLE,
    genesis: formatPublicKey(genesis.publicKey),
    successor,
    now: NOW,
  });
  assert.deepEqual(decodeTombstone(text).body, verified.body);
});

Deno.test("after a rotation the new founder's tombstone verifies and the retired key's is refused", async () => {
  const wire = await signTombstone(next, {
    projectId: id,
    handle: HANDLE,
    genesis: genesis.publicKey,
    successor: null,
    delegations: rotation,
  });
  const verified = verifyTombstone(wire, {
    projectId: id,
    delegations: rotation,
  });
  assert.equal(verified.body.signer, formatPublicKey(next.publicKey));
  // Without the delegation, the new key is nobody.
  refused(wire, "not-founder", /not the project's founder/);

  const retired = await forge(genesis);
  assert.ok(verifyTombstone(retired, { projectId: id }));
  refused(
    retired,
    "retired-founder",
    /retired by delegation 1; only the current founder/,
    { delegations: rotation },
  );
  await assert.rejects(
    signTombstone(genesis, {
      projectId: id,
      handle: HANDLE,
      genesis: genesis.publicKey,
      successor,
      delegations: rotation,
    }),
    /retired by delegation 1/,
  );
  // Delegations that do not walk from the genesis key verify nothing.
  const stray = await signDelegation(admin, {
    projectId: id,
    position: 1,
    previous: null,
    to: next.publicKey,
    sealed: [],
  });
  refused(wire, "bad-delegation", /not from the genesis founder/, {
    delegations: [stray],
  });
});

Deno.test("a key that is not the founder's cannot tombstone", async () => {
  refused(await forge(admin), "not-founder", /not the project's founder/);
  await assert.rejects(
    signTombstone(admin, {
      projectId: id,
      handle: HANDLE,
      genesis: genesis.publicKey,
      successor,
    }),
    /only the current founder/,
  );
  // Naming another genesis key does not help: it must make the project id.
  refused(
    await forge(admin, { genesis: formatPublicKey(admin.publicKey) }),
    "not-anchored",
    /do not make project/,
  );
  await assert.rejects(
    signTombstone(admin, {
      projectId: id,
      handle: HANDLE,
      genesis: admin.publicKey,
      successor,
    }),
    /do not make project/,
  );
});

Deno.test("a tombstone is for its own project only", async () => {
  const other = await makeProjectId(genesis.publicKey, "other");
  const wire = await forge(genesis);
  refused(wire, "wrong-project", /is for project .*, not /, {
    projectId: other,
  });
  // Another handle with the same key makes another project.
  refused(
    await forge(genesis, { project_id: other }),
    "wrong-project",
    /not /,
  );
  refused(
    await forge(genesis, { handle: "other" }),
    "not-anchored",
    /do not make project/,
  );
});

Deno.test("a tampered tombstone is refused", async () => {
  const wire = await forge(genesis);
  const bytes = decodeBase64(wire.body);
  const text = new TextDecoder().decode(bytes).replace(
    successor,
    "0".repeat(64),
  );
  const tampered = {
    body: encodeBase64(new TextEncoder().encode(text)),
    sig: wire.sig,
  };
  refused(tampered, "bad-signature", /is not signed by/);
  // The founder's signature over the same body under another context.
  const otherContext = await signObject(
    genesis,
    SIGN_CONTEXTS.gitbackScope,
    JSON.parse(new TextDecoder().decode(bytes)),
  );
  assert.equal(otherContext.body, wire.body);
  refused(
    { body: wire.body, sig: otherContext.sig },
    "bad-signature",
    /is not signed by/,
  );
  const flipped = wire.sig.slice(0, -1) + (wire.sig.endsWith("0") ? "1" : "0");
  refused({ body: wire.body, sig: flipped }, "bad-signature", /not signed/);
  // Form: extra fields, non-canonical bodies, oversize, garbage.
  refused({ ...wire, extra: 1 }, "malformed", /must be \{"body"/);
  refused(
    {
      body: encodeBase64(new TextEncoder().encode(` ${text}`)),
      sig: wire.sig,
    },
    "malformed",
    /canonical form/,
  );
  refused(
    { body: "A".repeat(MAX_TOMBSTONE_BYTES + 4), sig: wire.sig },
    "malformed",
    /larger than/,
  );
  refused(await forge(genesis, { v: 2 } as never), "malformed", /version/);
  refused(
    await forge(genesis, { extra: true } as never),
    "malformed",
    /has fields/,
  );
  refused(
    await forge(genesis, { at: -1 }),
    "malformed",
    /bad time/,
  );
  refused(null, "malformed", /must be/);
  refused("tombstone", "malformed", /must be/);
});

Deno.test("successor formats: a project id or null, never the project itself", async () => {
  for (const good of [successor, null]) {
    const wire = await forge(genesis, { successor: good });
    assert.equal(verifyTombstone(wire, { projectId: id }).body.successor, good);
  }
  assert.match(
    tombstonedMessage({ project_id: id, handle: HANDLE, successor: null }),
    /is tombstoned by its founder and was not re-founded/,
  );
  for (
    const bad of [
      successor.toUpperCase(),
      successor.slice(1),
      `gitback://${successor}/${HANDLE}`,
      "",
      42,
      id,
    ]
  ) {
    refused(
      await forge(genesis, { successor: bad as string }),
      "malformed",
      /successor|itself/,
    );
  }
  await assert.rejects(
    signTombstone(genesis, {
      projectId: id,
      handle: HANDLE,
      genesis: genesis.publicKey,
      successor: id,
    }),
    /re-founded as itself/,
  );
});

Deno.test("queueTombstone appends to tombstone.pending once, 0600", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/${id}`, { mode: 0o700 });
    const first = await forge(genesis);
    const second = await forge(genesis, { successor: null });
    const path = queueTombstone(dir, id, first);
    assert.equal(path, `${dir}/${id}/${TOMBSTONE_PENDING}`);
    queueTombstone(dir, id, first);
    queueTombstone(dir, id, second);
    assert.deepEqual(JSON.parse(Deno.readTextFileSync(path)), [first, second]);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.throws(
      () => queueTombstone(dir, successor, first),
      /is for project .*, not /,
    );
    assert.throws(
      () => queueTombstone(dir, id, { body: "x", sig: "y" }),
      TombstoneError,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("project.json keeps a tombstone only when it verifies, and shows its time", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const project = {
      version: 1 as const,
      project_id: id,
      handle: HANDLE,
      founder: formatPublicKey(genesis.publicKey),
      scope: "members-only" as const,
      members: [],
      cross_subnet_members: [],
      created_at: new Date(0).toISOString(),
      tombstoned_at: null,
    };
    writeProjectState(dir, { ...project, tombstone: await forge(genesis) });
    const read = readProject(dir, id);
    assert.equal(read.tombstoned_at, new Date(NOW * 1000).toISOString());
    assert.deepEqual(read.tombstone, await forge(genesis));

    writeProjectState(dir, { ...project, tombstone: await forge(admin) });
    assert.equal(readProject(dir, id).tombstone, null);
    assert.equal(readProject(dir, id).tombstoned_at, null);

    // After a rotation the user's delegations.json decides.
    writeProjectState(dir, { ...project, tombstone: await forge(next) });
    assert.equal(readProject(dir, id).tombstone, null);
    Deno.writeTextFileSync(
      `${dir}/${id}/delegations.json`,
      JSON.stringify({ version: 1, delegations: rotation }),
    );
    assert.deepEqual(readProject(dir, id).tombstone, await forge(next));

    // A time written by hand, without the founder's statement, is nothing.
    writeProjectState(dir, { ...project, tombstoned_at: "2030-01-01" });
    assert.equal(readProject(dir, id).tombstoned_at, null);
    assert.equal(readProject(dir, id).tombstone, null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
