/**
 * Roles reach git, end to end on a two-envoy fleet: a `member` may create
 * refs and fast-forward; only an `admin` may force-update, delete a ref or
 * move a tag. The git socket refuses the rest before any ref moves, every
 * receiver refuses a signed ref state that makes such changes, and what is
 * allowed reaches the other envoy exactly. A push whose pusher never signs
 * its ref state is rolled back.
 *
 * The founder (admin) is the fleet's user on envoy-a; the member is another
 * puddle, the fleet's user on envoy-b, so allowed changes travel both ways.
 */

import assert from "node:assert/strict";
import type { Envoy } from "../scripts/fleet.ts";
import { vigo, withGitback } from "./support/cli.ts";
import {
  foundProject,
  initAndUnlockPuddle,
  inviteAndJoin,
  puddleKey,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import { gitIn } from "./support/git.ts";
import { forEachRef, repoOf, tlsOf } from "./support/envoy_files.ts";
import { withUnsignedPushHelper } from "./support/unsigned_push_helper.ts";
import { waitForLine, waitUntil } from "./support/wait.ts";
import { memberHeaderOn } from "./support/member_binding.ts";
import { runCommand } from "../src/platform/process.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { parsePublicKey } from "../src/crypto/ed25519.ts";
import { SessionClient } from "../src/puddle/session/client.ts";
import {
  decodeRefState,
  nextRefStateBody,
  type RefState,
  refStateBytes,
  refStateWire,
} from "../src/gitback/ref_state.ts";

const FOUNDER = "roles founder";
const MEMBER = "roles member";

fleetTest(
  "roles reach git: members create and fast-forward, only admins force, delete and move tags",
  { prefix: "vigo-roles-", envoys: 2 },
  async ({ dir, fleet, t }) => {
    const [a, b] = fleet.envoys;
    const id = await foundProject(a, dir, "shared", FOUNDER);
    const url = `gitback://${id}/shared`;
    const withGit = withGitback(dir);

    /** Runs git in `cwd` with `env`; returns what it did, failed or not. */
    const git = (env: Record<string, string>, cwd: string) =>
    async (
      ...args: string[]
    ) => await runCommand("git", { args, env, clearEnv: true, cwd });
    // `adminOk` and `memberOk` fail the test unless git succeeded.
    const founderWork = `${dir}/shared/work`;
    const adminOk = gitIn(withGit(a.env), founderWork);
    const memberWork = `${dir}/member`;
    const member = git(withGit(b.env), memberWork);
    const memberOk = gitIn(withGit(b.env), memberWork);

    /** An envoy's refs, one `<object> <ref>` line each, sorted by ref. */
    const refsOf = async (envoy: Envoy) =>
      await forEachRef(envoy, id) ?? `(no repository on ${envoy.name})`;
    /** The signed ref state an envoy holds as current. */
    const currentOf = (envoy: Envoy): RefState | null => {
      try {
        const stored = JSON.parse(
          Deno.readTextFileSync(`${repoOf(envoy, id)}/vigo-refs.json`),
        );
        return stored.current ? decodeRefState(stored.current) : null;
      } catch {
        return null;
      }
    };
    /**
     * Waits until `to` holds exactly the refs and the signed state that
     * `from` (where the push landed) holds; returns those refs.
     */
    const replicated = async (from: Envoy, to: Envoy) => {
      const refs = await refsOf(from);
      const state = currentOf(from)?.id;
      assert.ok(state, `${from.name} records no signed ref state`);
      await waitUntil(
        `${to.name}'s refs to equal ${from.name}'s:\n${refs}`,
        async () => await refsOf(to) === refs && currentOf(to)?.id === state,
      );
      return refs;
    };
    /** Asserts that neither envoy's refs nor signed state moved. */
    const unchanged = async (refs: string, state: string, what: string) => {
      for (const envoy of [a, b]) {
        assert.equal(await refsOf(envoy), refs, `${what}: ${envoy.name}`);
        assert.equal(currentOf(envoy)?.id, state, `${what}: ${envoy.name}`);
      }
    };
    /** The object `ref` points at in a {@link refsOf} listing. */
    const tipOf = (refs: string, ref: string) =>
      refs.split("\n").find((line) => line.endsWith(` ${ref}`))
        ?.split(" ")[0];

    let memberKey = "";
    await t.step("a second puddle joins as a member and clones", async () => {
      await replicated(a, b);
      await initAndUnlockPuddle(b, MEMBER);
      memberKey = await inviteAndJoin(a, b, "shared", id, dir);
      const clone = await git(withGit(b.env), dir)(
        "clone",
        "--quiet",
        url,
        memberWork,
      );
      assert.equal(clone.code, 0, clone.stderr);
    });

    let memberMain = "";
    let feature = "";
    await t.step(
      "a member creates a branch and a tag and fast-forwards main; both envoys follow",
      async () => {
        await memberOk("checkout", "--quiet", "-b", "feature");
        await memberOk("commit", "--quiet", "--allow-empty", "-m", "feat");
        feature = await memberOk("rev-parse", "HEAD");
        await memberOk("push", "--quiet", "origin", "feature");
        await replicated(b, a);

        await memberOk("checkout", "--quiet", "main");
        await memberOk("commit", "--quiet", "--allow-empty", "-m", "two");
        memberMain = await memberOk("rev-parse", "HEAD");
        await memberOk("push", "--quiet", "origin", "main");
        await replicated(b, a);

        await memberOk("tag", "m1", "main");
        await memberOk("push", "--quiet", "origin", "m1");
        const refs = await replicated(b, a);
        assert.equal(tipOf(refs, "refs/heads/feature"), feature);
        assert.equal(tipOf(refs, "refs/heads/main"), memberMain);
        assert.equal(tipOf(refs, "refs/tags/m1"), memberMain);
        // Each of these states was signed by the member.
        assert.equal(currentOf(a)?.body.signer, memberKey);
      },
    );

    await t.step(
      "the git socket refuses a member's force-update, deletion and tag move",
      async () => {
        const refs = await refsOf(a);
        const state = currentOf(a)!.id;
        const cases: [string, string[], string[], RegExp][] = [
          [
            "force-update",
            ["commit", "--quiet", "--amend", "--allow-empty", "-m", "re"],
            ["push", "--force", "origin", "main"],
            /refused refs\/heads\/main: only an admin may force-update/,
          ],
          [
            "branch deletion",
            [],
            ["push", "origin", ":feature"],
            /refused refs\/heads\/feature: only an admin may delete a ref/,
          ],
          [
            "tag deletion",
            [],
            ["push", "origin", ":refs/tags/m1"],
            /refused refs\/tags\/m1: only an admin may delete a ref/,
          ],
          [
            "tag move",
            ["tag", "--force", "m1", "main~1"],
            ["push", "--force", "origin", "refs/tags/m1"],
            /refused refs\/tags\/m1: only an admin may move a tag/,
          ],
        ];
        for (const [what, prepare, push, message] of cases) {
          if (prepare.length > 0) await memberOk(...prepare);
          const out = await member(...push);
          assert.notEqual(out.code, 0, `${what} was not refused`);
          assert.match(out.stderr, message, what);
          assert.match(out.stderr, /pre-receive hook declined/, what);
          await unchanged(refs, state, what);
        }
        await memberOk("reset", "--quiet", "--hard", memberMain);
      },
    );

    await t.step(
      "a receiver refuses a member's signed state that only an admin may make",
      async () => {
        const chainOf = (envoy: Envoy) =>
          JSON.parse(
            Deno.readTextFileSync(
              `${envoy.home}/.vigo-gitback/${id}/tokens.json`,
            ),
          ).chain;
        const chain = chainOf(b);
        const founderKey = await puddleKey(a);
        /**
         * What an envoy presents with a delivery: the chain of a user who
         * lives there and that user's binding to it (the member on
         * envoy-b, the founder on envoy-a).
         */
        const presented = new Map([
          [b, { chain, member: memberHeaderOn(b, memberKey) }],
          [a, { chain: chainOf(a), member: memberHeaderOn(a, founderKey) }],
        ]);
        // The commit main held before the member's fast-forward.
        const older = (await runCommand("git", {
          args: ["-C", repoOf(a, id), "rev-parse", `${memberMain}~1`],
        })).stdout.trim();
        const session = await SessionClient.connect(
          `${b.runtime}/vigo/puddle.sock`,
          { puddleDir: `${b.home}/.vigo-puddle` },
        );
        /**
         * Delivers `refs`, signed by the member after `to`'s state at `now`
         * (the same state, byte for byte, to envoys at the same state).
         */
        const deliver = async (
          from: Envoy,
          to: Envoy,
          refs: Map<string, string>,
          now?: number,
        ) => {
          const body = nextRefStateBody({
            projectId: id,
            parent: currentOf(to),
            refs,
            signer: parsePublicKey(memberKey),
            now,
          });
          const signature = await session.sign(
            "vigo-swarm/v1/gitback-refs",
            refStateBytes(body),
          );
          const wire = refStateWire(body, signature, chain);
          const encode = (value: unknown) =>
            encodeBase64(new TextEncoder().encode(JSON.stringify(value)));
          const response = await swarmRequest(
            tlsOf(from),
            `https://${to.address}:1531/swarm/gitback/push/${id}`,
            {
              method: "POST",
              body: new Uint8Array(0),
              headers: {
                "x-vigo-chain": encode(presented.get(from)!.chain),
                "x-vigo-member": presented.get(from)!.member,
                "x-vigo-refs": encode([wire]),
              },
            },
          );
          return {
            status: response.status,
            text: new TextDecoder().decode(response.body),
          };
        };
        try {
          const refs = await refsOf(a);
          const state = currentOf(a)!.id;
          const held = () => new Map(Object.entries(currentOf(a)!.body.refs));
          const cases: [string, Map<string, string>, RegExp][] = [
            [
              "force-update",
              new Map([...held(), ["refs/heads/main", older]]),
              /refs\/heads\/main: only an admin may force-update/,
            ],
            [
              "deletion",
              new Map(
                [...held()].filter(([ref]) => ref !== "refs/heads/feature"),
              ),
              /refs\/heads\/feature: only an admin may delete a ref/,
            ],
            [
              "tag move",
              new Map([...held(), ["refs/tags/m1", older]]),
              /refs\/tags\/m1: only an admin may move a tag/,
            ],
          ];
          for (const [what, wanted, message] of cases) {
            const { status, text } = await deliver(b, a, wanted);
            assert.equal(status, 403, what);
            assert.match(text, message, what);
            await unchanged(refs, state, what);
          }
          await waitForLine(
            a.log,
            new RegExp(`WARN ref state refused project=${id} peer=envoy-b`),
          );
          // The same path with a change a member may make is taken.
          const created = new Map([
            ...held(),
            ["refs/heads/crafted", older],
          ]);
          // One state for both: signed at one time after one parent.
          const at = Math.floor(Date.now() / 1000);
          for (const [from, to] of [[b, a], [a, b]]) {
            const { status, text } = await deliver(from, to, created, at);
            assert.equal(status, 200, text);
          }
          const now = await replicated(a, b);
          assert.equal(tipOf(now, "refs/heads/crafted"), older);
        } finally {
          session.close();
        }
      },
    );

    let adminMain = "";
    await t.step(
      "an admin force-updates, moves and deletes tags, deletes branches; the replica follows exactly",
      async () => {
        await adminOk("fetch", "--quiet", "swarm");
        await adminOk("reset", "--quiet", "--hard", "swarm/main~1");
        await adminOk("commit", "--quiet", "--allow-empty", "-m", "rewrite");
        adminMain = await adminOk("rev-parse", "HEAD");
        await adminOk("push", "--quiet", "--force", "swarm", "main");
        let refs = await replicated(a, b);
        assert.equal(tipOf(refs, "refs/heads/main"), adminMain);

        await adminOk("tag", "--force", "m1", adminMain);
        await adminOk("push", "--quiet", "--force", "swarm", "refs/tags/m1");
        refs = await replicated(a, b);
        assert.equal(tipOf(refs, "refs/tags/m1"), adminMain);

        for (const ref of ["feature", "crafted", "refs/tags/m1"]) {
          await adminOk("push", "--quiet", "swarm", `:${ref}`);
          await replicated(a, b);
        }
        refs = await replicated(a, b);
        assert.equal(refs, `${adminMain} refs/heads/main\n`);
        assert.equal(currentOf(b)?.body.signer, currentOf(a)?.body.signer);
      },
    );

    await t.step(
      "a push whose pusher never signs its ref state is rolled back",
      async () => {
        const refs = await refsOf(a);
        const state = currentOf(a)!.id;
        await adminOk("commit", "--quiet", "--allow-empty", "-m", "unsigned");
        const unsigned = await adminOk("rev-parse", "HEAD");
        const snapshot = `${dir}/between-pack-and-sign`;
        const env = {
          ...withUnsignedPushHelper(`${dir}/unsigned`)(a.env),
          VIGO_TEST_SNAPSHOT_REPO: repoOf(a, id),
          VIGO_TEST_SNAPSHOT_FILE: snapshot,
        };
        const push = await git(env, founderWork)("push", "swarm", "main");
        // Between the pack and the signature, receive-pack had moved main.
        assert.equal(
          tipOf(Deno.readTextFileSync(snapshot), "refs/heads/main"),
          unsigned,
        );
        await waitForLine(
          a.log,
          new RegExp(`WARN push rolled back project=${id}`),
        );
        assert.notEqual(push.code, 0, push.stderr);
        assert.match(
          push.stderr,
          /the new ref state was not signed .*the envoy undoes this push/,
        );
        await unchanged(refs, state, "unsigned push");

        // With the puddle unlocked again, the next push is taken; the
        // unsigned commit never reaches envoy-b.
        const unlock = await vigo(
          a.env,
          ["swarm", "puddle", "unlock"],
          `${FOUNDER}\n`,
        );
        assert.equal(unlock.code, 0, unlock.stderr);
        await adminOk("reset", "--quiet", "--hard", adminMain);
        await adminOk("commit", "--quiet", "--allow-empty", "-m", "signed");
        const signed = await adminOk("rev-parse", "HEAD");
        await adminOk("push", "--quiet", "swarm", "main");
        const after = await replicated(a, b);
        assert.equal(after, `${signed} refs/heads/main\n`);
        const there = await runCommand("git", {
          args: ["-C", repoOf(b, id), "cat-file", "-e", unsigned],
        });
        assert.notEqual(there.code, 0, "envoy-b holds the unsigned commit");
      },
    );
  },
);
