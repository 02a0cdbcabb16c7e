import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { seedSigner } from "../crypto/signed_object.ts";
import { signNameClaim } from "../puddle/names.ts";
import {
  claimedName,
  MAX_TRAITS_BYTES,
  parseTraits,
  TraitsError,
} from "./traits.ts";

const bytes = (value: unknown) =>
  new TextEncoder().encode(JSON.stringify(value));
const host = { certificateHost: "envoy-a" };

async function sample(): Promise<Record<string, unknown>> {
  const dan = seedSigner(generateSeed());
  const key = formatPublicKey(dan.publicKey);
  return {
    v: 1,
    envoy: "envoy-a",
    at: 1000,
    users: [{
      user: "dan",
      puddle: {
        pubkey: key,
        wrapped_sha256: "a".repeat(64),
        unlocked: true,
        name_claim: await signNameClaim(dan, "dan", 900),
        pair_pending: false,
        rekey_pending: false,
        retired: ["ed25519:" + "b".repeat(64)],
      },
      gitback: {
        projects: [{
          project_id: "c".repeat(64),
          handle: "notes",
          scope: "swarm-wide",
          heads: { "refs/heads/main": "d".repeat(40) },
          repo_bytes: 4096,
          revokes: 0,
          leaves: 1,
          delegations: 2,
          tombstoned: false,
          signed_seq: 3,
          members: [key],
        }],
      },
    }, { user: "ann", puddle: null, gitback: null }],
  };
}

function refused(value: unknown, status: number, pattern: RegExp) {
  assert.throws(
    () => parseTraits(value instanceof Uint8Array ? value : bytes(value), host),
    (e: unknown) =>
      e instanceof TraitsError && e.status === status &&
      pattern.test(e.message),
  );
}

Deno.test("well-formed traits parse, with the claim's name readable", async () => {
  const value = await sample();
  const traits = parseTraits(bytes(value), host);
  assert.equal(traits.envoy, "envoy-a");
  assert.equal(traits.users.length, 2);
  assert.equal(claimedName(traits.users[0].puddle!), "dan");
  assert.deepEqual(JSON.parse(JSON.stringify(traits)), value);
});

Deno.test("traits for another host are refused with 403", async () => {
  refused({ ...await sample(), envoy: "envoy-b" }, 403, /envoy-b.*envoy-a/);
});

Deno.test("malformed traits are refused with 400", async () => {
  const good = await sample();
  const user = (good.users as Record<string, unknown>[])[0];
  const puddle = user.puddle as Record<string, unknown>;
  const gitback = user.gitback as { projects: Record<string, unknown>[] };
  refused(new TextEncoder().encode("{not json"), 400, /not valid UTF-8 JSON/);
  refused(new Uint8Array([0xff, 0xfe]), 400, /not valid UTF-8 JSON/);
  refused([], 400, /not an object/);
  refused({ ...good, extra: 1 }, 400, /exactly the fields/);
  refused({ ...good, v: 2 }, 400, /v is not 1/);
  refused({ ...good, envoy: "bad host!" }, 400, /envoy is not a host name/);
  refused({ ...good, at: -1 }, 400, /at is not/);
  refused({ ...good, at: 1.5 }, 400, /at is not/);
  const withUser = (u: unknown) => ({ ...good, users: [u] });
  refused(withUser({ ...user, user: "Dan" }), 400, /not a valid user name/);
  refused(withUser({ ...user, user: "root;" }), 400, /not a valid user name/);
  refused({ ...good, users: [user, user] }, 400, /lists dan twice/);
  refused(withUser({ ...user, gitback: undefined }), 400, /exactly the fields/);
  const withPuddle = (p: unknown) => withUser({ ...user, puddle: p });
  refused(withPuddle({ ...puddle, pubkey: "ed25519:XY" }), 400, /pubkey/);
  refused(withPuddle({ ...puddle, unlocked: "yes" }), 400, /unlocked/);
  refused(
    withPuddle({ ...puddle, wrapped_sha256: "A".repeat(64) }),
    400,
    /wrapped_sha256/,
  );
  refused(withPuddle({ ...puddle, retired: ["x"] }), 400, /retired\[0\]/);
  const withProject = (p: unknown) =>
    withUser({ ...user, gitback: { projects: [p] } });
  const project = gitback.projects[0];
  refused(withProject({ ...project, scope: "public" }), 400, /scope/);
  refused(withProject({ ...project, handle: ".hidden" }), 400, /handle/);
  refused(withProject({ ...project, repo_bytes: -5 }), 400, /repo_bytes/);
  refused(
    withProject({ ...project, heads: { "main": "d".repeat(40) } }),
    400,
    /bad ref name/,
  );
  refused(
    withProject({ ...project, heads: { "refs/heads/x": "zz" } }),
    400,
    /heads/,
  );
  refused(
    withUser({ ...user, gitback: { projects: [project, project] } }),
    400,
    /twice/,
  );
});

Deno.test("oversized traits are refused with 413", async () => {
  const good = await sample();
  refused(new Uint8Array(MAX_TRAITS_BYTES + 1), 413, /too large/);
  const users = Array.from({ length: 257 }, (_, i) => ({
    user: `u${i}`,
    puddle: null,
    gitback: null,
  }));
  refused({ ...good, users }, 413, /users has 257 entries/);
  const user = (good.users as Record<string, unknown>[])[0];
  const project = (user.gitback as { projects: Record<string, unknown>[] })
    .projects[0];
  const heads: Record<string, string> = {};
  for (let i = 0; i < 65; i++) heads[`refs/heads/b${i}`] = "d".repeat(40);
  refused(
    {
      ...good,
      users: [{ ...user, gitback: { projects: [{ ...project, heads }] } }],
    },
    413,
    /heads has 65 entries/,
  );
  const projects = Array.from({ length: 513 }, () => project);
  refused(
    { ...good, users: [{ ...user, gitback: { projects } }] },
    413,
    /projects has 513/,
  );
});

Deno.test("an invalid name claim is refused with 400", async () => {
  const good = await sample();
  // The good claim verified once (and is remembered); its tampered copies
  // are verified afresh and still refused.
  parseTraits(bytes(good), host);
  parseTraits(bytes(good), host);
  const user = (good.users as Record<string, unknown>[])[0];
  const puddle = user.puddle as Record<string, unknown>;
  const claim = puddle.name_claim as { body: string; sig: string };
  const sig = (claim.sig[0] === "0" ? "1" : "0") + claim.sig.slice(1);
  refused(
    {
      ...good,
      users: [{
        ...user,
        puddle: { ...puddle, name_claim: { ...claim, sig } },
      }],
    },
    400,
    /invalid name claim.*not signed by the key it names/,
  );
  refused(
    {
      ...good,
      users: [{ ...user, puddle: { ...puddle, name_claim: { body: "x" } } }],
    },
    400,
    /invalid name claim/,
  );
});

Deno.test("a name claim signed by another key than the puddle's is refused", async () => {
  const good = await sample();
  const user = (good.users as Record<string, unknown>[])[0];
  const puddle = user.puddle as Record<string, unknown>;
  const eve = seedSigner(generateSeed());
  const claim = await signNameClaim(eve, "dan", 900);
  refused(
    { ...good, users: [{ ...user, puddle: { ...puddle, name_claim: claim } }] },
    400,
    /signed by ed25519:[0-9a-f]+, not by the puddle's key/,
  );
});
