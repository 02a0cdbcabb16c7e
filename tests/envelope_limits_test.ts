/**
 * LEAVE floods against a real fleet: a real unprivileged user queues
 * thousands of LEAVEs (forged ones from many keys, and valid ones from more
 * members than the cap), and a real peer with a fleet certificate posts them
 * over mutual TLS. Only LEAVEs that carry a chain ending at their signer are
 * stored, never more than the caps, the agent's memory stays bounded, and
 * the other envoy receives at most the capped number.
 */

import assert from "node:assert/strict";
import { type Fleet, fleetDown, fleetUp } from "../scripts/fleet.ts";
import { issueEnvoyCertificate } from "../src/ca/ca.ts";
import { canonicalBytes } from "../src/crypto/canonical.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { toHex } from "../src/crypto/hex.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import {
  MAX_LEAVES_PER_PROJECT,
  MAX_LEAVES_PER_SIGNER,
} from "../src/agent/envelope_store.ts";
import {
  mintLeave,
  type SignedEnvelope,
  verifyLeave,
} from "../src/gitback/envelopes.ts";
import { projectId as makeProjectId } from "../src/gitback/project_id.ts";
import {
  decodeToken,
  mintBootstrapToken,
  mintChildToken,
  type SignedToken,
} from "../src/gitback/tokens.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { exists } from "../src/platform/fs.ts";
import {
  CAN_CREATE_USERS,
  createUser,
  deleteUser,
  runAs,
  type TestUser,
} from "./support/unix_users.ts";
import { waitForLine, waitUntil } from "./support/wait.ts";
import { seedSigner, type Signer } from "../src/crypto/signed_object.ts";

/** Envelopes the sweep takes from one pending file. */
const PER_FILE = 256;
/** Now, in Unix seconds: the LEAVEs here are issued around it. */
const NOW = Math.floor(Date.now() / 1000);

function vmRssKib(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]);
}

function agentPid(root: string): number {
  return Number(Deno.readTextFileSync(`${root}/var/run/vigo/agent.pid`));
}

function storedLeaves(root: string, projectId: string): string[] {
  try {
    return [
      ...Deno.readDirSync(
        `${root}/var/lib/vigo/swarm/gitback/envelopes/${projectId}/leaves`,
      ),
    ].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** Signs `body` as a LEAVE, whatever it claims. */
async function forgeLeave(
  signer: Signer,
  body: Record<string, unknown>,
): Promise<SignedEnvelope> {
  const bytes = canonicalBytes(body);
  return {
    body: encodeBase64(bytes),
    sig: toHex(
      await signer.sign("vigo-swarm/v1/gitback-envelope-leave", bytes),
    ),
  };
}

async function member(
  founder: Signer,
  root: SignedToken,
): Promise<{ signer: Signer; chain: SignedToken[] }> {
  const signer = seedSigner(generateSeed());
  const token = await mintChildToken(founder, [root], {
    subject: signer.publicKey,
    role: "member",
  });
  return { signer, chain: [root, token] };
}

/** A deterministic shuffle, so forged and valid LEAVEs mix in every file. */
function mix<T>(items: T[]): T[] {
  let state = 12345;
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

Deno.test({
  name:
    "a user's flood of LEAVEs: forged ones are refused, valid ones stop at the cap, memory stays bounded and the peer gets at most the cap",
  ignore: !CAN_CREATE_USERS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-leave-flood-" });
    Deno.chmodSync(dir, 0o755);
    let fleet: Fleet | undefined;
    let user: TestUser | undefined;
    try {
      user = createUser(dir, "vglf");
      const mallory = user;
      fleet = await fleetUp(`${dir}/fleet`, {
        envoys: 2,
        homes: (envoy) =>
          envoy.name === "envoy-a" ? { [mallory.name]: mallory.home } : {},
      });
      const [a, b] = fleet.envoys;

      // Mallory founds a project (her key) and mints more members than an
      // envoy keeps LEAVEs for.
      const founder = seedSigner(generateSeed());
      const projectId = await makeProjectId(founder.publicKey, "flood");
      const root = await mintBootstrapToken(founder, "flood");
      const members = [];
      for (let i = 0; i < MAX_LEAVES_PER_PROJECT + 44; i++) {
        members.push(await member(founder, root));
      }
      const envelopes: SignedEnvelope[] = [];
      for (const m of members) {
        envelopes.push(
          await mintLeave(m.signer, { projectId, chain: m.chain }),
        );
      }
      // One member leaving over and over.
      const repeat = members[0];
      for (let i = 1; i <= 24; i++) {
        envelopes.push(
          await mintLeave(repeat.signer, {
            projectId,
            chain: repeat.chain,
            now: NOW - i,
          }),
        );
      }
      // Forged LEAVEs from many keys that were never members: the old
      // format (no chain), and a member's chain under a stranger's key.
      const stolen = members[1].chain;
      for (let k = 0; k < 512; k++) {
        const stranger = seedSigner(generateSeed());
        for (let i = 0; i < 6; i++) {
          const body = {
            kind: "leave",
            project_id: projectId,
            subject: formatPublicKey(stranger.publicKey),
            token_id: decodeToken(stolen[1]).id,
            issued_at: NOW - i,
          };
          envelopes.push(
            await forgeLeave(
              stranger,
              i < 4 ? { v: 1, ...body } : { v: 2, ...body, chain: stolen },
            ),
          );
        }
      }
      const valid = MAX_LEAVES_PER_PROJECT + 44 + MAX_LEAVES_PER_SIGNER - 1;
      assert.ok(envelopes.length > 3000);

      await waitForLine(a.log, /INFO agent listening/);
      const pid = agentPid(a.root);
      const rssBefore = vmRssKib(pid);

      // Mallory queues them herself, one pending file per sweep. Each file
      // arrives in a project directory moved into place whole, since the
      // sweep removes the directory it emptied.
      const gitback = `${mallory.home}/.vigo-gitback`;
      const projectDir = `${gitback}/${projectId}`;
      const queue = mix(envelopes);
      for (let at = 0; at < queue.length; at += PER_FILE) {
        const batch = JSON.stringify(queue.slice(at, at + PER_FILE));
        const wrote = await runAs(mallory, [
          "sh",
          "-c",
          `set -e; mkdir -p -m 700 "${gitback}"; d=$(mktemp -d "$HOME/stage.XXXXXX"); mkdir -m 700 "$d/${projectId}"; cat > "$d/${projectId}/leave.pending"; mv "$d/${projectId}" "${gitback}/"; rmdir "$d"`,
        ], batch);
        assert.equal(wrote.code, 0, wrote.stderr);
        await waitUntil(
          `the sweep to take batch ${at / PER_FILE + 1}`,
          () => !exists(projectDir),
          60_000,
        );
      }

      // Exactly the cap is stored, and every stored LEAVE is a member's.
      await waitForLine(a.log, /sweep stored envelopes/);
      const onA = storedLeaves(a.root, projectId);
      assert.ok(valid > MAX_LEAVES_PER_PROJECT);
      assert.equal(onA.length, MAX_LEAVES_PER_PROJECT);
      const signers = new Map<string, number>();
      for (const name of onA) {
        const stored = JSON.parse(
          Deno.readTextFileSync(
            `${a.root}/var/lib/vigo/swarm/gitback/envelopes/${projectId}/leaves/${name}`,
          ),
        );
        const verified = await verifyLeave(stored, { projectId });
        assert.equal(`${verified.id}.json`, name);
        signers.set(verified.subject, (signers.get(verified.subject) ?? 0) + 1);
      }
      assert.ok(
        (signers.get(formatPublicKey(repeat.signer.publicKey)) ?? 0) <=
          MAX_LEAVES_PER_SIGNER,
      );
      const log = Deno.readTextFileSync(a.log);
      assert.match(log, /format 1, which carries no membership chain/);
      assert.match(log, /no valid membership chain/);
      assert.match(log, /the most this envoy keeps/);

      // The other envoy ends with the same set, having been posted at most
      // the capped number.
      await waitUntil(
        "envoy-b to hold what envoy-a holds",
        () => storedLeaves(b.root, projectId).join() === onA.join(),
        60_000,
      );
      const posts = Deno.readTextFileSync(b.log).split("\n").filter((l) =>
        l.includes(
          `method=POST path=/swarm/gitback/envelopes/${projectId}/leaves`,
        )
      );
      assert.ok(
        posts.length <= MAX_LEAVES_PER_PROJECT,
        `envoy-b was posted ${posts.length} LEAVEs`,
      );

      // Memory: a generous bound (the unbounded version grew by hundreds of
      // MiB on fewer LEAVEs than this).
      const rssAfter = vmRssKib(pid);
      assert.ok(
        rssAfter - rssBefore < 128 * 1024,
        `envoy-a grew from ${rssBefore} to ${rssAfter} KiB`,
      );
    } finally {
      if (fleet) await fleetDown(`${dir}/fleet`);
      if (user) deleteUser(user);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a peer posting LEAVEs: one without a chain ending at its signer gets 403, one over the cap 429",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-leave-post-" });
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, { envoys: 1 });
      const [a] = fleet.envoys;
      await waitForLine(a.log, /INFO agent listening/);
      // A hostile envoy, enrolled by the fleet's own CA.
      const caPem = Deno.readTextFileSync(`${fleet.dir}/ca.crt`);
      const rogue = await issueEnvoyCertificate({
        caKeyPem: Deno.readTextFileSync(`${fleet.dir}/ca.key`),
        caCertPem: caPem,
        hostname: "envoy-x",
        ips: ["127.0.0.1"],
      });
      const tls = { caPem, ...rogue };
      const founder = seedSigner(generateSeed());
      const projectId = await makeProjectId(founder.publicKey, "posted");
      const root = await mintBootstrapToken(founder, "posted");
      const post = async (envelope: unknown) => {
        const response = await swarmRequest(
          tls,
          `https://${a.address}:1531/swarm/gitback/envelopes/${projectId}/leaves`,
          {
            method: "POST",
            body: JSON.stringify(envelope),
            headers: { "content-type": "application/json" },
          },
        );
        return {
          status: response.status,
          json: response.json<{ stored?: boolean; error?: string }>(),
        };
      };

      const m = await member(founder, root);
      const stranger = seedSigner(generateSeed());
      const body = {
        kind: "leave",
        project_id: projectId,
        subject: formatPublicKey(stranger.publicKey),
        token_id: decodeToken(m.chain[1]).id,
        issued_at: NOW,
      };
      // The old format, with no chain.
      const old = await post(await forgeLeave(stranger, { v: 1, ...body }));
      assert.equal(old.status, 403);
      assert.match(old.json.error!, /format 1/);
      // A member's chain, signed by someone else.
      const theft = await post(
        await forgeLeave(stranger, { v: 2, ...body, chain: m.chain }),
      );
      assert.equal(theft.status, 403);
      assert.match(theft.json.error!, /no valid membership chain/);
      assert.deepEqual(storedLeaves(a.root, projectId), []);

      // The member's own LEAVEs: stored up to the per-signer cap, then 429.
      for (let i = 0; i < MAX_LEAVES_PER_SIGNER; i++) {
        const ok = await post(
          await mintLeave(m.signer, {
            projectId,
            chain: m.chain,
            now: NOW - i,
          }),
        );
        assert.equal(ok.status, 200);
        assert.equal(ok.json.stored, true);
      }
      const over = await post(
        await mintLeave(m.signer, { projectId, chain: m.chain }),
      );
      assert.equal(over.status, 429);
      assert.match(over.json.error!, /the most this envoy keeps/);
      assert.equal(
        storedLeaves(a.root, projectId).length,
        MAX_LEAVES_PER_SIGNER,
      );
      await waitForLine(a.log, /WARN envelope refused over the cap/);
      await waitForLine(a.log, /WARN signature failure on gossiped envelope/);
    } finally {
      if (fleet) await fleetDown(`${dir}/fleet`);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
