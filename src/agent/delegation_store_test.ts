import assert from "node:assert/strict";
import { generateSeed } from "../crypto/ed25519.ts";
import { seedSigner, type Signer } from "../crypto/signed_object.ts";
import { encodeJsonBase64 } from "../platform/encoding.ts";
import { projectId as makeProjectId } from "../gitback/project_id.ts";
import {
  decodeDelegation,
  type DelegationWire,
  pushChain,
  readPushChain,
  signDelegation,
} from "../gitback/delegations.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  mintSuccessorToken,
  type SignedToken,
  TokenError,
} from "../gitback/tokens.ts";
import { type AgentConfig, loadAgentConfig } from "../envoy/config.ts";
import type { LogFields, Logger } from "../platform/log.ts";
import {
  delegationConflicts,
  delegationRecordPath,
  storedDelegations,
  verifyChainWithDelegations,
} from "./delegation_store.ts";
import { verifyChainHeader } from "./push_route.ts";
import { HttpError } from "../swarm/swarm_server.ts";
import { systemPathsUnder } from "../platform/paths.ts";

// The chain header is verified at the real time.
const NOW = Math.floor(Date.now() / 1000);
const HANDLE = "notes";

const newSigner = () => seedSigner(generateSeed());
const genesis = newSigner();
const successor = newSigner();
const rival = newSigner();
const member = newSigner();
const attacker = newSigner();

const id = await makeProjectId(genesis.publicKey, HANDLE);
const bootstrap = await mintBootstrapToken(genesis, HANDLE, {
  now: NOW - 1_000,
});
const sealed = [decodeToken(bootstrap).id];

async function delegate(
  from: Signer,
  to: Signer,
  position = 1,
  previous: DelegationWire | null = null,
): Promise<DelegationWire> {
  return await signDelegation(from, {
    projectId: id,
    position,
    previous: previous ? decodeDelegation(previous).id : null,
    to: to.publicKey,
    sealed: position === 1 ? sealed : [],
    now: NOW - 500,
  });
}

/** The first rotation, genesis → successor, and a second, successor → third. */
const first = await delegate(genesis, successor);
const third = newSigner();
const second = await delegate(successor, third, 2, first);
/** The genesis key signing a different first rotation: a real conflict. */
const rivalFirst = await delegate(genesis, rival);
/** Someone else's "first rotation": not validly anchored, so garbage. */
const forgedFirst = await delegate(attacker, rival);

/** The chain a member invited by `founder` (after the rotation) presents. */
async function memberChain(founder: Signer): Promise<SignedToken[]> {
  const own = await mintSuccessorToken(founder, bootstrap, { now: NOW - 400 });
  const invite = await mintChildToken(founder, [bootstrap, own], {
    subject: member.publicKey,
    role: "member",
    now: NOW - 300,
  });
  return [bootstrap, own, invite];
}

function recordingLog(): Logger & { warnings: [string, LogFields?][] } {
  const warnings: [string, LogFields?][] = [];
  return {
    warnings,
    info: () => {},
    warn: (message, fields) => warnings.push([message, fields]),
    error: () => {},
  };
}

async function withAgent(fn: (config: AgentConfig) => Promise<void>) {
  const root = Deno.makeTempDirSync({ prefix: "vigo-delegations-" });
  try {
    const paths = systemPathsUnder(root);
    Deno.mkdirSync(paths.etc, { recursive: true });
    Deno.writeTextFileSync(`${paths.etc}/agent.yaml`, "hostname: envoy-a\n");
    await fn(loadAgentConfig(paths));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

function recordBytes(config: AgentConfig): string | null {
  try {
    return Deno.readTextFileSync(delegationRecordPath(config.paths, id));
  } catch {
    return null;
  }
}

const ids = (list: DelegationWire[]) => list.map((d) => decodeDelegation(d).id);

Deno.test("a verified chain's extension is recorded, 0600 in a 0700 directory", async () => {
  await withAgent(async (config) => {
    const chain = await memberChain(successor);
    const verified = await verifyChainWithDelegations(
      config.paths,
      chain,
      [first],
      { projectId: id, now: NOW, presenter: member.publicKey },
    );
    assert.deepEqual(verified.currentFounder, successor.publicKey);
    assert.deepEqual(ids(storedDelegations(config.paths, id)), ids([first]));
    const path = delegationRecordPath(config.paths, id);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.equal(
      Deno.statSync(path.slice(0, path.lastIndexOf("/"))).mode! & 0o777,
      0o700,
    );
    // A chain presented with nothing offered goes by the record: the
    // deposed key no longer passes anywhere on this envoy.
    const forged = await mintChildToken(genesis, [bootstrap], {
      subject: attacker.publicKey,
      role: "admin",
      now: NOW,
    });
    await assert.rejects(
      verifyChainWithDelegations(config.paths, [bootstrap, forged], [], {
        projectId: id,
        now: NOW,
      }),
      (e: unknown) => e instanceof TokenError && e.code === "not-sealed",
    );
    // A later offer extends it.
    await verifyChainWithDelegations(
      config.paths,
      await memberChain(third),
      [first, second],
      { projectId: id, now: NOW },
    );
    assert.deepEqual(
      ids(storedDelegations(config.paths, id)),
      ids([first, second]),
    );
  });
});

Deno.test("an extension is recorded only once a chain verifies with it", async () => {
  await withAgent(async (config) => {
    // The deposed key's unsealed token fails with the very delegation it
    // brings: nothing is recorded.
    const forged = await mintChildToken(genesis, [bootstrap], {
      subject: attacker.publicKey,
      role: "admin",
      now: NOW,
    });
    await assert.rejects(
      verifyChainWithDelegations(config.paths, [bootstrap, forged], [first], {
        projectId: id,
        now: NOW,
      }),
      (e: unknown) => e instanceof TokenError && e.code === "not-sealed",
    );
    // A good chain that fails for another reason records nothing either.
    const chain = await memberChain(successor);
    await assert.rejects(
      verifyChainWithDelegations(config.paths, chain, [first], {
        projectId: id,
        now: NOW,
        revoked: new Set([decodeToken(chain[2]).id]),
      }),
      (e: unknown) => e instanceof TokenError && e.code === "revoked",
    );
    assert.equal(recordBytes(config), null);
    assert.deepEqual(storedDelegations(config.paths, id), []);
  });
});

Deno.test("first seen wins, and only a validly signed rival is a conflict", async () => {
  await withAgent(async (config) => {
    const log = recordingLog();
    await verifyChainWithDelegations(
      config.paths,
      await memberChain(successor),
      [first],
      { projectId: id, now: NOW },
      log,
    );
    // A rival first rotation signed by the genesis key: kept out, recorded,
    // logged; the chain is judged by the recorded delegation.
    await assert.rejects(
      verifyChainWithDelegations(
        config.paths,
        await memberChain(rival),
        [rivalFirst],
        { projectId: id, now: NOW },
        log,
      ),
      (e: unknown) => e instanceof TokenError && e.code === "broken-link",
    );
    const [conflict, ...more] = delegationConflicts(config.paths, id);
    assert.equal(more.length, 0);
    assert.equal(conflict.position, 1);
    assert.equal(conflict.kept, decodeDelegation(first).id);
    assert.equal(conflict.offered, decodeDelegation(rivalFirst).id);
    assert.deepEqual(log.warnings.map(([m]) => m), ["delegation conflict"]);
    assert.equal(log.warnings[0][1]?.project, id);
    // The recorded founder's members still verify with the rival offered.
    await verifyChainWithDelegations(
      config.paths,
      await memberChain(successor),
      [rivalFirst],
      { projectId: id, now: NOW },
      log,
    );
    assert.deepEqual(ids(storedDelegations(config.paths, id)), ids([first]));
    // The same conflict again is not recorded twice.
    assert.equal(delegationConflicts(config.paths, id).length, 1);

    // Garbage in the same place (not from the genesis key, or badly
    // signed) is no conflict.
    const before = recordBytes(config);
    const flipped = {
      ...rivalFirst,
      sig: (rivalFirst.sig[0] === "0" ? "1" : "0") + rivalFirst.sig.slice(1),
    };
    for (const offer of [[forgedFirst], [flipped]]) {
      await verifyChainWithDelegations(
        config.paths,
        await memberChain(successor),
        offer,
        { projectId: id, now: NOW },
        log,
      );
    }
    assert.equal(recordBytes(config), before);
    assert.equal(log.warnings.length, 1);
  });
});

Deno.test("a malformed offer is a TokenError and changes nothing", async () => {
  await withAgent(async (config) => {
    const chain = await memberChain(successor);
    const options = { projectId: id, now: NOW };
    for (const stored of [false, true]) {
      if (stored) {
        await verifyChainWithDelegations(config.paths, chain, [first], options);
      }
      const before = recordBytes(config);
      for (
        const offer of [
          "not a list",
          null,
          { 0: first },
          [{}],
          [{ body: "!!", sig: "x" }],
          [first, "junk"],
          [first, second, second, second, second, second],
          [{ body: first.body, sig: first.sig, extra: 1 }],
        ]
      ) {
        await assert.rejects(
          verifyChainWithDelegations(config.paths, chain, offer, options),
          (e: unknown) =>
            e instanceof TokenError && e.code === "bad-delegation",
          JSON.stringify(offer).slice(0, 60),
        );
        assert.equal(recordBytes(config), before);
      }
    }
  });
});

Deno.test("the chain header takes {chain, delegations} and a bare chain", async () => {
  await withAgent(async (config) => {
    const plain = await mintChildToken(genesis, [bootstrap], {
      subject: member.publicKey,
      role: "member",
      now: NOW - 900,
    });
    // Before any rotation, a bare array (the older form) verifies.
    assert.deepEqual(readPushChain([bootstrap, plain]), {
      chain: [bootstrap, plain],
      delegations: [],
    });
    const bare = await verifyChainHeader(
      config,
      encodeJsonBase64([bootstrap, plain]),
      id,
    );
    assert.equal(bare.leaf.body.subject, decodeToken(plain).body.subject);

    const chain = await memberChain(successor);
    const header = encodeJsonBase64(pushChain(chain, [first]));
    const verified = await verifyChainHeader(config, header, id);
    assert.deepEqual(verified.currentFounder, successor.publicKey);
    assert.deepEqual(ids(storedDelegations(config.paths, id)), ids([first]));
    // Once recorded, a bare chain is judged with the delegations too.
    await assert.rejects(
      verifyChainHeader(config, encodeJsonBase64([bootstrap, plain]), id),
      (e: unknown) => e instanceof HttpError && e.status === 403,
    );
    // Anything else is no chain at all.
    await assert.rejects(
      verifyChainHeader(config, encodeJsonBase64({ chain: "x" }), id),
      (e: unknown) => e instanceof HttpError && e.status === 403,
    );
  });
});
