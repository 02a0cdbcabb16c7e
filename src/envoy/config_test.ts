import assert from "node:assert/strict";
import {
  addressOf,
  gitbackEnabledHere,
  homeOf,
  loadAgentConfig,
} from "./config.ts";
import { managedHomes } from "./user_homes.ts";
import { listUsers } from "../platform/users.ts";
import { systemPathsUnder } from "../platform/paths.ts";

function withConfig(
  text: string,
  fn: (load: () => ReturnType<typeof loadAgentConfig>) => void,
) {
  const root = Deno.makeTempDirSync();
  try {
    const paths = systemPathsUnder(root);
    Deno.mkdirSync(paths.etc, { recursive: true });
    Deno.writeTextFileSync(`${paths.etc}/agent.yaml`, text);
    fn(() => loadAgentConfig(paths));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

Deno.test("agent.yaml defaults", () => {
  withConfig("hostname: envoy-a\n", (load) => {
    const config = load();
    assert.equal(config.port, 1531);
    assert.equal(config.listen, "0.0.0.0");
    assert.match(config.tls.key, /etc\/vigo\/tls\.key$/);
    assert.deepEqual(config.reactors, {
      sweepSeconds: 60,
      catchupSeconds: 45,
      gossipSeconds: 300,
      namesSeconds: 900,
      checkinSeconds: 60,
    });
    assert.equal(config.server, null);
    assert.equal(gitbackEnabledHere(config), false);
    assert.equal(addressOf(config, "envoy-b"), "envoy-b");
    assert.deepEqual(config.hosts, {});
    assert.deepEqual(config.homes, {});
    assert.equal(config.managedUsers, "passwd");
    assert.deepEqual(config.gitback, { enabled: [] });
    assert.equal(config.tls.ca, `${config.paths.etc}/ca.crt`);
    assert.equal(config.tls.cert, `${config.paths.etc}/tls.crt`);
    assert.equal(config.tls.key, `${config.paths.etc}/tls.key`);
    assert.equal(homeOf(config, "root"), "/root");
    assert.equal(homeOf(config, "no-such-user-here"), undefined);
  });
});

Deno.test("agent.yaml tls paths resolve against etc; explicit files load", () => {
  withConfig(
    "hostname: envoy-a\ntls: {ca: pki/ca.pem, cert: /srv/tls.crt}\n",
    (load) => {
      const config = load();
      assert.equal(config.tls.ca, `${config.paths.etc}/pki/ca.pem`);
      assert.equal(config.tls.cert, "/srv/tls.crt");
      assert.equal(config.tls.key, `${config.paths.etc}/tls.key`);
      const other = `${config.paths.root}/other.yaml`;
      Deno.writeTextFileSync(other, "hostname: envoy-z\n");
      assert.equal(loadAgentConfig(config.paths, other).hostname, "envoy-z");
    },
  );
});

Deno.test("gitback host patterns are globs on the whole name", () => {
  for (
    const [patterns, expected] of [
      ["['*']", true],
      ["['envoy-*']", true],
      ["['envoy-?']", true],
      ["['envoy']", false],
      ["['*-b', 'other']", false],
      ["['e.voy-a']", false],
    ] as const
  ) {
    withConfig(
      `hostname: envoy-a\nswarm: {gitback: {enabled: ${patterns}}}\n`,
      (load) => assert.equal(gitbackEnabledHere(load()), expected, patterns),
    );
  }
});

Deno.test("a missing or oversized agent.yaml is a clear error", () => {
  const root = Deno.makeTempDirSync();
  try {
    const paths = systemPathsUnder(root);
    assert.throws(
      () => loadAgentConfig(paths),
      /agent\.yaml does not exist; write the agent configuration first/,
    );
    Deno.mkdirSync(paths.etc, { recursive: true });
    Deno.writeTextFileSync(
      `${paths.etc}/agent.yaml`,
      `hostname: a\n#${"x".repeat(70_000)}\n`,
    );
    assert.throws(() => loadAgentConfig(paths), /more than the 65536 allowed/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("agent.yaml full form", () => {
  withConfig(
    "hostname: envoy-a\nlisten: 127.0.0.2\nport: 1600\nhosts: {envoy-b: 127.0.0.3}\n" +
      "swarm: {gitback: {enabled: ['envoy-*']}}\nhomes: {dan: /tmp/dan}\nreactors: {sweep_s: 1, gossip_s: 2.5}\n",
    (load) => {
      const config = load();
      assert.equal(config.port, 1600);
      assert.equal(addressOf(config, "envoy-b"), "127.0.0.3");
      assert.equal(gitbackEnabledHere(config), true);
      assert.equal(config.homes.dan, "/tmp/dan");
      assert.equal(config.reactors.sweepSeconds, 1);
      assert.equal(config.reactors.gossipSeconds, 2.5);
    },
  );
});

Deno.test("agent.yaml server: a host name, reached through hosts:, port 1533 by default", () => {
  withConfig(
    "hostname: envoy-a\nhosts: {fleet-1: 127.0.0.9}\nserver: {host: fleet-1}\n" +
      "reactors: {checkin_s: 0.5}\n",
    (load) => {
      const config = load();
      assert.deepEqual(config.server, { host: "fleet-1", port: 1533 });
      assert.equal(addressOf(config, config.server!.host), "127.0.0.9");
      assert.equal(config.reactors.checkinSeconds, 0.5);
    },
  );
  withConfig(
    "hostname: envoy-a\nserver:\n  host: fleet.example\n  port: 1600\n",
    (load) => {
      const config = load();
      assert.deepEqual(config.server, { host: "fleet.example", port: 1600 });
      // No hosts: entry: the name itself is the address.
      assert.equal(addressOf(config, "fleet.example"), "fleet.example");
    },
  );
  withConfig("hostname: envoy-a\nserver:\n", (load) => {
    assert.equal(load().server, null);
  });
});

Deno.test("managed_users: homes acts only on the users agent.yaml names", () => {
  const base = Deno.makeTempDirSync();
  try {
    const owner = Deno.statSync(base).uid!;
    withConfig(
      `hostname: a\nmanaged_users: homes\nhomes:\n  root: ${base}/r\n` +
        `  vigo-ghost: ${base}\n  vigo-gone: ${base}/missing\n`,
      (load) => {
        const config = load();
        assert.equal(config.managedUsers, "homes");
        // root from passwd; the unknown user by its home's owner; an entry
        // with neither a passwd uid nor a home is left out.
        assert.deepEqual(managedHomes(config), [
          { user: "root", uid: 0, home: `${base}/r` },
          { user: "vigo-ghost", uid: owner, home: base },
        ]);
        assert.equal(homeOf(config, "root"), `${base}/r`);
        assert.equal(homeOf(config, "vigo-ghost"), base);
        const unlisted = listUsers().find((u) => u.name !== "root");
        if (unlisted) assert.equal(homeOf(config, unlisted.name), undefined);
        assert.equal(homeOf(config, "constructor"), undefined);
      },
    );
    withConfig("hostname: a\nmanaged_users: homes\n", (load) => {
      const config = load();
      assert.deepEqual(managedHomes(config), []);
      assert.equal(homeOf(config, "root"), undefined);
    });
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("managed_users: passwd (the default) acts on passwd, homes winning", () => {
  const base = Deno.makeTempDirSync();
  try {
    const passwd = listUsers().filter((u) =>
      u.home && u.home !== "/" && u.home !== "/nonexistent"
    );
    for (const mode of ["", "managed_users: passwd\n"]) {
      withConfig(
        `hostname: a\n${mode}homes: {root: ${base}/r, vigo-ghost: ${base}}\n`,
        (load) => {
          const config = load();
          assert.equal(config.managedUsers, "passwd");
          const managed = managedHomes(config);
          const byUser = new Map(managed.map((h) => [h.user, h]));
          assert.equal(byUser.size, managed.length, "one entry per user");
          for (const u of passwd.filter((u) => u.name !== "root")) {
            assert.deepEqual(byUser.get(u.name), {
              user: u.name,
              uid: u.uid,
              home: u.home,
            });
          }
          assert.deepEqual(byUser.get("root"), {
            user: "root",
            uid: 0,
            home: `${base}/r`,
          });
          assert.equal(byUser.get("vigo-ghost")?.home, base);
          assert.equal(homeOf(config, "root"), `${base}/r`);
          const other = passwd.find((u) => u.name !== "root");
          if (other) assert.equal(homeOf(config, other.name), other.home);
        },
      );
    }
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("agent.yaml errors name the key and the file", () => {
  const cases: [string, RegExp][] = [
    ["", /must be a YAML mapping/],
    ["- a\n", /must be a YAML mapping/],
    ["listen: 1.2.3.4\n", /`hostname` is required/],
    ["hostname: bad host\n", /`hostname` is required and must be a host name/],
    ["hostname: a\nlisten: 7\n", /`listen` must be an IP address/],
    ["hostname: a\nlisten: 'no way'\n", /`listen` must be an IP address/],
    ["hostname: a\nport: 70000\n", /`port` must be an integer/],
    ["hostname: a\nport: '1531'\n", /`port` must be an integer/],
    ["hostname: a\nbogus: 1\ntypo: 2\n", /unknown key\(s\): bogus, typo/],
    ["hostname: a\ntls: /etc/x\n", /`tls` must be a mapping/],
    ["hostname: a\ntls: {certificate: x}\n", /under `tls`: certificate/],
    ["hostname: a\ntls: {key: 5}\n", /`tls.key` must be a file path/],
    ["hostname: a\nhosts: [1]\n", /`hosts` must be a mapping/],
    ["hostname: a\nhosts: {b: 'x y'}\n", /`hosts.b` must be an IP address/],
    ["hostname: a\nhosts: {'b c': 1.2.3.4}\n", /`hosts`: "b c" is not/],
    ["hostname: a\nhomes: {dan: rel/dir}\n", /`homes.dan` must be an absolute/],
    [
      "hostname: a\nmanaged_users: all\n",
      /`managed_users` must be `passwd`.* not "all"/,
    ],
    ["hostname: a\nmanaged_users: Homes\n", /`managed_users` must be/],
    ["hostname: a\nmanaged_users: [homes]\n", /`managed_users` must be/],
    ["hostname: a\nmanaged_users: true\n", /`managed_users` must be/],
    ["hostname: a\nmanaged_users:\n", /`managed_users` must be.* not null/],
    ["hostname: a\nreactors: 5\n", /`reactors` must be a mapping/],
    ["hostname: a\nreactors: {sweep_s: -1}\n", /`reactors.sweep_s` must/],
    ["hostname: a\nreactors: {names_s: 'x'}\n", /`reactors.names_s` must/],
    ["hostname: a\nreactors: {sweep: 1}\n", /under `reactors`: sweep/],
    ["hostname: a\nreactors: {checkin_s: 0}\n", /`reactors.checkin_s` must/],
    [
      "hostname: a\nreactors: {checkin_s: 86401}\n",
      /`reactors.checkin_s` must/,
    ],
    ["hostname: a\nreactors: {checkin: 60}\n", /under `reactors`: checkin/],
    ["hostname: a\nserver: fleet-1\n", /`server` must be a mapping/],
    ["hostname: a\nserver: [fleet-1]\n", /`server` must be a mapping/],
    ["hostname: a\nserver: {}\n", /`server.host` is required/],
    ["hostname: a\nserver: {port: 1533}\n", /`server.host` is required/],
    ["hostname: a\nserver: {host: 'bad host'}\n", /`server.host`/],
    ["hostname: a\nserver: {host: 7}\n", /`server.host`/],
    ["hostname: a\nserver: {host: ../x}\n", /`server.host`/],
    [
      "hostname: a\nserver: {host: f, port: 0}\n",
      /`server.port` must be an integer/,
    ],
    [
      "hostname: a\nserver: {host: f, port: '1533'}\n",
      /`server.port` must be an integer/,
    ],
    [
      "hostname: a\nserver: {host: f, address: 1.2.3.4}\n",
      /under `server`: address/,
    ],
    ["hostname: a\nswarm: 1\n", /`swarm` must be a mapping/],
    ["hostname: a\nswarm: {puddle: {}}\n", /under `swarm`: puddle/],
    [
      "hostname: a\nswarm: {gitback: {enabled: yes}}\n",
      /swarm.gitback.enabled/,
    ],
    ["hostname: a\nswarm: {gitback: {enabled: [1]}}\n", /swarm.gitback/],
    ["hostname: a\nannounce: {group: 10.0.0.1}\n", /`announce.group`/],
    ["hostname: a\nannounce: {port: 0}\n", /`announce.port` must/],
    ["hostname: [\n", /not valid YAML/],
    ["hostname: a\nhostname: b\n", /not valid YAML/],
  ];
  for (const [text, pattern] of cases) {
    withConfig(
      text,
      (load) =>
        assert.throws(
          load,
          (e: Error) => {
            assert.match(e.message, pattern, JSON.stringify(text));
            assert.match(e.message, /agent\.yaml/);
            return true;
          },
        ),
    );
  }
});
