import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import { canonicalBytes } from "../crypto/canonical.ts";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { toHex } from "../crypto/hex.ts";
import { SIGN_CONTEXTS, signWithContext } from "../crypto/signed.ts";
import { decodeBase64, encodeBase64 } from "../platform/encoding.ts";
import { projectId as makeProjectId } from "./project_id.ts";
import {
  decodeRefState,
  isStateRefName,
  MAX_RECENT_STATES,
  MAX_REF_STATE_BYTES,
  MAX_REFS,
  nextRefStateBody,
  readRefStates,
  type RefState,
  type RefStateBody,
  refStatesPath,
  type RefStateWire,
  signRefState,
  supersedes,
  verifyRefState,
  writeRefStates,
} from "./ref_state.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  type SignedToken,
  TokenError,
} from "./tokens.ts";
import { seedSigner } from "../crypto/signed_object.ts";

const C1 = "1".repeat(40);
const C2 = "2".repeat(40);

const founderSeed = generateSeed();
const founder = seedSigner(founderSeed);
const memberSeed = generateSeed();
const member = seedSigner(memberSeed);
const hostileSeed = generateSeed();
const hostile = seedSigner(hostileSeed);

async function project(handle: string) {
  const id = await makeProjectId(founder.publicKey, handle);
  const root = await mintBootstrapToken(founder, handle);
  const leaf = await mintChildToken(founder, [root], {
    subject: member.publicKey,
    role: "member",
  });
  return { id, adminChain: [root], memberChain: [root, leaf] };
}

const P = await project("refs-one");
const Q = await project("refs-two");

function body(fields: Partial<RefStateBody> = {}): RefStateBody {
  return {
    v: 1,
    kind: "gitback-refs",
    project_id: P.id,
    seq: 1,
    parent: null,
    refs: { "refs/heads/main": C1, "refs/tags/v1": C1 },
    signer: formatPublicKey(member.publicKey),
    at: 1_800_000_000,
    ...fields,
  };
}

/**
 * A wire state over exactly `bytes` (or the canonical bytes of a value),
 * signed with `seed` under the ref-state context: what a signer who wrote
 * their own encoder would send. No shape check happens here.
 */
function forge(
  value: unknown,
  seed: Uint8Array,
  chain: unknown[] = P.memberChain,
  context: string = SIGN_CONTEXTS.gitbackRefs,
): RefStateWire {
  const bytes = value instanceof Uint8Array
    ? value
    : canonicalBytes(value as Record<string, unknown>);
  return {
    body: encodeBase64(bytes),
    sig: toHex(
      signWithContext(seed, context as typeof SIGN_CONTEXTS.gitbackRefs, bytes),
    ),
    chain,
  };
}

function isCode(code: string, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof TokenError, String(error));
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

function verify(wire: unknown, extra: Record<string, unknown> = {}) {
  return verifyRefState(wire, { projectId: P.id, ...extra });
}

Deno.test("ref state: signed, decoded and verified; the id is the SHA-256 of the body", async () => {
  const first = nextRefStateBody({
    projectId: P.id,
    parent: null,
    refs: new Map([["refs/heads/main", C1]]),
    signer: founder.publicKey,
    now: 1_800_000_000,
  });
  assert.equal(first.seq, 1);
  assert.equal(first.parent, null);
  assert.equal(first.signer, formatPublicKey(founder.publicKey));
  const wire = await signRefState(founder, first, P.adminChain);
  assert.deepEqual(Object.keys(wire).sort(), ["body", "chain", "sig"]);
  const verified = await verify(wire);
  assert.deepEqual(verified.body, first);
  assert.equal(verified.chain.role, "admin");
  assert.equal(verified.id, toHex(sha256(decodeBase64(wire.body))));
  assert.deepEqual(decodeBase64(wire.body), canonicalBytes(first));

  const second = nextRefStateBody({
    projectId: P.id,
    parent: verified,
    refs: new Map([
      ["refs/heads/main", C2],
      ["refs/gitback/lost/0123456789abcdef/heads/main", C1],
    ]),
    signer: member.publicKey,
  });
  assert.equal(second.seq, 2);
  assert.equal(second.parent, verified.id);
  // Lost refs are the envoys' own: never part of a signed state.
  assert.deepEqual(second.refs, { "refs/heads/main": C2 });
  const next = await verify(
    await signRefState(member, second, P.memberChain),
  );
  assert.equal(next.chain.role, "member");
  assert.equal(next.body.signer, formatPublicKey(member.publicKey));
  assert.ok(Math.abs(next.body.at - Date.now() / 1000) < 60);
});

Deno.test("ref state: only the canonical encoding of a body is accepted", async () => {
  const good = body();
  const text = new TextDecoder().decode(canonicalBytes(good));
  const variants: Record<string, string> = {
    "whitespace": JSON.stringify(good, null, 1),
    "unsorted keys": JSON.stringify(
      Object.fromEntries(Object.entries(good).reverse()),
    ),
    "trailing newline": text + "\n",
    "a needless escape": text.replace("refs/heads/main", "refs\\/heads/main"),
    "an exponent": text.replace('"at":1800000000', '"at":18e8'),
    "a fraction": text.replace('"seq":1', '"seq":1.0'),
  };
  for (const [what, variant] of Object.entries(variants)) {
    assert.notEqual(variant, text, what);
    // It means the same body: only its encoding is wrong.
    assert.deepEqual(JSON.parse(variant), good, what);
    const wire = forge(new TextEncoder().encode(variant), memberSeed);
    assert.throws(() => decodeRefState(wire), isCode("malformed", /canonical/));
    await assert.rejects(verify(wire), isCode("malformed"), what);
  }
  await verify(forge(new TextEncoder().encode(text), memberSeed));
});

Deno.test("ref state: a wire state of another shape is refused", async () => {
  const wire = forge(body(), memberSeed);
  const bad: Record<string, unknown> = {
    "null": null,
    "an array": [wire.body, wire.sig, wire.chain],
    "an extra field": { ...wire, id: "x" },
    "no chain": { body: wire.body, sig: wire.sig },
    "a chain that is not an array": { ...wire, chain: {} },
    "a body that is not a string": { ...wire, body: body() },
    "a short signature": { ...wire, sig: wire.sig.slice(2) },
    "an uppercase signature": { ...wire, sig: wire.sig.toUpperCase() },
    "a body that is not base64": { ...wire, body: wire.body + "!" },
    "a body that is not UTF-8": {
      ...wire,
      body: encodeBase64(new Uint8Array([0x7b, 0xff, 0x7d])),
    },
    "a body that is not JSON": {
      ...wire,
      body: encodeBase64(new TextEncoder().encode("refs")),
    },
    "a body that is an array": forge(
      new TextEncoder().encode("[]"),
      memberSeed,
    ),
    "an oversized state": {
      ...wire,
      chain: [...P.memberChain, "x".repeat(MAX_REF_STATE_BYTES)],
    },
  };
  for (const [what, value] of Object.entries(bad)) {
    assert.throws(() => decodeRefState(value), isCode("malformed"), what);
    await assert.rejects(verify(value), isCode("malformed"), what);
  }
});

Deno.test("ref state: bodies with bad fields are refused", async () => {
  const { at: _at, ...noTime } = body();
  const hex64 = "ab".repeat(32);
  const bad: Record<string, unknown> = {
    "a missing field": noTime,
    "an extra field": { ...body(), note: "x" },
    "another version": body({ v: 2 as 1 }),
    "another kind": body({ kind: "gitback-token" as "gitback-refs" }),
    "a short project id": body({ project_id: P.id.slice(1) }),
    "an uppercase project id": body({ project_id: P.id.toUpperCase() }),
    "seq 0": body({ seq: 0 }),
    "a negative seq": body({ seq: -1 }),
    "a fractional seq": body({ seq: 1.5 }),
    "a seq as text": body({ seq: "1" as unknown as number }),
    "an unsafe seq": body({ seq: 2 ** 53, parent: hex64 }),
    "a parent that is not hex": body({ seq: 2, parent: "x".repeat(64) }),
    "an uppercase parent": body({ seq: 2, parent: hex64.toUpperCase() }),
    "a short parent": body({ seq: 2, parent: hex64.slice(2) }),
    "a signer without its prefix": body({
      signer: formatPublicKey(member.publicKey).slice("ed25519:".length),
    }),
    "a short signer": body({ signer: "ed25519:abcd" }),
    "a negative time": body({ at: -1 }),
    "a fractional time": body({ at: 1.5 }),
    "refs that are null": body({
      refs: null as unknown as Record<string, string>,
    }),
    "refs that are a list": body({
      refs: [] as unknown as Record<string, string>,
    }),
    "a ref value that is short": body({ refs: { "refs/heads/main": "abc" } }),
    "a ref value in uppercase": body({
      refs: { "refs/heads/main": "A".repeat(40) },
    }),
    "a ref value of 41 digits": body({
      refs: { "refs/heads/main": "a".repeat(41) },
    }),
    "a ref value that is a number": body({
      refs: { "refs/heads/main": 1 as unknown as string },
    }),
    "a symbolic ref value": body({
      refs: { "refs/heads/main": "ref: refs/heads/other" },
    }),
  };
  for (const [what, value] of Object.entries(bad)) {
    const wire = forge(value, memberSeed);
    assert.throws(() => decodeRefState(wire), isCode("malformed"), what);
    await assert.rejects(verify(wire), isCode("malformed"), what);
  }
  // SHA-256 object ids are object ids too; no refs at all is a state.
  await verify(forge(body({ refs: { "refs/heads/main": hex64 } }), memberSeed));
  await verify(forge(body({ refs: {} }), memberSeed));
});

Deno.test("ref state: a parent exactly when seq is above 1", async () => {
  const parent = "cd".repeat(32);
  for (
    const [what, fields] of [
      ["seq 1 with a parent", { seq: 1, parent }],
      ["seq 2 without a parent", { seq: 2, parent: null }],
      ["seq 9 without a parent", { seq: 9, parent: null }],
    ] as const
  ) {
    const wire = forge(body(fields), memberSeed);
    assert.throws(() => decodeRefState(wire), isCode("malformed", /parent/));
    await assert.rejects(verify(wire), isCode("malformed"), what);
    await assert.rejects(
      signRefState(member, body(fields), P.memberChain),
      isCode("malformed"),
      what,
    );
  }
  const ok = await verify(forge(body({ seq: 7, parent }), memberSeed));
  assert.equal(ok.body.parent, parent);
});

Deno.test("ref state: ref names follow the grammar", async () => {
  const allowed = [
    "refs/heads/main",
    "refs/heads/feature/x-1_2",
    "refs/tags/v1.0+build@2",
    "refs/notes/commits",
    "refs/heads/" + "a".repeat(255 - "refs/heads/".length),
  ];
  const refused = [
    "",
    "HEAD",
    "heads/main",
    "refs/",
    "refs/heads/a..b",
    "refs/heads/.x",
    "refs/.x",
    "refs/heads/x.lock",
    "refs/heads/x.lock/y",
    "refs/heads//x",
    "refs/heads/x/",
    "refs/heads/a b",
    "refs/heads/a:b",
    "refs/heads/a~1",
    "refs/heads/a^",
    "refs/heads/a*",
    "refs/heads/a\\b",
    "refs/heads/ä",
    "refs/gitback/lost/0123456789abcdef/heads/main",
    "refs/gitback/x",
    "refs/heads/" + "a".repeat(256 - "refs/heads/".length),
  ];
  for (const name of allowed) {
    assert.ok(isStateRefName(name), name);
    await verify(forge(body({ refs: { [name]: C1 } }), memberSeed));
  }
  for (const name of refused) {
    assert.ok(!isStateRefName(name), name);
    const wire = forge(body({ refs: { [name]: C1 } }), memberSeed);
    await assert.rejects(verify(wire), isCode("malformed", /ref name/), name);
    await assert.rejects(
      signRefState(member, body({ refs: { [name]: C1 } }), P.memberChain),
      isCode("malformed"),
      name,
    );
  }
  assert.ok(!isStateRefName(42));
});

Deno.test("ref state: at most MAX_REFS refs", async () => {
  const refs = (n: number) =>
    Object.fromEntries(
      Array.from(
        { length: n },
        (_, i) => [`refs/heads/b${String(i).padStart(5, "0")}`, C1],
      ),
    );
  const full = await verify(
    await signRefState(member, body({ refs: refs(MAX_REFS) }), P.memberChain),
  );
  assert.equal(Object.keys(full.body.refs).length, MAX_REFS);
  const over = forge(body({ refs: refs(MAX_REFS + 1) }), memberSeed);
  await assert.rejects(verify(over), isCode("malformed", /refs/));
  await assert.rejects(
    signRefState(member, body({ refs: refs(MAX_REFS + 1) }), P.memberChain),
    isCode("malformed"),
  );
});

Deno.test("ref state: a signature by any other key, or over other bytes, is refused", async () => {
  const good = await signRefState(member, body(), P.memberChain);
  await verify(good);
  // Signed by a hostile key in the member's name, with the member's chain.
  await assert.rejects(
    verify(forge(body(), hostileSeed)),
    isCode("bad-signature"),
  );
  // The founder's key signing a body that names the member as signer.
  await assert.rejects(
    verify(forge(body(), founderSeed, P.adminChain)),
    isCode("bad-signature"),
  );
  // The member's body, altered after signing: main moved.
  const altered = {
    ...good,
    body: encodeBase64(
      canonicalBytes(body({ refs: { ...body().refs, "refs/heads/main": C2 } })),
    ),
  };
  assert.equal(decodeRefState(altered).body.refs["refs/heads/main"], C2);
  await assert.rejects(verify(altered), isCode("bad-signature"));
  // Another state's signature.
  const other = await signRefState(member, body({ at: 1 }), P.memberChain);
  await assert.rejects(
    verify({ ...good, sig: other.sig }),
    isCode("bad-signature"),
  );
  // The same key and bytes, signed as a token instead of a ref state.
  await assert.rejects(
    verify(
      forge(body(), memberSeed, P.memberChain, SIGN_CONTEXTS.gitbackToken),
    ),
    isCode("bad-signature"),
  );
});

Deno.test("ref state: the chain's last subject must be the signer", async () => {
  // A hostile key signs correctly in its own name but holds only the
  // member's chain (or the founder's).
  for (const chain of [P.memberChain, P.adminChain]) {
    const wire = await signRefState(
      hostile,
      body({ signer: formatPublicKey(hostile.publicKey) }),
      chain,
    );
    await assert.rejects(verify(wire), isCode("not-presenter"));
  }
  // The member signing with the founder's chain gains nothing either.
  await assert.rejects(
    verify(await signRefState(member, body(), P.adminChain)),
    isCode("not-presenter"),
  );
  // The founder signing with the member's chain.
  await assert.rejects(
    verify(
      await signRefState(
        founder,
        body({ signer: formatPublicKey(founder.publicKey) }),
        P.memberChain,
      ),
    ),
    isCode("not-presenter"),
  );
  // No chain, or a chain that is not one.
  await assert.rejects(
    verify(forge(body(), memberSeed, [])),
    isCode("malformed"),
  );
  await assert.rejects(
    verify(forge(body(), memberSeed, [{ body: "x", sig: "y" }])),
    isCode("malformed"),
  );
});

Deno.test("ref state: a revoked, expired or tombstoned chain is refused", async () => {
  const wire = await signRefState(member, body(), P.memberChain);
  const [root, leaf] = P.memberChain.map((t) => decodeToken(t).id);
  await verify(wire, { revoked: new Set(["ef".repeat(32)]) });
  await assert.rejects(
    verify(wire, { revoked: new Set([leaf]) }),
    isCode("revoked"),
  );
  await assert.rejects(
    verify(wire, { revoked: new Set([root]) }),
    isCode("revoked"),
  );
  await assert.rejects(
    verify(wire, { tombstoned: true }),
    isCode("tombstoned"),
  );

  const now = Math.floor(Date.now() / 1000);
  const expired: SignedToken = await mintChildToken(founder, P.adminChain, {
    subject: member.publicKey,
    role: "member",
    now: now - 7200,
    expires: now - 3600,
  });
  await assert.rejects(
    verify(await signRefState(member, body(), [...P.adminChain, expired])),
    isCode("expired"),
  );
});

Deno.test("ref state: a state or chain of another project is refused", async () => {
  // A state for Q, verified for P (its chain is Q's, and valid there).
  const forQ = await signRefState(
    member,
    body({ project_id: Q.id }),
    Q.memberChain,
  );
  await verifyRefState(forQ, { projectId: Q.id });
  await assert.rejects(verify(forQ), isCode("wrong-project"));
  // A state for P carrying a chain of Q.
  await assert.rejects(
    verify(await signRefState(member, body(), Q.memberChain)),
    isCode("not-anchored"),
  );
});

Deno.test("ref state: higher seq wins, then the smaller id", () => {
  const state = (seq: number, id: string): RefState => ({
    wire: { body: "", sig: "", chain: [] },
    body: body({ seq, parent: seq > 1 ? "ab".repeat(32) : null }),
    id,
  });
  const low = "1".repeat(64);
  const high = "f".repeat(64);
  assert.ok(supersedes(state(2, high), state(1, low)));
  assert.ok(!supersedes(state(1, low), state(2, high)));
  assert.ok(supersedes(state(3, low), state(3, high)));
  assert.ok(!supersedes(state(3, high), state(3, low)));
  assert.ok(!supersedes(state(3, low), state(3, low)));
});

Deno.test("ref state: at equal seq an admin's state wins over a member's, whatever the ids", async () => {
  const parent = "ab".repeat(32);
  const signed = async (signer: "admin" | "member", seq: number, at: number) =>
    decodeRefState(
      await signRefState(
        signer === "admin" ? founder : member,
        body({
          seq,
          parent: seq > 1 ? parent : null,
          signer: formatPublicKey(
            (signer === "admin" ? founder : member).publicKey,
          ),
          at,
        }),
        signer === "admin" ? P.adminChain : P.memberChain,
      ),
    );
  // Two admin states at seq 3.
  const admins = [await signed("admin", 3, 1), await signed("admin", 3, 2)];
  // One member state whose id is below both admins', one above both.
  let below: RefState | undefined;
  let above: RefState | undefined;
  for (let at = 1; !below || !above; at++) {
    const m = await signed("member", 3, at);
    if (admins.every((a) => m.id < a.id)) below ??= m;
    if (admins.every((a) => m.id > a.id)) above ??= m;
  }
  const members = [below, above];
  for (const a of admins) {
    for (const m of members) {
      assert.ok(supersedes(a, m), `admin ${a.id} over member ${m.id}`);
      assert.ok(!supersedes(m, a), `member ${m.id} under admin ${a.id}`);
    }
  }
  // Between states of one role the smaller id still decides.
  const [a0, a1] = admins[0].id < admins[1].id ? admins : [...admins].reverse();
  assert.ok(supersedes(a0, a1) && !supersedes(a1, a0));
  assert.ok(supersedes(below, above) && !supersedes(above, below));
  // And a higher seq wins whoever signed either.
  const memberAt4 = await signed("member", 4, 1);
  const adminAt2 = await signed("admin", 2, 1);
  for (const a of admins) {
    assert.ok(supersedes(memberAt4, a) && !supersedes(a, memberAt4));
  }
  for (const m of members) {
    assert.ok(supersedes(m, adminAt2) && !supersedes(adminAt2, m));
  }
});

Deno.test("ref state: a ref inside another listed ref's name is refused", async () => {
  // git cannot hold refs/heads/a and refs/heads/a/b at once.
  const nested: Array<Record<string, string>> = [
    { "refs/heads/a": C1, "refs/heads/a/b": C2 },
    { "refs/heads/a/b": C1, "refs/heads/a": C1 },
    { "refs/heads/main": C1, "refs/heads/a": C1, "refs/heads/a/b/c": C2 },
    { "refs/tags/v1": C1, "refs/tags/v1/fix": C1 },
    { "refs/heads": C1, "refs/heads/main": C1 },
  ];
  for (const refs of nested) {
    const what = Object.keys(refs).join(" + ");
    const wire = forge(body({ refs }), memberSeed);
    assert.throws(
      () => decodeRefState(wire),
      isCode("malformed", /inside another ref/),
      what,
    );
    await assert.rejects(verify(wire), isCode("malformed"), what);
    // Signed by the admin, just the same.
    await assert.rejects(
      verify(
        forge(
          body({ refs, signer: formatPublicKey(founder.publicKey) }),
          founderSeed,
          P.adminChain,
        ),
      ),
      isCode("malformed"),
      what,
    );
    await assert.rejects(
      signRefState(member, body({ refs }), P.memberChain),
      isCode("malformed"),
      what,
    );
  }
  // Names that only share a prefix are not nested.
  await verify(
    forge(
      body({
        refs: {
          "refs/heads/a": C1,
          "refs/heads/ab": C1,
          "refs/heads/a-b/c": C2,
          "refs/heads/b/a": C2,
          "refs/tags/a": C1,
        },
      }),
      memberSeed,
    ),
  );
});

Deno.test("ref state: the record inside a repository", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "vigo-ref-state-" });
  try {
    assert.deepEqual(readRefStates(dir), { current: null, recent: [] });
    const states: RefState[] = [];
    let parent: RefState | null = null;
    for (let i = 0; i < MAX_RECENT_STATES + 3; i++) {
      const next = nextRefStateBody({
        projectId: P.id,
        parent,
        refs: new Map([["refs/heads/main", i % 2 ? C1 : C2]]),
        signer: member.publicKey,
        now: i,
      });
      parent = decodeRefState(
        await signRefState(member, next, P.memberChain),
      );
      states.push(parent);
    }
    const current = states[states.length - 1];
    // The current state and repeats are left out of recent; the newest kept.
    writeRefStates(dir, {
      current,
      recent: [states[0], states[0], ...states],
    });
    assert.equal(Deno.statSync(refStatesPath(dir)).mode! & 0o777, 0o600);
    const read = readRefStates(dir);
    assert.equal(read.current?.id, current.id);
    assert.deepEqual(
      read.recent.map((s) => s.id),
      states.slice(0, -1).slice(-MAX_RECENT_STATES).map((s) => s.id),
    );

    // A record entry that does not decode is dropped, not trusted.
    const raw = JSON.parse(Deno.readTextFileSync(refStatesPath(dir)));
    raw.recent[0] = {
      ...raw.recent[0],
      body: encodeBase64(canonicalBytes(body({ seq: 0 }))),
    };
    Deno.writeTextFileSync(refStatesPath(dir), JSON.stringify(raw));
    assert.equal(readRefStates(dir).recent.length, MAX_RECENT_STATES - 1);

    Deno.writeTextFileSync(refStatesPath(dir), "{not json");
    assert.deepEqual(readRefStates(dir), { current: null, recent: [] });

    // A link in place of the record is not followed.
    const elsewhere = `${dir}/elsewhere.json`;
    writeRefStates(dir, { current, recent: [] });
    Deno.renameSync(refStatesPath(dir), elsewhere);
    Deno.symlinkSync(elsewhere, refStatesPath(dir));
    assert.deepEqual(readRefStates(dir), { current: null, recent: [] });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
