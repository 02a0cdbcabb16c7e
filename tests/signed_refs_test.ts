/**
 * Signed ref states on a real fleet, attacked by an enrolled envoy: the
 * test speaks HTTPS to the push route of envoys B and C with envoy A's real
 * fleet certificate, and holds keys and token chains of its own making (a
 * founder, who is admin, and a member). Replicas move refs only to a state
 * its signer's chain allows, exactly to that state, and two conflicting
 * states converge to the same refs on every replica, whatever the order.
 *
 * Before signed states existed, a delivery needed only a chain that
 * verified for the project: the bundle's refs were then force-written into
 * the replica (never deleted), whoever pushed, and an empty body was a 400.
 * Each hostile case below sends a bundle whose refs carry the hostile
 * change, so under that rule the delivery was answered 200 and the refs
 * moved; the comment on each case says which assertion that breaks.
 */

import assert from "node:assert/strict";
import type { Envoy } from "../scripts/fleet.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import {
  CHAIN_HEADER,
  fanOut,
  readAckedState,
  REFS_HEADER,
  SCOPE_HEADER,
} from "../src/agent/fanout.ts";
import { loadAgentConfig } from "../src/envoy/config.ts";
import { MEMBER_HEADER } from "../src/agent/member_proof.ts";
import { recordBinding } from "../src/agent/puddle_bindings.ts";
import { signedMemberHeader } from "./support/member_binding.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { forEachRef, repoOf, tlsOf } from "./support/envoy_files.ts";
import { git } from "./support/git.ts";
import { SIGN_CONTEXTS } from "../src/crypto/signed.ts";
import {
  encodeScopeHeader,
  signScopeStatement,
} from "../src/gitback/scope_statement.ts";
import { bareRepoPath, writeRepoMeta } from "../src/gitback/repo.ts";
import { canonicalBytes } from "../src/crypto/canonical.ts";
import { formatPublicKey } from "../src/crypto/ed25519.ts";
import { decodeBase64, encodeBase64 } from "../src/platform/encoding.ts";
import { projectId as computeProjectId } from "../src/gitback/project_id.ts";
import {
  decodeRefState,
  nextRefStateBody,
  readRefStates,
  type RefState,
  refStateBytes,
  refStatesPath,
  type RefStateWire,
  refStateWire,
  signRefState,
  writeRefStates,
} from "../src/gitback/ref_state.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
} from "../src/gitback/tokens.ts";
import { seedSigner, type Signer } from "../src/crypto/signed_object.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

/** `envoy`'s refs of the project, trimmed; null when it has no replica. */
async function refsOn(envoy: Envoy, projectId: string): Promise<string | null> {
  return (await forEachRef(envoy, projectId))?.trim() ?? null;
}

/** What {@link refsOn} prints for exactly `refs`. */
function listing(refs: Record<string, string>): string {
  return Object.keys(refs).sort().map((ref) => `${refs[ref]} ${ref}`).join(
    "\n",
  );
}

const random32 = () => crypto.getRandomValues(new Uint8Array(32));

/** The founder's swarm-wide scope statement of each fresh project, by id. */
const scopeHeaders = new Map<string, string>();

/**
 * A fresh project: its founder (admin) and a member, with their chains, and
 * the founder's statement that it is swarm-wide (so an envoy with no member
 * takes it).
 */
async function freshProject(
  founder: Signer,
  member: Signer,
  handle: string,
) {
  const root = await mintBootstrapToken(founder, handle);
  const leaf = await mintChildToken(founder, [root], {
    subject: member.publicKey,
    role: "member",
  });
  const id = await computeProjectId(founder.publicKey, handle);
  const statement = await signScopeStatement(founder, {
    projectId: id,
    handle,
    scope: "swarm-wide",
  });
  scopeHeaders.set(id, encodeScopeHeader(statement));
  return {
    id,
    statement,
    admin: [root] as unknown[],
    member: [root, leaf] as unknown[],
  };
}

fleetTest(
  "signed refs: replicas move refs only as signed states allow, and conflicts converge",
  { prefix: "vigo-signed-refs-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    // The hostile envoy: A's real certificate, enrolled in the fleet.
    const tls = tlsOf(a);

    const founderSeed = random32();
    const founder = seedSigner(founderSeed);
    const memberSeed = random32();
    const member = seedSigner(memberSeed);
    // A key that holds no chain of its own.
    const outsider = seedSigner(random32());

    // A work repository for commits, tags and bundles.
    const work = `${dir}/work`;
    await git(["init", "--quiet", "--bare", work]);
    const commit = async (message: string, parent: string | null) => {
      const blob = await git(
        ["-C", work, "hash-object", "-w", "--stdin"],
        { stdin: `${message}\n` },
      );
      const tree = await git(
        ["-C", work, "mktree"],
        { stdin: `100644 blob ${blob}\tfile\n` },
      );
      return await git([
        "-C",
        work,
        "commit-tree",
        tree,
        ...(parent ? ["-p", parent] : []),
        "-m",
        message,
      ]);
    };
    const tag = async (name: string, target: string) => {
      await git(["-C", work, "tag", "-a", "-m", name, name, target]);
      return await git(["-C", work, "rev-parse", `refs/tags/${name}`]);
    };
    /**
     * A bundle whose refs are exactly `refs` (the work repository's refs
     * are set to them first): what a peer that meant those refs sends.
     */
    let bundles = 0;
    const bundleOf = async (refs: Record<string, string>) => {
      for (const [ref, id] of Object.entries(refs)) {
        await git(["-C", work, "update-ref", ref, id]);
      }
      const file = `${dir}/${++bundles}.bundle`;
      await git([
        "-C",
        work,
        "bundle",
        "create",
        "--quiet",
        file,
        ...Object.keys(refs),
      ]);
      return Deno.readFileSync(file);
    };
    const sign = async (
      signer: Signer,
      chain: unknown[],
      projectId: string,
      parent: RefState | null,
      refs: Record<string, string>,
    ): Promise<RefState> =>
      decodeRefState(
        await signRefState(
          signer,
          nextRefStateBody({
            projectId,
            parent,
            refs: new Map(Object.entries(refs)),
            signer: signer.publicKey,
          }),
          chain,
        ),
      );
    /**
     * Delivers `body` with `states` (none: no refs header) to `envoy`'s
     * push route, presenting `chain` as the delivering envoy's chain, with
     * its member's binding to A (the member unlocked on A).
     */
    const deliver = (
      envoy: Envoy,
      projectId: string,
      chain: unknown[],
      states: RefStateWire[] | null,
      body: Uint8Array,
    ) => {
      const json = (value: unknown) =>
        encodeBase64(new TextEncoder().encode(JSON.stringify(value)));
      const leaf = decodeToken(chain[chain.length - 1]).body.subject;
      const headers: Record<string, string> = {
        [CHAIN_HEADER]: json(chain),
        [MEMBER_HEADER]: signedMemberHeader(
          leaf === formatPublicKey(founder.publicKey)
            ? founderSeed
            : memberSeed,
          a.name,
        ),
      };
      if (states) headers[REFS_HEADER] = json(states);
      const scope = scopeHeaders.get(projectId);
      if (scope) headers[SCOPE_HEADER] = scope;
      return swarmRequest(
        tls,
        `https://${envoy.address}:1531/swarm/gitback/push/${projectId}`,
        { method: "POST", body, headers },
      );
    };
    const NONE = new Uint8Array(0);

    // m0 ← m1 ← m2 ← m3, and s1 beside m1: main at m1 or m2 moving to
    // s1 is not a fast-forward.
    const m0 = await commit("m0", null);
    const m1 = await commit("m1", m0);
    const m2 = await commit("m2", m1);
    const m3 = await commit("m3", m2);
    const s1 = await commit("s1 (beside m1)", m0);
    const v1a = await tag("v1a", m1);
    const v1b = await tag("v1b", m2);
    const MAIN = "refs/heads/main";
    const FEATURE = "refs/heads/feature";
    const V1 = "refs/tags/v1";

    const P = await freshProject(founder, member, "signed");
    const onB = () => refsOn(b, P.id);
    const expectB = async (
      refs: Record<string, string>,
      current: RefState,
      what: string,
    ) => {
      assert.equal(await onB(), listing(refs), what);
      assert.equal(readRefStates(repoOf(b, P.id)).current?.id, current.id);
    };
    /** Asserts a delivery's status and that B's refs and state did not move. */
    const unchanged = async (
      status: number,
      states: RefStateWire[] | null,
      body: Uint8Array,
      what: string,
      chain = P.member,
    ) => {
      const before = await onB();
      const current = readRefStates(repoOf(b, P.id)).current?.id;
      const response = await deliver(b, P.id, chain, states, body);
      assert.equal(
        response.status,
        status,
        `${what}: ${new TextDecoder().decode(response.body)}`,
      );
      assert.equal(await onB(), before, what);
      assert.equal(readRefStates(repoOf(b, P.id)).current?.id, current, what);
    };

    // The states B holds, in order.
    let S1!: RefState;
    let S2!: RefState;
    let S3!: RefState;
    let S4!: RefState;
    // The project of the conflict.
    const Q = await freshProject(founder, member, "conflict");

    await t.step(
      "an admin's first state sets main and a tag, exactly",
      async () => {
        S1 = await sign(founder, P.admin, P.id, null, {
          [MAIN]: m1,
          [FEATURE]: m1,
          [V1]: v1a,
        });
        // The bundle carries more refs than the state: only the state counts.
        const body = await bundleOf({
          [MAIN]: m1,
          [FEATURE]: m1,
          [V1]: v1a,
          "refs/heads/extra": m2,
        });
        assert.equal(await onB(), null);
        const response = await deliver(b, P.id, P.member, [S1.wire], body);
        assert.equal(
          response.status,
          200,
          new TextDecoder().decode(response.body),
        );
        await expectB(S1.body.refs, S1, "first state");
        assert.equal(await refsOn(c, P.id), null, "nothing reached C");
      },
    );

    await t.step("a chain without states moves nothing (401)", async () => {
      // Before: the chain was enough and main moved to m2 (200).
      await unchanged(
        401,
        null,
        await bundleOf({ [MAIN]: m2 }),
        "chain only",
      );
      await unchanged(
        401,
        null,
        await bundleOf({ [MAIN]: m2 }),
        "admin chain only",
        P.admin,
      );
    });

    await t.step(
      "a state altered after signing is refused (403)",
      async () => {
        // The member's honest fast-forward, delivered intact further below.
        S2 = await sign(member, P.member, P.id, S1, {
          [MAIN]: m2,
          [FEATURE]: m1,
          [V1]: v1a,
        });
        const forged = { ...S2.body, refs: { ...S2.body.refs, [MAIN]: s1 } };
        const altered = {
          ...S2.wire,
          body: encodeBase64(canonicalBytes(forged)),
        };
        assert.deepEqual(decodeRefState(altered).body.refs[MAIN], s1);
        // Before: main was forced to s1 (200).
        await unchanged(
          403,
          [altered],
          await bundleOf({ [MAIN]: s1 }),
          "main moved",
        );
        // Altered to delete feature instead (a state an admin would need).
        const { [FEATURE]: _, ...withoutFeature } = S2.body.refs;
        await unchanged(
          403,
          [{
            ...S2.wire,
            body: encodeBase64(
              canonicalBytes({ ...S2.body, refs: withoutFeature }),
            ),
          }],
          await bundleOf({ [MAIN]: m2, [V1]: v1a }),
          "feature deleted",
        );
        // An altered state beside a valid one spoils the whole delivery.
        await unchanged(
          403,
          [S2.wire, altered],
          await bundleOf({ [MAIN]: s1 }),
          "valid and altered together",
        );
      },
    );

    await t.step(
      "a key holding only someone else's chain is refused (403)",
      async () => {
        // Signed in its own name, with the member's chain: not its chain.
        // Before: main was forced to s1 (200).
        const own = await sign(outsider, P.member, P.id, S1, {
          [MAIN]: s1,
          [FEATURE]: m1,
          [V1]: v1a,
        });
        await unchanged(
          403,
          [own.wire],
          await bundleOf({ [MAIN]: s1 }),
          "own name",
        );
        // Signed in its own name, with the founder's (admin) chain.
        const asAdmin = await sign(outsider, P.admin, P.id, S1, {
          [MAIN]: s1,
        });
        await unchanged(
          403,
          [asAdmin.wire],
          await bundleOf({ [MAIN]: s1 }),
          "with the admin chain",
        );
        // Signed by the outsider in the member's name.
        const body = nextRefStateBody({
          projectId: P.id,
          parent: S1,
          refs: new Map([[MAIN, s1], [FEATURE, m1], [V1, v1a]]),
          signer: member.publicKey,
        });
        assert.equal(body.signer, formatPublicKey(member.publicKey));
        const impostor = await signRefState(
          { publicKey: member.publicKey, sign: outsider.sign },
          body,
          P.member,
        );
        await unchanged(
          403,
          [impostor],
          await bundleOf({ [MAIN]: s1 }),
          "in the member's name",
        );
      },
    );

    await t.step(
      "a member may not delete, force or move a tag (403)",
      async () => {
        // Before: each was 200 (a bundle could not delete, but nothing
        // checked the role either; the force and the tag move took effect).
        const deletion = await sign(member, P.member, P.id, S1, {
          [MAIN]: m1,
          [V1]: v1a,
        });
        await unchanged(
          403,
          [deletion.wire],
          await bundleOf({ [MAIN]: m1, [V1]: v1a }),
          "member deletion",
        );
        const tagDeletion = await sign(member, P.member, P.id, S1, {
          [MAIN]: m1,
          [FEATURE]: m1,
        });
        await unchanged(
          403,
          [tagDeletion.wire],
          await bundleOf({ [MAIN]: m1, [FEATURE]: m1 }),
          "member tag deletion",
        );
        const force = await sign(member, P.member, P.id, S1, {
          [MAIN]: s1,
          [FEATURE]: m1,
          [V1]: v1a,
        });
        await unchanged(
          403,
          [force.wire],
          await bundleOf({ [MAIN]: s1 }),
          "member non-fast-forward",
        );
        const tagMove = await sign(member, P.member, P.id, S1, {
          [MAIN]: m1,
          [FEATURE]: m1,
          [V1]: v1b,
        });
        await unchanged(
          403,
          [tagMove.wire],
          await bundleOf({ [V1]: v1b }),
          "member tag move",
        );
      },
    );

    await t.step("a member's fast-forward is taken (200)", async () => {
      const response = await deliver(
        b,
        P.id,
        P.member,
        [S2.wire],
        await bundleOf({ [MAIN]: m2 }),
      );
      assert.equal(
        response.status,
        200,
        new TextDecoder().decode(response.body),
      );
      await expectB(S2.body.refs, S2, "fast-forward");
    });

    await t.step(
      "an admin may force, delete and move a tag (200)",
      async () => {
        S3 = await sign(founder, P.admin, P.id, S2, {
          [MAIN]: s1,
          [V1]: v1b,
        });
        const response = await deliver(
          b,
          P.id,
          P.member,
          [S3.wire],
          await bundleOf({ [MAIN]: s1, [V1]: v1b }),
        );
        assert.equal(
          response.status,
          200,
          new TextDecoder().decode(response.body),
        );
        // Exactly the state: feature is gone, and what the admin dropped on
        // purpose is not kept as a lost ref.
        await expectB(S3.body.refs, S3, "admin force and deletion");
      },
    );

    await t.step("older states are never replayed", async () => {
      // States B held before: known, so a no-op. Before: main went back
      // to m1 (and then m2).
      await unchanged(
        200,
        [S1.wire],
        await bundleOf({ [MAIN]: m1 }),
        "S1 again",
      );
      await unchanged(
        200,
        [S2.wire],
        await bundleOf({ [MAIN]: m2 }),
        "S2 again",
      );
      // Older than B's current state and following a state B never saw
      // (signed by the admin, valid in every other way): refused.
      // Before: main was forced to m3 (200).
      const T1 = await sign(founder, P.admin, P.id, null, { [MAIN]: m3 });
      const T2 = await sign(founder, P.admin, P.id, T1, {
        [MAIN]: m3,
        [V1]: v1a,
      });
      assert.ok(T2.body.seq < S3.body.seq);
      await unchanged(403, [T2.wire], await bundleOf({ [MAIN]: m3 }), "T2");
      await unchanged(
        403,
        [T1.wire, T2.wire],
        await bundleOf({ [MAIN]: m3 }),
        "T1 and T2",
      );
    });

    await t.step(
      "the current state again changes nothing (200)",
      async () => {
        // Before: an empty body was a 400.
        const before = await onB();
        const response = await deliver(b, P.id, P.member, [S3.wire], NONE);
        assert.equal(
          response.status,
          200,
          new TextDecoder().decode(response.body),
        );
        assert.equal(
          response.json<{ refs_changed: number }>().refs_changed,
          0,
        );
        assert.equal(await onB(), before);
        await expectB(S3.body.refs, S3, "current again");
      },
    );

    await t.step(
      "a state naming objects B lacks, without them, is a 409",
      async () => {
        const m9 = await commit("m9", s1);
        S4 = await sign(founder, P.admin, P.id, S3, {
          [MAIN]: m9,
          [V1]: v1b,
        });
        // Before: an empty body was a 400.
        await unchanged(409, [S4.wire], NONE, "missing objects");
        // With the objects, it is taken.
        const response = await deliver(
          b,
          P.id,
          P.member,
          [S4.wire],
          await bundleOf({ [MAIN]: m9 }),
        );
        assert.equal(
          response.status,
          200,
          new TextDecoder().decode(response.body),
        );
        await expectB(S4.body.refs, S4, "with the objects");
      },
    );

    await t.step(
      "a member's state may not jump ahead of an old parent (403)",
      async () => {
        // The member signs S1's refs again, as if following S1 but with a
        // seq above B's current state: judged against S1 it changes
        // nothing, yet winning it would undo the admin's force, deletion
        // and tag move since. Before: main went back to m1 (200).
        const jump = async (parent: string) => {
          const body = nextRefStateBody({
            projectId: P.id,
            parent: S1,
            refs: new Map(Object.entries(S1.body.refs)),
            signer: member.publicKey,
          });
          return await signRefState(
            member,
            { ...body, parent, seq: S4.body.seq + 1 },
            P.member,
          );
        };
        await unchanged(
          403,
          [await jump(S1.id)],
          await bundleOf({ [MAIN]: m1, [FEATURE]: m1, [V1]: v1a }),
          "over a known parent",
        );
        // Following a state B never saw: judged against B's current refs.
        await unchanged(
          403,
          [await jump("ab".repeat(32))],
          await bundleOf({ [MAIN]: m1, [FEATURE]: m1, [V1]: v1a }),
          "over an unknown parent",
        );
        // The member's next fast-forward is taken.
        const m10 = await commit("m10", S4.body.refs[MAIN]);
        const S5 = await sign(member, P.member, P.id, S4, {
          ...S4.body.refs,
          [MAIN]: m10,
        });
        const response = await deliver(
          b,
          P.id,
          P.member,
          [S5.wire],
          await bundleOf({ [MAIN]: m10 }),
        );
        assert.equal(
          response.status,
          200,
          new TextDecoder().decode(response.body),
        );
        await expectB(S5.body.refs, S5, "member after the jumps");
      },
    );

    await t.step(
      "two states at the same seq converge on B and C, whatever the order",
      async () => {
        const k1 = await commit("k1", null);
        const k2 = await commit("k2 (the member's)", k1);
        const j2 = await commit("j2 (the admin's)", k1);
        const K1 = await sign(founder, Q.admin, Q.id, null, { [MAIN]: k1 });
        // Two pushes on two envoys, both following K1, both fast-forwards.
        const byAdmin = await sign(founder, Q.admin, Q.id, K1, {
          [MAIN]: j2,
        });
        // The member's id is the smaller (signed again until it is): by
        // ids alone the member's state would win.
        let byMember!: RefState;
        for (let at = 1_800_000_000;; at++) {
          byMember = decodeRefState(
            await signRefState(
              member,
              {
                ...nextRefStateBody({
                  projectId: Q.id,
                  parent: K1,
                  refs: new Map([[MAIN, k2]]),
                  signer: member.publicKey,
                }),
                at,
              },
              Q.member,
            ),
          );
          if (byMember.id < byAdmin.id) break;
        }
        assert.equal(byMember.body.seq, byAdmin.body.seq);
        // At equal seq the admin's state wins, whatever the ids.
        const [winner, loser] = [byAdmin, byMember];
        const send = async (envoy: Envoy, state: RefState) => {
          const response = await deliver(
            envoy,
            Q.id,
            Q.member,
            [state.wire],
            await bundleOf({ [MAIN]: state.body.refs[MAIN] }),
          );
          assert.equal(
            response.status,
            200,
            `${envoy.name}: ${new TextDecoder().decode(response.body)}`,
          );
        };
        for (const envoy of [b, c]) await send(envoy, K1);
        // Before: the last bundle's main won, so B ended at the admin's
        // tip and C at the member's, and no lost ref existed at all.
        // Before admins ranked first at equal seq: both ended at the
        // member's tip, with the admin's kept as a lost ref.
        await send(b, byMember);
        await send(b, byAdmin);
        await send(c, byAdmin);
        await send(c, byMember);
        const lost = `refs/gitback/lost/${loser.id.slice(0, 16)}/heads/main`;
        const expected = listing({
          [MAIN]: winner.body.refs[MAIN],
          [lost]: loser.body.refs[MAIN],
        });
        assert.equal(await refsOn(b, Q.id), expected, "B");
        assert.equal(await refsOn(c, Q.id), expected, "C");
        for (const envoy of [b, c]) {
          const stored = readRefStates(repoOf(envoy, Q.id));
          assert.equal(stored.current?.id, winner.id, envoy.name);
          assert.ok(stored.recent.some((s) => s.id === loser.id));
        }
        // The loser delivered again changes nothing.
        await send(b, loser);
        assert.equal(await refsOn(b, Q.id), expected, "B, loser again");

        // A later state following the winner applies on both; the lost
        // tip stays.
        const k3 = await commit("k3", winner.body.refs[MAIN]);
        const next = await sign(member, Q.member, Q.id, winner, {
          [MAIN]: k3,
        });
        assert.equal(next.body.seq, 3);
        await send(b, next);
        await send(c, next);
        const after = listing({
          [MAIN]: k3,
          [lost]: loser.body.refs[MAIN],
        });
        assert.equal(await refsOn(b, Q.id), after, "B after");
        assert.equal(await refsOn(c, Q.id), after, "C after");
        for (const envoy of [b, c]) {
          assert.equal(
            readRefStates(repoOf(envoy, Q.id)).current?.id,
            next.id,
            envoy.name,
          );
        }
      },
    );

    /**
     * Delivers to `envoy` and asserts the status; unless it is 200, also
     * that the envoy's refs and current state did not move.
     */
    const expectDelivery = async (
      envoy: Envoy,
      project: { id: string; member: unknown[] },
      status: number,
      states: RefStateWire[],
      body: Uint8Array,
      what: string,
    ) => {
      const projectId = project.id;
      const before = await refsOn(envoy, projectId);
      const current = before === null
        ? undefined
        : readRefStates(repoOf(envoy, projectId)).current?.id;
      const response = await deliver(
        envoy,
        projectId,
        project.member,
        states,
        body,
      );
      const text = new TextDecoder().decode(response.body);
      assert.equal(response.status, status, `${what}: ${text}`);
      if (status !== 200) {
        assert.equal(await refsOn(envoy, projectId), before, what);
        if (before !== null) {
          assert.equal(
            readRefStates(repoOf(envoy, projectId)).current?.id,
            current,
            what,
          );
        }
      }
      return text;
    };
    /** A state of `signer` for `projectId` over a parent nobody knows. */
    const overGap = async (
      signer: Signer,
      chain: unknown[],
      projectId: string,
      seq: number,
      refs: Record<string, string>,
    ) =>
      decodeRefState(
        await signRefState(
          signer,
          {
            ...nextRefStateBody({
              projectId,
              parent: null,
              refs: new Map(Object.entries(refs)),
              signer: signer.publicKey,
            }),
            seq,
            parent: "ab".repeat(32),
          },
          chain,
        ),
      );
    // Every project made below, for the last step.
    const more: Array<[Envoy, string]> = [];

    await t.step(
      "a member's state must follow a state the receiver knows (403); an admin's need not",
      async () => {
        const G = await freshProject(founder, member, "gaps");
        more.push([b, G.id]);
        const g1 = await commit("g1", null);
        const g2 = await commit("g2", g1);
        const g3 = await commit("g3", g2);
        const g4 = await commit("g4", g3);
        const G1 = await sign(founder, G.admin, G.id, null, { [MAIN]: g1 });
        await expectDelivery(
          b,
          G,
          200,
          [G1.wire],
          await bundleOf({ [MAIN]: g1 }),
          "G1",
        );
        // A fast-forward, as a member may make, over a parent B never
        // saw. Before: judged against B's refs, it was taken (200).
        const ff = await overGap(member, G.member, G.id, 2, { [MAIN]: g2 });
        let text = await expectDelivery(
          b,
          G,
          403,
          [ff.wire],
          await bundleOf({ [MAIN]: g2 }),
          "a member over a gap",
        );
        assert.match(text, /does not know/);
        // The freeze: so far ahead that no later state could ever rank
        // above it, the admin's included. Before: taken (200), and every
        // state after it refused as older.
        for (const seq of [Number.MAX_SAFE_INTEGER, 1_000_000]) {
          const freeze = await overGap(member, G.member, G.id, seq, {
            [MAIN]: g2,
          });
          text = await expectDelivery(
            b,
            G,
            403,
            [freeze.wire],
            await bundleOf({ [MAIN]: g2 }),
            `a member at seq ${seq}`,
          );
          assert.match(text, /does not know/);
        }
        // An admin's state may follow a state B does not know.
        const A5 = await overGap(founder, G.admin, G.id, 5, { [MAIN]: g3 });
        await expectDelivery(
          b,
          G,
          200,
          [A5.wire],
          await bundleOf({ [MAIN]: g3 }),
          "an admin over a gap",
        );
        assert.equal(await refsOn(b, G.id), listing({ [MAIN]: g3 }));
        assert.equal(readRefStates(repoOf(b, G.id)).current?.id, A5.id);
        // And the member's next state follows it as usual.
        const M6 = await sign(member, G.member, G.id, A5, { [MAIN]: g4 });
        assert.equal(M6.body.seq, 6);
        await expectDelivery(
          b,
          G,
          200,
          [M6.wire],
          await bundleOf({ [MAIN]: g4 }),
          "the member after the admin",
        );
        assert.equal(await refsOn(b, G.id), listing({ [MAIN]: g4 }));
        assert.equal(readRefStates(repoOf(b, G.id)).current?.id, M6.id);
      },
    );

    await t.step(
      "a replica with refs but no signed state judges a member's first state by its refs (403)",
      async () => {
        const H = await freshProject(founder, member, "unsigned");
        more.push([b, H.id]);
        const h1 = await commit("h1", null);
        const h2 = await commit("h2", h1);
        const h3 = await commit("h3", h2);
        const H1 = await sign(founder, H.admin, H.id, null, {
          [MAIN]: h2,
          [FEATURE]: h1,
        });
        await expectDelivery(
          b,
          H,
          200,
          [H1.wire],
          await bundleOf({ [MAIN]: h2, [FEATURE]: h1 }),
          "H1",
        );
        // As a repository from before signed states: refs, no record.
        Deno.removeSync(refStatesPath(repoOf(b, H.id)));
        const held = listing({ [MAIN]: h2, [FEATURE]: h1 });
        // A member's first state (seq 1, no parent) that rewinds main or
        // deletes feature. Before: judged as all creations, taken (200).
        for (
          const [what, refs] of [
            ["main rewound", { [MAIN]: h1, [FEATURE]: h1 }],
            ["feature deleted", { [MAIN]: h2 }],
          ] as const
        ) {
          const first = await sign(member, H.member, H.id, null, refs);
          assert.equal(first.body.seq, 1);
          await expectDelivery(b, H, 403, [first.wire], NONE, what);
          assert.equal(await refsOn(b, H.id), held, what);
          assert.equal(readRefStates(repoOf(b, H.id)).current, null, what);
        }
        // Creations and fast-forwards only: taken, exactly.
        const ok = await sign(member, H.member, H.id, null, {
          [MAIN]: h3,
          [FEATURE]: h1,
          "refs/heads/new": h1,
        });
        await expectDelivery(
          b,
          H,
          200,
          [ok.wire],
          await bundleOf({ [MAIN]: h3 }),
          "fast-forward and creation",
        );
        assert.equal(await refsOn(b, H.id), listing(ok.body.refs));
        assert.equal(readRefStates(repoOf(b, H.id)).current?.id, ok.id);
      },
    );

    await t.step(
      "a state listing refs/heads/a and refs/heads/a/b is refused (403, not 500)",
      async () => {
        const N = await freshProject(founder, member, "nested");
        more.push([b, N.id]);
        const n1 = await commit("n1", null);
        const N1 = await sign(founder, N.admin, N.id, null, { [MAIN]: n1 });
        await expectDelivery(
          b,
          N,
          200,
          [N1.wire],
          await bundleOf({ [MAIN]: n1 }),
          "N1",
        );
        // Signed by the admin over its own encoder: signRefState would
        // not sign it. Before: decoded, then git could not set both refs
        // and the push route answered 500.
        const body = nextRefStateBody({
          projectId: N.id,
          parent: N1,
          refs: new Map([
            [MAIN, n1],
            ["refs/heads/a", n1],
            ["refs/heads/a/b", n1],
          ]),
          signer: founder.publicKey,
        });
        const nested = refStateWire(
          body,
          await founder.sign(
            SIGN_CONTEXTS.gitbackRefs,
            refStateBytes(body),
          ),
          N.admin,
        );
        for (const bundle of [NONE, await bundleOf({ [MAIN]: n1 })]) {
          const text = await expectDelivery(
            b,
            N,
            403,
            [nested],
            bundle,
            "nested refs",
          );
          assert.match(text, /inside another ref/);
        }
        // On C, which holds no repository for it yet, nothing is made.
        await expectDelivery(
          c,
          N,
          403,
          [N1.wire, nested],
          await bundleOf({ [MAIN]: n1 }),
          "nested refs on C",
        );
        assert.equal(await refsOn(c, N.id), null);
      },
    );

    await t.step(
      "a sender sends the states a peer lacks from the last admin state on",
      async () => {
        const R = await freshProject(founder, member, "senders");
        more.push([b, R.id]);
        const r: string[] = [];
        for (let i = 0; i <= 6; i++) {
          r.push(await commit(`r${i}`, r[i - 1] ?? null));
        }
        // R1 (admin) sets main and feature; R2 (member) moves main on;
        // R3 (admin) deletes feature; R4 and R5 (member) move main on.
        const states: RefState[] = [];
        for (let seq = 1; seq <= 5; seq++) {
          const admin = seq === 1 || seq === 3;
          states.push(
            await sign(
              admin ? founder : member,
              admin ? R.admin : R.member,
              R.id,
              states[seq - 2] ?? null,
              seq < 3
                ? { [MAIN]: r[seq], [FEATURE]: r[1] }
                : { [MAIN]: r[seq] },
            ),
          );
        }
        const [R1, R2, R3, R4, R5] = states;
        // B holds R1 only.
        await expectDelivery(
          b,
          R,
          200,
          [R1.wire],
          await bundleOf({ [MAIN]: r[1], [FEATURE]: r[1] }),
          "R1",
        );
        // The sender: envoy A's configuration and certificate, with state
        // of its own under another directory, holding the project at R5.
        const paths = {
          root: `${dir}/sender`,
          etc: `${a.root}/etc/vigo`,
          varLib: `${dir}/sender/var/lib/vigo`,
          varRun: `${dir}/sender/var/run/vigo`,
        };
        const config = {
          ...loadAgentConfig(systemPathsUnder(a.root)),
          paths,
        };
        const repo = bareRepoPath(paths, R.id);
        await Deno.mkdir(repo, { recursive: true });
        await git(["init", "--quiet", "--bare", repo]);
        writeRepoMeta(repo, {
          handle: "senders",
          scope: "swarm-wide",
          scope_statement: R.statement,
        });
        /** The sender's refs and states: `current` and all before it. */
        const hold = async (current: RefState, recent: RefState[]) => {
          const tip = current.body.refs[MAIN];
          await git(["-C", work, "update-ref", "refs/heads/sender", tip]);
          await git([
            "-C",
            repo,
            "fetch",
            "--quiet",
            work,
            `+refs/heads/sender:${MAIN}`,
          ]);
          writeRefStates(repo, { current, recent });
        };
        await hold(R5, [R1, R2, R3, R4]);
        // The member unlocked on the sender: its binding to A is recorded.
        recordBinding(paths, {
          uid: 0,
          user: "root",
          pubkey: formatPublicKey(member.publicKey),
          statement: JSON.parse(
            new TextDecoder().decode(
              decodeBase64(signedMemberHeader(memberSeed, a.name)),
            ),
          ),
        });
        const problems: string[] = [];
        const note = (message: string, fields?: unknown) =>
          void problems.push(`${message} ${JSON.stringify(fields)}`);
        const log = { info: () => {}, warn: note, error: note };
        const send = async () => {
          const [result] = await fanOut(
            config,
            log,
            R.id,
            R.member,
            undefined,
            [b.name],
          );
          assert.ok(result.ok, `${result.error} ${problems.join("\n")}`);
          return result;
        };
        // R3 on: an admin's state may follow one B does not know, so R2
        // is not needed. Before: every state B had not acknowledged went,
        // R1 and R2 included.
        assert.equal((await send()).thin, false);
        assert.equal(await refsOn(b, R.id), listing({ [MAIN]: r[5] }));
        let stored = readRefStates(repoOf(b, R.id));
        assert.equal(stored.current?.id, R5.id);
        assert.deepEqual(
          stored.recent.map((s) => s.body.seq),
          [1, 3, 4],
        );
        assert.deepEqual(stored.recent.map((s) => s.id), [
          R1.id,
          R3.id,
          R4.id,
        ]);
        assert.deepEqual(readAckedState(config, R.id, b.name), {
          id: R5.id,
          seq: 5,
        });
        // The next state goes alone, with a thin bundle.
        const R6 = await sign(member, R.member, R.id, R5, { [MAIN]: r[6] });
        await hold(R6, states);
        assert.equal((await send()).thin, true);
        assert.equal(await refsOn(b, R.id), listing({ [MAIN]: r[6] }));
        stored = readRefStates(repoOf(b, R.id));
        assert.equal(stored.current?.id, R6.id);
        assert.deepEqual(stored.recent.map((s) => s.body.seq), [1, 3, 4, 5]);
        assert.deepEqual(problems, []);
      },
    );

    await t.step(
      "a delivery of eight states, and a state of 2000 refs, are taken whole",
      async () => {
        const L = await freshProject(founder, member, "large");
        more.push([b, L.id]);
        // Eight states in one delivery: the header is over Node's 16 KiB.
        const eight: RefState[] = [];
        let parent: RefState | null = null;
        const refs: Record<string, string> = {};
        for (const tip of [m0, m1, m2, m3, m3, m3, m3, m3]) {
          refs[MAIN] = tip;
          if (eight.length >= 4) refs[`refs/heads/b${eight.length}`] = m2;
          parent = await sign(member, L.member, L.id, parent, { ...refs });
          eight.push(parent);
        }
        const body = await bundleOf({ [MAIN]: m3 });
        const response = await deliver(
          b,
          L.id,
          L.member,
          eight.map((state) => state.wire),
          body,
        );
        assert.equal(
          response.status,
          200,
          new TextDecoder().decode(response.body),
        );
        assert.equal(readRefStates(repoOf(b, L.id)).current?.id, parent!.id);
        // One state naming 2000 refs.
        const wide: Record<string, string> = { ...refs };
        for (let i = 0; i < 2000; i++) wide[`refs/heads/wide/${i}`] = m1;
        const big = await sign(member, L.member, L.id, parent, wide);
        const answer = await deliver(b, L.id, L.member, [big.wire], NONE);
        assert.equal(
          answer.status,
          200,
          new TextDecoder().decode(answer.body),
        );
        assert.equal(await refsOn(b, L.id), listing(wide));
      },
    );

    await t.step("the repositories are whole", async () => {
      for (
        const repo of [
          repoOf(b, P.id),
          repoOf(b, Q.id),
          repoOf(c, Q.id),
          ...more.map(([envoy, id]) => repoOf(envoy, id)),
        ]
      ) {
        await git(["-C", repo, "fsck", "--no-progress"]);
      }
      // Decoding what B recorded gives back the states it was sent.
      const stored = readRefStates(repoOf(b, P.id));
      assert.deepEqual(
        decodeBase64(stored.current!.wire.body),
        canonicalBytes(stored.current!.body),
      );
    });
  },
);
