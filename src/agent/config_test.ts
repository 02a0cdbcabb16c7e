import assert from "node:assert/strict";
import { addressOf, gitbackEnabledHere, loadAgentConfig } from "./config.ts";

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
  });
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
    ["listen: x\n", /`hostname` is required/],
    ["hostname: a\nport: 70000\n", /`port` must be an integer/],
    ["hostname: a\nbogus: 1\n", /unknown key\(s\): bogus/],
    ["hostname: a\nhosts: [1]\n", /`hosts` must be a mapping/],
    ["hostname: a\nreactors: {sweep_s: -1}\n", /reactors.sweep_s/],
    [
      "hostname: a\nswarm: {gitback: {enabled: yes}}\n",
      /swarm.gitback.enabled/,
    ],
    ["hostname: [\n", /not valid YAML/],
  ];
  for (const [text, pattern] of cases) {
    withConfig(
      text,
      (load) =>
        assert.throws(
          load,
          (e: Error) =>
            pattern.test(e.message) && e.message.includes("agent.yaml"),
        ),
    );
  }
});
