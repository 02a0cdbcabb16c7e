import assert from "node:assert/strict";
import { parseUsercrate, readPolicy, writePolicies } from "./policy.ts";

Deno.test("parseUsercrate reads user resources and defaults flags to false", () => {
  const users = parseUsercrate(
    "resources:\n- type: user\n  username: dan\n  home: /home/dan\n  puddle: true\n- type: file\n  path: /x\n",
    "t.vgo",
  );
  assert.deepEqual(users, [{
    user: "dan",
    home: "/home/dan",
    puddle: true,
    gitback: false,
  }]);
});

Deno.test("policies round-trip and unknown users have none", () => {
  const root = Deno.makeTempDirSync();
  try {
    const paths = {
      root,
      etc: `${root}/etc/vigo`,
      varLib: `${root}/var/lib/vigo`,
      varRun: `${root}/var/run/vigo`,
    };
    writePolicies(paths, [{
      user: "dan",
      home: "/home/dan",
      puddle: true,
      gitback: true,
    }], "t.vgo");
    const policy = readPolicy(paths, "dan");
    assert.equal(policy?.puddle, true);
    assert.equal(policy?.source, "t.vgo");
    assert.equal(readPolicy(paths, "eve"), undefined);
    assert.equal(readPolicy(paths, "../etc/passwd"), undefined);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
