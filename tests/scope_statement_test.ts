/**
 * A project's scope is its founder's signed statement and nothing else, on
 * a real three-envoy fleet. The fleet's user founds projects on envoy-a
 * with `project init`; nobody is a member on envoy-b. A swarm-wide
 * project reaches envoy-b by its founder's statement alone. Envoy-c, an
 * enrolled envoy with its real fleet certificate where a member of a
 * members-only project lives, speaks raw HTTPS to envoy-b's push route
 * and claims the project is swarm-wide: in plain text, with a statement
 * signed by someone other than the founder, or with the founder's
 * statement of another project. Forged UDP announcements claim the same.
 *
 * Before statements, the push route took `X-Vigo-Scope: swarm-wide` at its
 * word (and a missing header as swarm-wide), so envoy-c's deliveries were
 * answered 200 and envoy-b built a replica of the members-only project; the
 * announced cache and adoption took the scope a peer's record named.
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import type { Envoy } from "../scripts/fleet.ts";
import { vigo } from "./support/cli.ts";
import { signedMemberHeader } from "./support/member_binding.ts";
import {
  foundWhileUnlocked,
  initAndUnlockPuddle,
  rewrites,
} from "./support/fleet_steps.ts";
import { fleetTest } from "./support/fleet_case.ts";
import {
  announcedCache,
  gitbackDir,
  repoOf,
  tipOn,
  tlsOf,
} from "./support/envoy_files.ts";
import { git } from "./support/git.ts";
import { waitForLine, waitUntil } from "./support/wait.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import {
  CHAIN_HEADER,
  REFS_HEADER,
  SCOPE_HEADER,
} from "../src/agent/fanout.ts";
import { MEMBER_HEADER } from "../src/agent/member_proof.ts";
import { canonicalBytes } from "../src/crypto/canonical.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { toHex } from "../src/crypto/hex.ts";
import { SIGN_CONTEXTS, signWithContext } from "../src/crypto/signed.ts";
import { decodeBase64, encodeBase64 } from "../src/platform/encoding.ts";
import { exists } from "../src/platform/fs.ts";
import { projectId as computeProjectId } from "../src/gitback/project_id.ts";
import { nextRefStateBody, signRefState } from "../src/gitback/ref_state.ts";
import { readRepoMetaRecord } from "../src/gitback/repo.ts";
import {
  encodeScopeHeader,
  type ScopeStatementWire,
  signScopeStatement,
  verifyScopeStatement,
} from "../src/gitback/scope_statement.ts";
import { mintBootstrapToken, mintChildToken } from "../src/gitback/tokens.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";

const PASS = "scope passphrase";

/** Everything `envoy` keeps about `id` root-side: nothing, when refused. */
function traces(envoy: Envoy, id: string): string[] {
  const found: string[] = [];
  for (const sub of ["projects", "meta", "tmp"]) {
    try {
      for (const entry of Deno.readDirSync(`${gitbackDir(envoy)}/${sub}`)) {
        if (sub === "tmp" || entry.name.includes(id)) {
          found.push(`${sub}/${entry.name}`);
        }
      }
    } catch {
      // Absent: nothing there.
    }
  }
  return found;
}

/** The header value of a JSON value: standard base64 of its JSON. */
const header = (value: unknown) =>
  encodeBase64(new TextEncoder().encode(JSON.stringify(value)));

fleetTest(
  "scope statements: only the founder's signed statement makes a project swarm-wide",
  { prefix: "vigo-scope-", envoys: 3 },
  async ({ dir, fleet, t }) => {
    const [a, b, c] = fleet.envoys;
    await initAndUnlockPuddle(a, PASS);
    /** The fleet's user founds `handle` on envoy-a from a fresh work tree. */
    const found = async (handle: string, extra: string[] = []) => {
      const id = await foundWhileUnlocked(a, dir, handle, extra);
      const state = JSON.parse(
        Deno.readTextFileSync(`${a.home}/.vigo-gitback/${id}/project.json`),
      );
      return {
        id,
        head: await git(["rev-parse", "HEAD"], {
          cwd: `${dir}/${handle}/work`,
        }),
        statement: state.scope_statement as ScopeStatementWire,
      };
    };
    const open = await found("open");
    const secret = await found("secret", ["--scope", "members-only"]);

    await t.step(
      "project init signs the scope; a swarm-wide project reaches an envoy with no member by it",
      async () => {
        // The founder's session signed it: it verifies, and says what init
        // was told.
        assert.equal(
          verifyScopeStatement(open.statement, open.id),
          "swarm-wide",
        );
        assert.equal(
          verifyScopeStatement(secret.statement, secret.id),
          "members-only",
        );
        const shown = await vigo(a.env, [
          "swarm",
          "gitback",
          "project",
          "status",
          "open",
        ]);
        assert.match(
          shown.stdout,
          /scope: +swarm-wide \(signed by the founder\)/,
        );
        // Nobody on envoy-b or envoy-c is a member; the swarm-wide project
        // lands on both, with the founder's statement recorded.
        for (const envoy of [b, c]) {
          await waitUntil(
            `${envoy.name} to hold open`,
            async () => await tipOn(envoy, open.id) === open.head,
          );
          const inRepo = readRepoMetaRecord(repoOf(envoy, open.id));
          assert.deepEqual(inRepo, {
            handle: "open",
            scope: "swarm-wide",
            scope_statement: open.statement,
          });
          const meta = JSON.parse(
            Deno.readTextFileSync(
              `${gitbackDir(envoy)}/meta/${open.id}.json`,
            ),
          );
          assert.deepEqual(meta.scope_statement, open.statement);
        }
        // The members-only one goes nowhere without a member.
        for (const envoy of [b, c]) {
          await waitForLine(
            a.log,
            new RegExp(
              `fan-out failed project=${secret.id} peer=${envoy.name} .*members-only`,
            ),
          );
          assert.equal(exists(repoOf(envoy, secret.id)), false);
        }
      },
    );

    await t.step(
      "an enrolled envoy claiming a members-only project is swarm-wide is refused, and nothing is made",
      async () => {
        // Keys and chains of the test's own making: a founder of a
        // members-only project, and a member who lives on envoy-c (so
        // envoy-c legitimately holds the project's states).
        const founderSeed = generateSeed();
        const founder = seedSigner(founderSeed);
        const memberSeed = generateSeed();
        const member = seedSigner(memberSeed);
        const outsiderSeed = generateSeed();
        const outsider = seedSigner(outsiderSeed);
        const id = await computeProjectId(founder.publicKey, "private");
        const root = await mintBootstrapToken(founder, "private");
        const chain = [
          root,
          await mintChildToken(founder, [root], {
            subject: member.publicKey,
            role: "member",
          }),
        ];
        const work = `${dir}/private.git`;
        await git(["init", "--quiet", "--bare", work]);
        const tree = await git(["-C", work, "mktree"]);
        const commit = await git([
          "-C",
          work,
          "commit-tree",
          tree,
          "-m",
          "private",
        ]);
        await git(["-C", work, "update-ref", "refs/heads/main", commit]);
        const bundleFile = `${dir}/private.bundle`;
        await git([
          "-C",
          work,
          "bundle",
          "create",
          "--quiet",
          bundleFile,
          "--all",
        ]);
        const bundle = Deno.readFileSync(bundleFile);
        const state = await signRefState(
          member,
          nextRefStateBody({
            projectId: id,
            parent: null,
            refs: new Map([["refs/heads/main", commit]]),
            signer: member.publicKey,
          }),
          chain,
        );
        const members = await signScopeStatement(founder, {
          projectId: id,
          handle: "private",
          scope: "members-only",
        });
        const body = JSON.parse(
          new TextDecoder().decode(decodeBase64(members.body)),
        );
        const signedBy = (seed: Uint8Array, value: unknown) => {
          const bytes = canonicalBytes(value);
          return {
            body: encodeBase64(bytes),
            sig: toHex(
              signWithContext(seed, SIGN_CONTEXTS.gitbackScope, bytes),
            ),
          };
        };
        const claims: [string, string | null][] = [
          ["no statement", null],
          ["a plain swarm-wide", "swarm-wide"],
          [
            "swarm-wide in the founder's name, signed by the member",
            encodeScopeHeader(
              signedBy(memberSeed, { ...body, scope: "swarm-wide" }),
            ),
          ],
          [
            "swarm-wide in the outsider's own name",
            encodeScopeHeader(
              signedBy(outsiderSeed, {
                ...body,
                founder: formatPublicKey(outsider.publicKey),
                scope: "swarm-wide",
              }),
            ),
          ],
          [
            "the founder's swarm-wide statement of another project",
            encodeScopeHeader(
              await signScopeStatement(founder, {
                projectId: await computeProjectId(
                  founder.publicKey,
                  "public",
                ),
                handle: "public",
                scope: "swarm-wide",
              }),
            ),
          ],
          [
            "the founder's own members-only statement",
            encodeScopeHeader(members),
          ],
          ["a statement as plain JSON", JSON.stringify(members)],
        ];
        const tls = tlsOf(c);
        const deliver = (scope: string | null) =>
          swarmRequest(
            tls,
            `https://${b.address}:1531/swarm/gitback/push/${id}`,
            {
              method: "POST",
              body: bundle,
              headers: {
                [CHAIN_HEADER]: header(chain),
                [MEMBER_HEADER]: signedMemberHeader(memberSeed, "envoy-c"),
                [REFS_HEADER]: header([state]),
                ...(scope === null ? {} : { [SCOPE_HEADER]: scope }),
              },
            },
          );
        for (const [what, scope] of claims) {
          const response = await deliver(scope);
          const text = new TextDecoder().decode(response.body);
          assert.equal(response.status, 403, `${what}: ${text}`);
          assert.match(text, /members-only/, what);
          assert.deepEqual(traces(b, id), [], what);
        }
        // The same delivery with the founder's statement of a swarm-wide
        // project is taken: the refusals were about the statement alone.
        const openFounder = seedSigner(generateSeed());
        const openId = await computeProjectId(
          openFounder.publicKey,
          "private",
        );
        const openRoot = await mintBootstrapToken(openFounder, "private");
        const openChain = [
          openRoot,
          await mintChildToken(openFounder, [openRoot], {
            subject: member.publicKey,
            role: "member",
          }),
        ];
        const openStatement = await signScopeStatement(openFounder, {
          projectId: openId,
          handle: "private",
          scope: "swarm-wide",
        });
        const taken = await swarmRequest(
          tls,
          `https://${b.address}:1531/swarm/gitback/push/${openId}`,
          {
            method: "POST",
            body: bundle,
            headers: {
              [CHAIN_HEADER]: header(openChain),
              [MEMBER_HEADER]: signedMemberHeader(memberSeed, "envoy-c"),
              [REFS_HEADER]: header([
                await signRefState(
                  member,
                  nextRefStateBody({
                    projectId: openId,
                    parent: null,
                    refs: new Map([["refs/heads/main", commit]]),
                    signer: member.publicKey,
                  }),
                  openChain,
                ),
              ]),
              [SCOPE_HEADER]: encodeScopeHeader(openStatement),
            },
          },
        );
        assert.equal(
          taken.status,
          200,
          new TextDecoder().decode(taken.body),
        );
        assert.equal(await tipOn(b, openId), commit);
        assert.deepEqual(readRepoMetaRecord(repoOf(b, openId)), {
          handle: "private",
          scope: "swarm-wide",
          scope_statement: openStatement,
        });
      },
    );

    await t.step(
      "an unsigned swarm-wide claim in an announcement is not what an envoy records",
      async () => {
        // Lines under a configured host's name count from any address:
        // the forger says envoy-a holds the members-only project as
        // swarm-wide, over and over, while envoy-b confirms it.
        const forger = dgram.createSocket("udp4");
        await new Promise<void>((r) => forger.bind(0, "127.0.0.1", () => r()));
        const line = new TextEncoder().encode(
          `GITBACKHOST:envoy-a\nGITBACKPROJECT:envoy-a:${secret.id}:secret:swarm-wide\n`,
        );
        const timer = setInterval(
          () => forger.send(line, 1532, b.address),
          100,
        );
        try {
          const cache = announcedCache(b);
          const entry = () =>
            (JSON.parse(Deno.readTextFileSync(cache)) as {
              project_id: string;
              host: string;
              confirmed_at: string;
            }[]).find((e) =>
              e.project_id === secret.id && e.host === "envoy-a"
            );
          await waitUntil("envoy-b to confirm secret on envoy-a", () => {
            try {
              return entry() !== undefined;
            } catch {
              return false;
            }
          });
          await rewrites(cache, 2);
          assert.deepEqual(entry(), {
            project_id: secret.id,
            handle: "secret",
            scope: "members-only",
            scope_statement: secret.statement,
            host: "envoy-a",
            confirmed_at: entry()!.confirmed_at,
          });
        } finally {
          clearInterval(timer);
          forger.close();
        }
        // No record, no repository of it on envoy-b.
        assert.deepEqual(traces(b, secret.id), []);
      },
    );
  },
);
