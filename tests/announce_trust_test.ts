/**
 * UDP announcements are hints, never trust: what a forged datagram can and
 * cannot do to an agent. Each test forges real datagrams from a socket it
 * opens, against the agent's real announcer, catch-up and swarm routes,
 * with peers that hold real fleet certificates (one of them enrolled and
 * hostile) and a tarpit that accepts connections and never answers.
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { makeFleetPki, writeEnvoyTls } from "./support/pki.ts";
import { announcerConfig } from "./support/agent_config.ts";
import { waitUntil } from "./support/wait.ts";
import {
  PeerIndex,
  readProjectMeta,
  startAnnouncer,
} from "../src/agent/announce.ts";
import { recordBinding } from "../src/agent/puddle_bindings.ts";
import { SIGN_CONTEXTS } from "../src/crypto/signed.ts";
import {
  memberBindingBody,
  memberBindingBytes,
  memberBindingWire,
} from "../src/gitback/member_binding.ts";
import {
  type ScopeStatementWire,
  signScopeStatement,
} from "../src/gitback/scope_statement.ts";
import { catchUpOnce } from "../src/agent/catchup.ts";
import { peersOf } from "../src/agent/fanout.ts";
import { chainsRoute } from "../src/agent/member_adopt.ts";
import { bundleRoute } from "../src/agent/push_route.ts";
import { PEER_DEADLINE_MS } from "../src/swarm/peer_work.ts";
import {
  startSwarmServer,
  type SwarmRoute,
} from "../src/swarm/swarm_server.ts";
import type { AgentConfig } from "../src/envoy/config.ts";
import type { Logger } from "../src/platform/log.ts";
import { adoptFoundedProjects } from "../src/gitback/adopt.ts";
import { projectId as computeProjectId } from "../src/gitback/project_id.ts";
import { writeProjectState } from "../src/gitback/project.ts";
import { ensureBareRepo, listRefs } from "../src/gitback/repo.ts";
import {
  decodeRefState,
  nextRefStateBody,
  signRefState,
  writeRefStates,
} from "../src/gitback/ref_state.ts";
import { mintBootstrapToken } from "../src/gitback/tokens.ts";
import { formatPublicKey, generateSeed } from "../src/crypto/ed25519.ts";
import { runCommand } from "../src/platform/process.ts";
import { seedSigner, type Signer } from "../src/crypto/signed_object.ts";

const quiet: Logger = { info() {}, warn() {}, error() {} };

/** A loopback block of its own (127.A.B.x), and ports, for one test. */
function network() {
  const n = crypto.getRandomValues(new Uint8Array(2));
  const ip = (x: number) => `127.${1 + (n[0] % 250)}.${1 + (n[1] % 250)}.${x}`;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  return { ip, swarmPort: port, announcePort: port + 1 };
}

/** An envoy's configuration rooted in `base`, with its TLS material. */
function envoy(
  base: string,
  name: string,
  address: string,
  net: ReturnType<typeof network>,
  pem: { caPem: string; certPem: string; keyPem: string },
): AgentConfig {
  const config = announcerConfig({
    hostname: name,
    root: `${base}/${name}`,
    listen: address,
    port: net.announcePort,
    periodSeconds: 3600,
  });
  config.port = net.swarmPort;
  writeEnvoyTls(config.paths.etc, pem.caPem, pem);
  config.tls = {
    ca: `${config.paths.etc}/ca.crt`,
    cert: `${config.paths.etc}/tls.crt`,
    key: `${config.paths.etc}/tls.key`,
  };
  Deno.mkdirSync(config.paths.varLib, { recursive: true });
  return config;
}

/** A peer's swarm listener: its own certificate, the given routes. */
function serve(
  config: AgentConfig,
  pem: { caPem: string; certPem: string; keyPem: string },
  routes: SwarmRoute[],
) {
  return startSwarmServer({
    listen: config.listen,
    port: config.port,
    caPem: pem.caPem,
    certPem: pem.certPem,
    keyPem: pem.keyPem,
    routes: [
      {
        method: "GET",
        pattern: "/swarm/health",
        handler: (ctx) => ({
          status: 200,
          json: { hostname: config.hostname, peer: ctx.peer.subject },
        }),
      },
      ...routes,
    ],
    log: quiet,
  });
}

/** A UDP socket bound at `address` on the announcement port. */
async function udpAt(address: string, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(port, address, () => r()));
  return socket;
}

function send(socket: dgram.Socket, lines: string[], to: string, port: number) {
  socket.send(new TextEncoder().encode(lines.join("\n") + "\n"), port, to);
}

/**
 * A bare repository with one commit, held by `config`'s envoy. With
 * `founder`, its refs are in a state the founder signed and its record has
 * the founder's scope statement `statement`; without, neither.
 */
async function holdProject(
  config: AgentConfig,
  projectId: string,
  handle: string,
  base: string,
  founder?: {
    signer: Signer;
    chain: unknown[];
    statement: ScopeStatementWire;
  },
): Promise<void> {
  const repo = await ensureBareRepo(config.paths, projectId);
  const work = `${base}/work-${config.hostname}-${handle}`;
  const env = {
    GIT_AUTHOR_NAME: "t",
    GIT_AUTHOR_EMAIL: "t@example.invalid",
    GIT_COMMITTER_NAME: "t",
    GIT_COMMITTER_EMAIL: "t@example.invalid",
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: base,
  };
  for (
    const args of [
      ["init", "--quiet", "-b", "main", work],
      ["-C", work, "commit", "--quiet", "--allow-empty", "-m", "one"],
      ["-C", work, "push", "--quiet", repo, "main"],
    ]
  ) {
    const out = await runCommand("git", { args, env, clearEnv: true });
    assert.equal(out.code, 0, out.stderr);
  }
  if (founder) {
    const state = await signRefState(
      founder.signer,
      nextRefStateBody({
        projectId,
        parent: null,
        refs: await listRefs(repo),
        signer: founder.signer.publicKey,
      }),
      founder.chain,
    );
    writeRefStates(repo, { current: decodeRefState(state), recent: [] });
  }
  const meta = `${config.paths.varLib}/swarm/gitback/meta`;
  Deno.mkdirSync(meta, { recursive: true });
  Deno.writeTextFileSync(
    `${meta}/${projectId}.json`,
    JSON.stringify({
      handle,
      scope: "swarm-wide",
      scope_statement: founder?.statement ?? null,
    }),
  );
}

Deno.test({
  name:
    "a forged GITBACKHOST line never captures or moves a host name; only that host's certificate binds it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-trust-" });
    const net = network();
    const pki = await makeFleetPki(base, [
      { hostname: "envoy-a", ips: [net.ip(1)] },
      // The attacker is an enrolled envoy with a real fleet certificate.
      { hostname: "envoy-x", ips: [net.ip(2)] },
      { hostname: "envoy-b", ips: [net.ip(3)] },
      { hostname: "envoy-d", ips: [net.ip(4)] },
    ]);
    const pem = (name: string) => ({ caPem: pki.caPem, ...pki.envoys[name] });
    const a = envoy(base, "envoy-a", net.ip(1), net, pem("envoy-a"));
    const x = envoy(base, "envoy-x", net.ip(2), net, pem("envoy-x"));
    const d = envoy(base, "envoy-d", net.ip(4), net, pem("envoy-d"));
    a.hosts = { "envoy-b": net.ip(3) };
    const servers = [
      await serve(x, pem("envoy-x"), []),
      await serve(d, pem("envoy-d"), []),
    ];
    const index = new PeerIndex(60_000);
    const announcer = await startAnnouncer(a, quiet, index);
    const forger = await udpAt(net.ip(2), net.announcePort);
    const real = await udpAt(net.ip(4), net.announcePort);
    const ids = ["1", "2", "3", "4", "5", "6"].map((c) => c.repeat(64));
    /** A configured host's line last: once indexed, the datagram was read. */
    const read = async (socket: dgram.Socket, lines: string[], id: string) => {
      send(
        socket,
        [
          ...lines,
          `GITBACKPROJECT:envoy-b:${id}:s:swarm-wide`,
        ],
        a.listen,
        net.announcePort,
      );
      await waitUntil("the datagram read", () => index.holders(id).length > 0);
    };
    try {
      // The attacker names a host the agent does not know yet, and a
      // configured one, from its own address.
      await read(forger, [
        "GITBACKHOST:envoy-d",
        `GITBACKPROJECT:envoy-d:${ids[0]}:evil:swarm-wide`,
        "GITBACKHOST:envoy-b",
      ], ids[1]);
      assert.deepEqual(a.hosts, { "envoy-b": net.ip(3) });
      assert.deepEqual(index.holders(ids[0]), []);
      // The real envoy-d speaks; its certificate names it, so it is bound.
      send(
        real,
        [
          "GITBACKHOST:envoy-d",
          `GITBACKPROJECT:envoy-d:${ids[2]}:work:swarm-wide`,
        ],
        a.listen,
        net.announcePort,
      );
      await waitUntil(
        "envoy-d confirmed at its own address",
        () => a.hosts["envoy-d"] === net.ip(4),
      );
      // Forged again, now that envoy-d is known: nothing moves.
      await read(forger, [
        "GITBACKHOST:envoy-d",
        `GITBACKPROJECT:envoy-d:${ids[3]}:evil:swarm-wide`,
        "GITBACKHOST:envoy-b",
      ], ids[4]);
      assert.deepEqual(a.hosts, {
        "envoy-b": net.ip(3),
        "envoy-d": net.ip(4),
      });
      assert.deepEqual(index.holders(ids[3]), []);
      // Lines from envoy-d's confirmed address count.
      send(
        real,
        [`GITBACKPROJECT:envoy-d:${ids[5]}:work:swarm-wide`],
        a.listen,
        net.announcePort,
      );
      await waitUntil("envoy-d's line", () => index.holders(ids[5]).length > 0);
      assert.deepEqual(
        index.all().map((h) => h.host).sort(),
        ["envoy-b", "envoy-b", "envoy-d"],
      );
    } finally {
      announcer.stop();
      forger.close();
      real.close();
      for (const server of servers) await server.close();
      Deno.removeSync(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a flood of forged hosts and projects keeps the index bounded and adds no work per tick",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-flood-trust-" });
    const net = network();
    const pki = await makeFleetPki(base, [
      { hostname: "envoy-a", ips: [net.ip(1)] },
      { hostname: "envoy-b", ips: [net.ip(3)] },
    ]);
    const pem = (name: string) => ({ caPem: pki.caPem, ...pki.envoys[name] });
    const a = envoy(base, "envoy-a", net.ip(1), net, pem("envoy-a"));
    const b = envoy(base, "envoy-b", net.ip(3), net, pem("envoy-b"));
    a.hosts = { "envoy-b": net.ip(3) };
    let asked = 0;
    const chains = chainsRoute(b);
    const server = await serve(b, pem("envoy-b"), [{
      ...chains,
      handler: (ctx) => {
        asked++;
        return chains.handler(ctx);
      },
    }]);
    const index = new PeerIndex(600_000);
    const announcer = await startAnnouncer(a, quiet, index);
    const forger = await udpAt(net.ip(2), net.announcePort);
    const hex = (n: number) => n.toString(16).padStart(64, "0");
    try {
      // 2000 forged hosts with 3 projects each, and 10 000 forged projects
      // under the configured host's name, in datagrams of 400 lines.
      const lines: string[] = [];
      for (let h = 0; h < 2000; h++) {
        lines.push(`GITBACKHOST:forged-${h}`);
        for (let p = 0; p < 3; p++) {
          lines.push(
            `GITBACKPROJECT:forged-${h}:${hex(h * 3 + p)}:f:swarm-wide`,
          );
        }
      }
      for (let p = 0; p < 10_000; p++) {
        lines.push(`GITBACKPROJECT:envoy-b:${hex(100_000 + p)}:f:swarm-wide`);
      }
      for (let at = 0, n = 0; at < lines.length; at += 400, n++) {
        const sentinel = hex(900_000 + n);
        send(
          forger,
          [
            ...lines.slice(at, at + 400),
            `GITBACKPROJECT:envoy-b:${sentinel}:s:swarm-wide`,
          ],
          a.listen,
          net.announcePort,
        );
        await waitUntil(
          `datagram ${n} read`,
          () => index.holders(sentinel).length > 0,
        );
      }
      // No forged name became a host; the index holds what one host may.
      assert.deepEqual(a.hosts, { "envoy-b": net.ip(3) });
      const entries = index.all();
      assert.equal(entries.length, 4096, "one host's projects, at most");
      assert.deepEqual([...new Set(entries.map((e) => e.host))], ["envoy-b"]);
      assert.deepEqual(announcer.hosts.size(), {
        configured: 1,
        learned: 0,
        candidates: 256,
      });
      // Fan-out and gossip go only to hosts the agent believes.
      assert.deepEqual(peersOf(a, hex(0), index), ["envoy-b"]);
      assert.deepEqual(peersOf(a, hex(100_000 + 9_999), index), ["envoy-b"]);
      // A catch-up tick asks a bounded number of questions, and only there.
      await catchUpOnce(a, quiet, index);
      assert.ok(asked > 0 && asked <= 64, `${asked} questions in one tick`);
    } finally {
      announcer.stop();
      forger.close();
      await server.close();
      Deno.removeSync(base, { recursive: true });
    }
  },
});

/** A local user on `config`'s envoy holding `projectId` with `chain`. */
function localHolder(
  config: AgentConfig,
  base: string,
  project: { id: string; handle: string; founder: string; chain: unknown[] },
) {
  const home = `${base}/home-${config.hostname}`;
  Deno.mkdirSync(home, { recursive: true, mode: 0o755 });
  // A name passwd lacks: its uid is the home's owner (whoever runs this).
  config.homes = { "vigo-trust-user": home };
  writeProjectState(`${home}/.vigo-gitback`, {
    version: 1,
    project_id: project.id,
    handle: project.handle,
    founder: project.founder,
    scope: "swarm-wide",
    members: [project.founder],
    cross_subnet_members: [],
    created_at: new Date().toISOString(),
    tombstoned_at: null,
  }, { version: 1, chain: project.chain });
  return home;
}

Deno.test({
  name:
    "a tarpit peer holds catch-up from a good peer no longer than one deadline",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-tarpit-" });
    const net = network();
    const pki = await makeFleetPki(base, [
      { hostname: "envoy-a", ips: [net.ip(1)] },
      { hostname: "envoy-g", ips: [net.ip(7)] },
    ]);
    const pem = (name: string) => ({ caPem: pki.caPem, ...pki.envoys[name] });
    const a = envoy(base, "envoy-a", net.ip(1), net, pem("envoy-a"));
    const g = envoy(base, "envoy-g", net.ip(7), net, pem("envoy-g"));
    a.hosts = { "envoy-t": net.ip(6), "envoy-g": net.ip(7) };
    const founder = seedSigner(generateSeed());
    const id = await computeProjectId(founder.publicKey, "work");
    const chain = [await mintBootstrapToken(founder, "work")];
    const statement = await signScopeStatement(founder, {
      projectId: id,
      handle: "work",
      scope: "swarm-wide",
    });
    await holdProject(g, id, "work", base, {
      signer: founder,
      chain,
      statement,
    });
    const home = localHolder(a, base, {
      id,
      handle: "work",
      founder: formatPublicKey(founder.publicKey),
      chain,
    });
    // The founder unlocked on envoy-a: holders serve only an envoy where
    // the chain's subject lives.
    const binding = memberBindingBody({
      member: founder.publicKey,
      envoy: "envoy-a",
    });
    recordBinding(a.paths, {
      uid: Deno.statSync(home).uid!,
      user: "vigo-trust-user",
      pubkey: formatPublicKey(founder.publicKey),
      statement: memberBindingWire(
        binding,
        await founder.sign(
          SIGN_CONTEXTS.puddleEnvoyBinding,
          memberBindingBytes(binding),
        ),
      ),
    });
    const server = await serve(g, pem("envoy-g"), [
      bundleRoute(g),
      chainsRoute(g),
    ]);
    // The tarpit: accepts every connection and never says a word.
    const tarpit = Deno.listen({ hostname: net.ip(6), port: net.swarmPort });
    const held: Deno.Conn[] = [];
    (async () => {
      for await (const conn of tarpit) held.push(conn);
    })().catch(() => {});
    const index = new PeerIndex(600_000);
    // The tarpit is heard first, so it is asked first.
    index.record({ host: "envoy-t", projectId: id, handle: "work" });
    index.record({ host: "envoy-g", projectId: id, handle: "work" });
    try {
      const started = Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const pulled = await Promise.race([
        catchUpOnce(a, quiet, index),
        new Promise<string>((resolve) =>
          timer = setTimeout(() => resolve("still waiting"), 40_000)
        ),
      ]);
      clearTimeout(timer);
      const elapsed = Date.now() - started;
      assert.equal(pulled, id);
      // One deadline for the tarpit, then the good peer's bundle (git on a
      // busy machine gets a generous margin; without deadlines it was 120 s
      // per tarpit request).
      assert.ok(
        elapsed < PEER_DEADLINE_MS + 15_000,
        `catch-up took ${elapsed} ms`,
      );
      assert.ok(
        Deno.statSync(
          `${a.paths.varLib}/swarm/gitback/projects/${id}.git/HEAD`,
        ).isFile,
      );
      // With the founder's statement the good peer sent, verified here.
      assert.deepEqual(readProjectMeta(a, id), {
        handle: "work",
        scope: "swarm-wide",
        statement,
      });
    } finally {
      tarpit.close();
      for (const conn of held) conn.close();
      await server.close();
      Deno.removeSync(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a forged project line never reaches gitback-announced.json, and unlock adopts nothing from it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-forged-project-" });
    const net = network();
    const pki = await makeFleetPki(base, [
      { hostname: "envoy-a", ips: [net.ip(1)] },
      { hostname: "envoy-b", ips: [net.ip(3)] },
    ]);
    const pem = (name: string) => ({ caPem: pki.caPem, ...pki.envoys[name] });
    const a = envoy(base, "envoy-a", net.ip(1), net, pem("envoy-a"));
    const b = envoy(base, "envoy-b", net.ip(3), net, pem("envoy-b"));
    a.hosts = { "envoy-b": net.ip(3) };
    b.hosts = { "envoy-a": net.ip(1) };
    // The victim's key is public; the attacker computes ids from it.
    const victim = seedSigner(generateSeed());
    const work = await computeProjectId(victim.publicKey, "work");
    const evilB = await computeProjectId(victim.publicKey, "evil-b");
    const evilZ = await computeProjectId(victim.publicKey, "evil-z");
    await holdProject(b, work, "work", base);
    const server = await serve(b, pem("envoy-b"), [chainsRoute(b)]);
    const index = new PeerIndex(600_000);
    const announcerA = await startAnnouncer(a, quiet, index);
    // envoy-b announces what it really holds.
    const announcerB = await startAnnouncer(b, quiet, new PeerIndex(60_000));
    const forger = await udpAt(net.ip(2), net.announcePort);
    try {
      await waitUntil(
        "envoy-b's announcement",
        () => index.holders(work).length > 0,
      );
      // Forged: a project under the configured host's name, and a host of
      // the attacker's own with a project, each with the victim's handles.
      send(
        forger,
        [
          "GITBACKHOST:envoy-z",
          `GITBACKPROJECT:envoy-z:${evilZ}:evil-z:swarm-wide`,
          `GITBACKPROJECT:envoy-b:${evilB}:evil-b:members-only`,
        ],
        a.listen,
        net.announcePort,
      );
      await waitUntil(
        "the forged line heard",
        () => index.holders(evilB).length > 0,
      );
      await catchUpOnce(a, quiet, index);
      const path = `${a.paths.varLib}/swarm/gitback/gitback-announced.json`;
      const text = Deno.readTextFileSync(path);
      assert.ok(!text.includes(evilB) && !text.includes(evilZ), text);
      const cache = JSON.parse(text);
      assert.equal(cache.length, 1, text);
      assert.deepEqual(Object.keys(cache[0]).sort(), [
        "confirmed_at",
        "handle",
        "host",
        "project_id",
        "scope",
        "scope_statement",
      ]);
      assert.equal(cache[0].project_id, work);
      assert.equal(cache[0].handle, "work");
      assert.equal(cache[0].host, "envoy-b");
      // envoy-b's record names swarm-wide but carries no statement by the
      // founder: the project is members-only.
      assert.equal(cache[0].scope, "members-only");
      assert.equal(cache[0].scope_statement, null);
      // What `puddle unlock` does with it, as the victim.
      const gitbackDir = `${base}/victim-gitback`;
      Deno.mkdirSync(gitbackDir, { mode: 0o700 });
      assert.deepEqual(
        await adoptFoundedProjects(gitbackDir, path, victim),
        ["work"],
      );
      assert.deepEqual([...Deno.readDirSync(gitbackDir)].map((e) => e.name), [
        work,
      ]);
    } finally {
      announcerA.stop();
      announcerB.stop();
      forger.close();
      await server.close();
      Deno.removeSync(base, { recursive: true });
    }
  },
});
