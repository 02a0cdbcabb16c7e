import assert from "node:assert/strict";
import {
  parsePublishedPolicy,
  parseUsercrate,
  publishedPolicy,
  readPolicy,
  writePolicies,
} from "./policy.ts";
import { systemPathsUnder } from "../platform/paths.ts";

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
    const paths = systemPathsUnder(root);
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

Deno.test("a published policy round-trips and its digest pins the list", () => {
  const policy = publishedPolicy([
    { user: "dan", home: "/home/dan", puddle: true, gitback: false },
    { user: "ann", home: "/home/ann", puddle: true, gitback: true },
  ], "2026-11-30T00:00:00.000Z");
  assert.deepEqual(policy.users.map((u) => u.user), ["ann", "dan"]);
  const bytes = (value: unknown) =>
    new TextEncoder().encode(JSON.stringify(value));
  assert.deepEqual(parsePublishedPolicy(bytes(policy)), policy);
  const tampered = structuredClone(policy);
  tampered.users[1].gitback = true;
  assert.throws(
    () => parsePublishedPolicy(bytes(tampered)),
    /digest does not match/,
  );
  const cases: [unknown, RegExp][] = [
    [{ ...policy, version: 2 }, /malformed/],
    [{ ...policy, users: [{ ...policy.users[0], user: "Root!" }] }, /user 1/],
    [{ ...policy, users: [{ ...policy.users[0], home: "rel" }] }, /user 1/],
    [{ ...policy, users: [{ ...policy.users[0], extra: 1 }] }, /user 1/],
    [{ ...policy, users: [policy.users[0], policy.users[0]] }, /twice/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(() => parsePublishedPolicy(bytes(value)), pattern);
  }
  assert.throws(
    () => parsePublishedPolicy(new Uint8Array([0xff])),
    /not UTF-8 JSON/,
  );
  assert.throws(
    () => parsePublishedPolicy(new Uint8Array(3 * 1024 * 1024)),
    /more than/,
  );
});
