import assert from "node:assert/strict";
import { formatPublicKey, generateSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { projectId as makeProjectId } from "./project_id.ts";
import {
  decodeDelegation,
  DELEGATION_MAX_LEN,
  DelegationError,
  type DelegationErrorCode,
  type DelegationWire,
  signDelegation,
  verifyDelegations,
} from "./delegations.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  mintSuccessorToken,
  type SignedToken,
  TokenError,
  verifyChain,
} from "./tokens.ts";

const NOW = 1_800_000_000;
const HANDLE = "vigo-web";

const newSigner = () => seedSigner(generateSeed());

const genesis = newSigner();
/** Founder keys after each rotation: keys[0] is the genesis key. */
const keys: Signer[] = [genesis, ...Array.from({ length: 5 }, newSigner)];
const admin = newSigner();
const member = newSigner();
const attacker = newSigner();

const id = await makeProjectId(genesis.publicKey, HANDLE);
const bootstrap = await mintBootstrapToken(genesis, HANDLE, {
  now: NOW - 10_000,
});
/** An admin token the genesis key issued before it retired: sealed. */
const sealedAdmin = await mintChildToken(genesis, [bootstrap], {
  subject: admin.publicKey,
  role: "admin",
  now: NOW - 9_000,
});

/** Delegation `position` (1-based) from keys[position-1] to keys[position]. */
async function rotation(
  position: number,
  previous: DelegationWire | null,
  sealed: string[],
  fields: { from?: Signer; to?: Uint8Array; projectId?: string } = {},
): Promise<DelegationWire> {
  return await signDelegation(fields.from ?? keys[position - 1], {
    projectId: fields.projectId ?? id,
    position,
    previous: previous ? decodeDelegation(previous).id : null,
    to: fields.to ?? keys[position].publicKey,
    sealed,
    now: NOW - 8_000 + position,
  });
}

/** The five rotations keys[0] → … → keys[5]; the first seals what genesis issued. */
const chainOfFive: DelegationWire[] = [];
for (let position = 1; position <= DELEGATION_MAX_LEN; position++) {
  chainOfFive.push(
    await rotation(
      position,
      chainOfFive[position - 2] ?? null,
      position === 1
        ? [decodeToken(bootstrap).id, decodeToken(sealedAdmin).id]
        : [],
    ),
  );
}
const oneRotation = chainOfFive.slice(0, 1);

async function refused(
  chain: unknown,
  code: string,
  delegations: readonly unknown[],
) {
  await assert.rejects(
    verifyChain(chain, { projectId: id, now: NOW, delegations }),
    (error: unknown) => error instanceof TokenError && error.code === code,
    `expected ${code}`,
  );
}

function refusedList(list: unknown, code: DelegationErrorCode) {
  assert.throws(
    () => verifyDelegations(list, { projectId: id, genesis: keyOf(genesis) }),
    (error: unknown) => error instanceof DelegationError && error.code === code,
    `expected ${code}`,
  );
}

function keyOf(signer: Signer): string {
  return formatPublicKey(signer.publicKey);
}

Deno.test("a deposed founder's admin token outside the seal is not-sealed, whatever its not_before", async () => {
  for (const notBefore of [NOW - 9_500, NOW - 100, NOW]) {
    const forged = await mintChildToken(genesis, [bootstrap], {
      subject: attacker.publicKey,
      role: "admin",
      now: notBefore,
    });
    // Without the delegations the deposed key still passes: why every
    // verifier needs them.
    await verifyChain([bootstrap, forged], { projectId: id, now: NOW });
    await refused([bootstrap, forged], "not-sealed", oneRotation);
    await refused([bootstrap, forged], "not-sealed", chainOfFive);
  }
});

Deno.test("a retired founder key cannot hold the leaf", async () => {
  await verifyChain([bootstrap], { projectId: id, now: NOW });
  await refused([bootstrap], "retired-holder", oneRotation);
  const own = await mintChildToken(genesis, [bootstrap], {
    subject: genesis.publicKey,
    role: "admin",
    now: NOW,
  });
  // Its own new token is both unsealed and held by a retired key.
  await refused([bootstrap, own], "not-sealed", oneRotation);
});

Deno.test("a token the retired key sealed still verifies, with what hangs under it", async () => {
  const verified = await verifyChain([bootstrap, sealedAdmin], {
    projectId: id,
    now: NOW,
    delegations: oneRotation,
    presenter: admin.publicKey,
  });
  assert.equal(verified.role, "admin");
  assert.deepEqual(verified.currentFounder, keys[1].publicKey);
  const child = await mintChildToken(admin, [bootstrap, sealedAdmin], {
    subject: member.publicKey,
    role: "member",
    now: NOW,
  });
  await verifyChain([bootstrap, sealedAdmin, child], {
    projectId: id,
    now: NOW,
    delegations: chainOfFive,
    presenter: member.publicKey,
  });
});

Deno.test("the successor mints members under its successor token", async () => {
  const successor = await mintSuccessorToken(keys[1], bootstrap, { now: NOW });
  const invite = await mintChildToken(keys[1], [bootstrap, successor], {
    subject: member.publicKey,
    role: "member",
    now: NOW,
  });
  const chain: SignedToken[] = [bootstrap, successor, invite];
  const verified = await verifyChain(chain, {
    projectId: id,
    now: NOW,
    delegations: oneRotation,
    presenter: member.publicKey,
  });
  assert.equal(verified.role, "member");
  assert.equal(verified.founderPath.current, keyOf(keys[1]));
  // Without the delegation the successor token is an unexplained link.
  await refused(chain, "broken-link", []);
});

Deno.test("chains verify with no delegations and with five", async () => {
  const plain = await mintChildToken(genesis, [bootstrap], {
    subject: member.publicKey,
    role: "member",
    now: NOW,
  });
  const none = await verifyChain([bootstrap, plain], {
    projectId: id,
    now: NOW,
    delegations: [],
  });
  assert.deepEqual(none.currentFounder, genesis.publicKey);
  assert.equal(none.founderPath.keys.length, 1);

  const last = keys[DELEGATION_MAX_LEN];
  const successor = await mintSuccessorToken(last, bootstrap, { now: NOW });
  const invite = await mintChildToken(last, [bootstrap, successor], {
    subject: member.publicKey,
    role: "member",
    now: NOW,
  });
  const five = await verifyChain([bootstrap, successor, invite], {
    projectId: id,
    now: NOW,
    delegations: chainOfFive,
    presenter: member.publicKey,
  });
  assert.deepEqual(five.currentFounder, last.publicKey);
  assert.equal(five.founderPath.keys.length, DELEGATION_MAX_LEN + 1);
  // An intermediate founder key is retired too: its own token is refused.
  const middle = await mintSuccessorToken(keys[2], bootstrap, { now: NOW });
  await refused([bootstrap, middle], "not-sealed", chainOfFive);
});

Deno.test("a sixth delegation is refused: too-many", async () => {
  const six = [...chainOfFive, chainOfFive[0]];
  refusedList(six, "too-many");
  await refused([bootstrap, sealedAdmin], "bad-delegation", six);
});

Deno.test("a first delegation not from the genesis founder is refused: not-anchored", async () => {
  const usurper = await rotation(1, null, [], { from: attacker });
  refusedList([usurper], "not-anchored");
  await refused([bootstrap, sealedAdmin], "bad-delegation", [usurper]);
  // Nor may a later one skip the key the one before it named.
  const skip = await rotation(2, chainOfFive[0], [], { from: keys[2] });
  refusedList([chainOfFive[0], skip], "not-anchored");
});

Deno.test("reordered delegations are refused: out-of-order", async () => {
  refusedList([chainOfFive[1], chainOfFive[0]], "out-of-order");
  refusedList([chainOfFive[0], chainOfFive[2]], "out-of-order");
  await refused([bootstrap, sealedAdmin], "bad-delegation", [
    chainOfFive[1],
    chainOfFive[0],
  ]);
});

Deno.test("a delegation for another project is refused: wrong-project", async () => {
  const other = await makeProjectId(genesis.publicKey, "other");
  const elsewhere = await rotation(1, null, [], { projectId: other });
  refusedList([elsewhere], "wrong-project");
  await refused([bootstrap, sealedAdmin], "bad-delegation", [elsewhere]);
});

Deno.test("a delegation with a bad signature is refused: bad-signature", async () => {
  const wire = chainOfFive[0];
  const flipped = (wire.sig[0] === "0" ? "1" : "0") + wire.sig.slice(1);
  refusedList([{ ...wire, sig: flipped }], "bad-signature");
  await refused([bootstrap, sealedAdmin], "bad-delegation", [
    { ...wire, sig: flipped },
  ]);
});

Deno.test("a delegation back to a key the project had is refused: reused-key", async () => {
  const back = await rotation(2, chainOfFive[0], [], {
    to: genesis.publicKey,
  });
  refusedList([chainOfFive[0], back], "reused-key");
  await refused([bootstrap, sealedAdmin], "bad-delegation", [
    chainOfFive[0],
    back,
  ]);
});
