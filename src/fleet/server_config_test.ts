import assert from "node:assert/strict";
import { isLoopback, loadServerConfig } from "./server_config.ts";
import { systemPathsUnder } from "../platform/paths.ts";

function withConfig(text: string, check: (file: string, root: string) => void) {
  const root = Deno.makeTempDirSync({ prefix: "vigo-server-config-" });
  try {
    const file = `${root}/server.yaml`;
    Deno.writeTextFileSync(file, text);
    check(file, root);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

Deno.test("server.yaml: defaults", () => {
  withConfig("hostname: fleet-1\n", (file, root) => {
    const config = loadServerConfig(systemPathsUnder(root), file);
    assert.equal(config.hostname, "fleet-1");
    assert.equal(config.listen, "0.0.0.0");
    assert.equal(config.port, 1533);
    assert.deepEqual(config.web, { listen: "127.0.0.1", port: 8533 });
    assert.equal(config.checkinSeconds, 60);
    assert.equal(config.tls.key, `${root}/etc/vigo/tls.key`);
  });
});

Deno.test("server.yaml: a web address off loopback is refused", () => {
  for (const listen of ["0.0.0.0", "10.0.0.9", "::", "fleet-1"]) {
    withConfig(
      `hostname: fleet-1\nweb: { listen: "${listen}" }\n`,
      (file, root) => {
        assert.throws(
          () => loadServerConfig(systemPathsUnder(root), file),
          /web.listen. must be a loopback address/,
        );
      },
    );
  }
});

Deno.test("server.yaml: bad values name the key", () => {
  const cases: [string, RegExp][] = [
    ["listen: 0.0.0.0\n", /hostname. is required/],
    ["hostname: a_b\n", /hostname. is required/],
    ["hostname: f\nport: 70000\n", /port. must be an integer/],
    ["hostname: f\nweb: { port: 0 }\n", /web.port. must be an integer/],
    ["hostname: f\ncheckin_s: 0\n", /checkin_s. must be a number/],
    ["hostname: f\nwebb: {}\n", /unknown key\(s\) under .server.yaml.: webb/],
    ["hostname: f\ntls: { crt: x }\n", /unknown key\(s\) under .tls.: crt/],
    ["hostname: [\n", /not valid YAML/],
  ];
  for (const [text, pattern] of cases) {
    withConfig(text, (file, root) => {
      assert.throws(
        () => loadServerConfig(systemPathsUnder(root), file),
        pattern,
        text,
      );
    });
  }
});

Deno.test("server.yaml: a missing file says what to write", () => {
  assert.throws(
    () =>
      loadServerConfig(
        systemPathsUnder("/nonexistent"),
        "/nonexistent/server.yaml",
      ),
    /does not exist; write the server configuration first/,
  );
});

Deno.test("loopback addresses", () => {
  for (const a of ["127.0.0.1", "127.12.3.4", "::1", "localhost"]) {
    assert.ok(isLoopback(a), a);
  }
  for (const a of ["0.0.0.0", "128.0.0.1", "::", "10.1.1.1", "localhost.x"]) {
    assert.ok(!isLoopback(a), a);
  }
});
