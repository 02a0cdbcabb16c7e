import assert from "node:assert/strict";
import {
  addressOf,
  gitbackEnabledHere,
  homeOf,
  loadAgentConfig,
} from "./config.ts";

function withConfig(
  text: string,
  fn: (load: () => ReturnType<typeof loadAgentConfig>) => void,
) {
  const root = Deno.makeTempDirSync();
  try {
    const paths = {
      root,
      etc: `${root}/etc/vigo`,
      varLib: `${root}/var/lib/vigo`,
      varRun: `${root}/var/run/vigo`,
    };
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
    });
    assert.equal(gitbackEnabledHere(config), false);
    assert.equal(addressOf(config, "envoy-b"), "envoy-b");
    assert.deepEqual(config.hosts, {});
    assert.deepEqual(config.homes, {});
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
    const paths = {
      root,
      etc: `${root}/etc/vigo`,
      varLib: `${root}/var/lib/vigo`,
      varRun: `${root}/var/run/vigo`,
    };
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
    ["hostname: a\nreactors: 5\n", /`reactors` must be a mapping/],
    ["hostname: a\nreactors: {sweep_s: -1}\n", /`reactors.sweep_s` must/],
    ["hostname: a\nreactors: {names_s: 'x'}\n", /`reactors.names_s` must/],
    ["hostname: a\nreactors: {sweep: 1}\n", /under `reactors`: sweep/],
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
