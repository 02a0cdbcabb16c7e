/**
 * Ingest on the push route, attacked by a real enrolled peer speaking raw
 * HTTPS with its fleet certificate: bundles get git's fsck, the chain is
 * checked before the body is read, bodies stream to a private spool under
 * a cap, a shared quota and a per-peer bound, the spool is emptied at
 * start-up, and a crash mid-ingest never leaves a repository whose scope is
 * unknown.
 */

import assert from "node:assert/strict";
import { childRuns } from "./support/procs.ts";
import {
  type Fleet,
  fleetDown,
  fleetUp,
  startAgent,
  stopAgent,
} from "../scripts/fleet.ts";
import { swarmRequest } from "../src/swarm/swarm_client.ts";
import { startSwarmServer } from "../src/swarm/swarm_server.ts";
import { pushRoute } from "../src/agent/push_route.ts";
import type { Logger } from "../src/platform/log.ts";
import { encodeBase64 } from "../src/platform/encoding.ts";
import { exists } from "../src/platform/fs.ts";
import { mintBootstrapToken } from "../src/gitback/tokens.ts";
import { nextRefStateBody, signRefState } from "../src/gitback/ref_state.ts";
import {
  encodeScopeHeader,
  type Scope,
  signScopeStatement,
} from "../src/gitback/scope_statement.ts";
import { projectId as computeProjectId } from "../src/gitback/project_id.ts";
import { ingestTempDir, readRepoMeta } from "../src/gitback/repo.ts";
import { announcerConfig } from "./support/agent_config.ts";
import { makeFleetPki } from "./support/pki.ts";
import { openPartialPost, rawPost } from "./support/raw_https.ts";
import { waitUntil } from "./support/wait.ts";
import { signedMemberHeader } from "./support/member_binding.ts";
import { gitbackDir, repoOf, tlsOf } from "./support/envoy_files.ts";
import { git as runGit } from "./support/git.ts";
import { seedSigner } from "../src/crypto/signed_object.ts";
import { systemPathsUnder } from "../src/platform/paths.ts";

const quiet: Logger = { info() {}, warn() {}, error() {} };

/** Runs git with `GIT_ENV`; returns its output, trimmed. */
const git = (...args: string[]) => runGit(args);

const encode = (value: unknown) =>
  encodeBase64(new TextEncoder().encode(JSON.stringify(value)));

/**
 * A project founded by a fresh key: its id and the headers of a delivery
 * its founder makes, so a request carrying them reaches the check a case
 * is about.
 */
async function project(handle: string) {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const signer = seedSigner(seed);
  const token = await mintBootstrapToken(signer, handle);
  const id = await computeProjectId(signer.publicKey, handle);
  const chainHeader = encode([token]);
  return {
    id,
    /**
     * Chain, the founder's binding to the envoy named `peer` (the sender),
     * the founder's first signed ref state, with main at `tip`, and the
     * founder's statement of `scope`.
     */
    delivery: async (
      peer: string,
      tip: string,
      scope: Scope = "swarm-wide",
    ) => ({
      "x-vigo-chain": chainHeader,
      "x-vigo-member": signedMemberHeader(seed, peer),
      "x-vigo-scope": encodeScopeHeader(
        await signScopeStatement(signer, { projectId: id, handle, scope }),
      ),
      "x-vigo-refs": encode([
        await signRefState(
          signer,
          nextRefStateBody({
            projectId: id,
            parent: null,
            refs: new Map([["refs/heads/main", tip]]),
            signer: signer.publicKey,
          }),
          [token],
        ),
      ]),
    }),
  };
}

/**
 * A bundle file of one commit (with `files`) on main, made with real git;
 * returns the file and the commit.
 */
async function bundleOf(
  dir: string,
  name: string,
  files: Record<string, string | Uint8Array>,
): Promise<{ file: string; tip: string }> {
  const work = `${dir}/${name}-work`;
  await git("init", "--quiet", "-b", "main", work);
  for (const [path, data] of Object.entries(files)) {
    if (typeof data === "string") {
      Deno.writeTextFileSync(`${work}/${path}`, data);
    } else Deno.writeFileSync(`${work}/${path}`, data);
    await git("-C", work, "add", path);
  }
  await git("-C", work, "commit", "--quiet", "-m", name);
  const file = `${dir}/${name}.bundle`;
  await git("-C", work, "bundle", "create", "--quiet", file, "--all");
  return { file, tip: await git("-C", work, "rev-parse", "HEAD") };
}

const entries = (dir: string) => {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
};

/** Peak resident memory of a process, in bytes (VmHWM). */
function peakRss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/** Children of `pid` whose command line contains every one of `words`. */
function childRunning(pid: number, ...words: string[]): boolean {
  return childRuns(pid, (argv) => {
    const line = argv.join("\0");
    return words.every((w) => line.includes(w));
  });
}

Deno.test({
  name:
    "ingest: fsck on the push route, headers before bodies, private spool, crash-safe scope",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-ingest-" });
    let fleet: Fleet | undefined;
    try {
      fleet = await fleetUp(`${dir}/fleet`, { envoys: 2, start: false });
      const [a, b] = fleet.envoys;
      await startAgent(fleet, b);
      const tls = tlsOf(a);
      const address = { hostname: b.address, port: 1531 };
      const push = (id: string, body: Uint8Array, headers = {}) =>
        swarmRequest(
          tls,
          `https://${b.address}:1531/swarm/gitback/push/${id}`,
          { method: "POST", body, headers },
        );

      await t.step(
        "a bundle whose .gitmodules git's fsck refuses is refused; the detail is only in the log",
        async () => {
          const evil = await project("evil");
          const { file, tip } = await bundleOf(dir, "evil", {
            ".gitmodules":
              '[submodule "../../x"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/pwned\n',
          });
          const response = await push(
            evil.id,
            Deno.readFileSync(file),
            await evil.delivery(a.name, tip),
          );
          assert.equal(response.status, 400);
          const error = response.json<{ error: string }>().error;
          assert.match(error, /fsck/);
          assert.doesNotMatch(
            error,
            /gitmodules|upload-pack|\.\.\/|\/var|\/tmp/,
          );
          await waitUntil(
            "the refusal in the log",
            () =>
              Deno.readTextFileSync(b.log).split("\n").some((l) =>
                l.includes("bundle refused") && l.includes(evil.id) &&
                l.includes("gitmodulesName") && l.includes("gitmodulesUrl")
              ),
          );
          assert.equal(exists(repoOf(b, evil.id)), false);
          assert.deepEqual(
            entries(`${gitbackDir(b)}/projects`).filter((n) =>
              n.includes(evil.id)
            ),
            [],
          );
          assert.deepEqual(
            entries(ingestTempDir(systemPathsUnder(b.root))),
            [],
          );
          // A good first bundle lands, with its scope recorded inside it.
          const good = await project("good");
          const goodBundle = await bundleOf(dir, "good", { f: "x\n" });
          const goodHeaders = await good.delivery(a.name, goodBundle.tip);
          const ok = await push(
            good.id,
            Deno.readFileSync(goodBundle.file),
            await good.delivery(a.name, goodBundle.tip, "members-only"),
          );
          // members-only needs a local member: refused before any body.
          assert.equal(ok.status, 403);
          assert.match(
            ok.json<{ error: string }>().error,
            /is members-only and no puddle on envoy-b is a member/,
          );
          const wide = await push(
            good.id,
            Deno.readFileSync(goodBundle.file),
            goodHeaders,
          );
          assert.equal(wide.status, 200, new TextDecoder().decode(wide.body));
          assert.deepEqual(readRepoMeta(repoOf(b, good.id)), {
            handle: "good",
            scope: "swarm-wide",
          });
        },
      );

      await t.step(
        "three concurrent 300 MB bodies with a garbage chain are refused before they are read",
        async () => {
          const evil = await project("big");
          const total = 300 * 1024 * 1024;
          const results = await Promise.all(
            ["garbage!", "bm90IGpzb24=", "W3sieCI6MX1d"].map((chain) =>
              rawPost(
                tls,
                address,
                `POST /swarm/gitback/push/${evil.id} HTTP/1.1\r\nHost: ${b.address}\r\n` +
                  `Content-Length: ${total}\r\nx-vigo-chain: ${chain}\r\n\r\n`,
                total,
              )
            ),
          );
          // Peak resident memory since the agent started: nothing of the
          // 900 MB was held.
          const peak = peakRss(b.agentPid!);
          assert.ok(
            peak < 300 * 1024 * 1024,
            `the agent peaked at ${Math.round(peak / 1048576)} MiB`,
          );
          for (const result of results) {
            assert.ok(
              result.status === 400 || result.status === 403,
              result.answer,
            );
            assert.ok(
              result.sentBeforeAnswer < total / 2,
              `${result.sentBeforeAnswer} bytes went out before the answer`,
            );
          }
          assert.equal(exists(repoOf(b, evil.id)), false);
        },
      );

      await t.step(
        "the spool directory is private and emptied at start-up",
        async () => {
          await stopAgent(fleet!, b);
          const spool = `${gitbackDir(b)}/tmp`;
          Deno.mkdirSync(`${spool}/body-left.objects/pack`, {
            recursive: true,
          });
          Deno.writeTextFileSync(`${spool}/body-left`, "half a bundle");
          Deno.chmodSync(spool, 0o755);
          await startAgent(fleet!, b);
          assert.deepEqual(entries(spool), []);
          assert.equal(Deno.statSync(spool).mode! & 0o777, 0o700);
          assert.match(
            Deno.readTextFileSync(b.log),
            /removed unfinished deliveries count=2/,
          );
        },
      );

      await t.step(
        "a receiver killed in the middle of a first ingest leaves no repository, or one with its scope",
        async () => {
          const big = new Uint8Array(24 * 1024 * 1024);
          for (let at = 0; at < big.length; at += 65536) {
            crypto.getRandomValues(big.subarray(at, at + 65536));
          }
          const fresh = await project("fresh");
          const { file, tip } = await bundleOf(dir, "fresh", {
            "big.bin": big,
          });
          const freshHeaders = await fresh.delivery(a.name, tip);
          const agentPid = b.agentPid!;
          let settled = false;
          const delivery = push(fresh.id, Deno.readFileSync(file), freshHeaders)
            .catch(() => null).finally(() => settled = true);
          // Kill b while git works on the bundle.
          await waitUntil(
            "b to run git on the delivery",
            () =>
              settled || childRunning(agentPid, "index-pack") ||
              childRunning(agentPid, "bundle", "verify"),
            60_000,
          );
          Deno.kill(agentPid, "SIGKILL");
          await delivery;
          assert.equal(settled, true);
          await startAgent(fleet!, b);
          const repo = repoOf(b, fresh.id);
          if (exists(repo)) {
            assert.deepEqual(readRepoMeta(repo), {
              handle: "fresh",
              scope: "swarm-wide",
            });
          }
          // Nothing half-made is left: no staging repository, no spool.
          assert.deepEqual(
            entries(`${gitbackDir(b)}/projects`).filter((n) =>
              n.includes(fresh.id) && n !== `${fresh.id}.git`
            ),
            [],
          );
          assert.deepEqual(entries(`${gitbackDir(b)}/tmp`), []);
          // The delivery sent again lands, scope and all.
          const again = await push(
            fresh.id,
            Deno.readFileSync(file),
            freshHeaders,
          );
          assert.equal(again.status, 200, new TextDecoder().decode(again.body));
          assert.equal(readRepoMeta(repo)?.handle, "fresh");
        },
      );
    } finally {
      if (fleet) await fleetDown(`${dir}/fleet`);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "ingest quotas: a body over the cap is cut with 413, the shared quota and the per-peer bound hold, no spool file stays",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "vigo-quota-" });
    const pki = await makeFleetPki(dir, [
      { hostname: "envoy-r", ips: ["127.0.0.1"] },
      { hostname: "envoy-p", ips: ["127.0.0.1"] },
      { hostname: "envoy-q", ips: ["127.0.0.1"] },
    ]);
    const config = announcerConfig({
      hostname: "envoy-r",
      root: `${dir}/root`,
      listen: "127.0.0.1",
      port: 0,
      periodSeconds: 1,
    });
    const MiB = 1024 * 1024;
    const server = await startSwarmServer({
      listen: "127.0.0.1",
      port: 0,
      caPem: pki.caPem,
      ...pki.envoys["envoy-r"],
      routes: [
        pushRoute(config, quiet, {
          maxBundleBytes: 4 * MiB,
          quotaBytes: 6 * MiB,
          perPeer: 1,
        }),
      ],
      log: quiet,
    });
    const spool = ingestTempDir(config.paths);
    const address = { hostname: "127.0.0.1", port: server.port };
    const peer = (name: string) => ({ caPem: pki.caPem, ...pki.envoys[name] });
    const open: Deno.TlsConn[] = [];
    try {
      const quota = await project("quota");
      // Valid headers from each peer: every case here is about the body.
      // (No body is a bundle of this commit; none gets that far.)
      const headersOf = {
        "envoy-p": await quota.delivery("envoy-p", "1".repeat(40)),
        "envoy-q": await quota.delivery("envoy-q", "1".repeat(40)),
      };
      const id = quota.id;
      const head = (
        from: keyof typeof headersOf,
        length: number | "chunked",
      ) =>
        `POST /swarm/gitback/push/${id} HTTP/1.1\r\nHost: r\r\n` +
        Object.entries(headersOf[from]).map(([name, value]) =>
          `${name}: ${value}\r\n`
        ).join("") +
        (length === "chunked"
          ? "Transfer-Encoding: chunked\r\n\r\n"
          : `Content-Length: ${length}\r\n\r\n`);

      // Over the cap, streamed with no declared length: cut at 4 MiB.
      const tlsClient = Deno.createHttpClient({
        caCerts: [pki.caPem],
        cert: pki.envoys["envoy-p"].certPem,
        key: pki.envoys["envoy-p"].keyPem,
      });
      try {
        let sent = 0;
        const chunk = new Uint8Array(64 * 1024);
        const response = await fetch(
          `https://127.0.0.1:${server.port}/swarm/gitback/push/${id}`,
          {
            method: "POST",
            client: tlsClient,
            headers: headersOf["envoy-p"],
            body: new ReadableStream<Uint8Array>({
              pull(controller) {
                if (sent >= 64 * MiB) return controller.close();
                sent += chunk.length;
                controller.enqueue(chunk);
              },
            }),
          },
        );
        assert.equal(response.status, 413);
        assert.match((await response.json()).error, /4194304 bytes/);
        assert.ok(sent < 64 * MiB, `${sent} bytes sent`);
      } finally {
        tlsClient.close();
      }
      assert.deepEqual(entries(spool), []);

      // One peer holds a 4 MiB delivery open: 4 of the 6 MiB are taken.
      open.push(
        await openPartialPost(
          peer("envoy-p"),
          address,
          head("envoy-p", 4 * MiB),
          MiB,
        ),
      );
      await waitUntil(
        "the first delivery to be spooling",
        () => entries(spool).length === 1,
      );
      // The same peer may not start another one meanwhile.
      const second = await rawPost(
        peer("envoy-p"),
        address,
        head("envoy-p", MiB),
        MiB,
      );
      assert.equal(second.status, 429, second.answer);
      // Another peer's 4 MiB does not fit in what is left: refused unread.
      // Only the head is sent, so the answer cannot have needed the body.
      const over = await rawPost(
        peer("envoy-q"),
        address,
        head("envoy-q", 4 * MiB),
        0,
      );
      assert.equal(over.status, 413, over.answer);
      assert.match(over.answer, /6291456 bytes this envoy keeps/);
      assert.equal(over.sentBeforeAnswer, 0);
      assert.equal(entries(spool).length, 1);
      // The held delivery hangs up: its file goes, and its quota with it.
      open.pop()!.close();
      await waitUntil("the spool to empty", () => entries(spool).length === 0);
      const fits = await rawPost(
        peer("envoy-q"),
        address,
        head("envoy-q", 2 * MiB),
        2 * MiB,
      );
      // Not a bundle, but it was read and checked: the quota was free.
      assert.equal(fits.status, 400, fits.answer);
      assert.match(fits.answer, /not a valid git bundle/);
      assert.deepEqual(entries(spool), []);
    } finally {
      for (const conn of open) conn.close();
      await server.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
