/**
 * `vigo config apply`: a usercrate becomes per-user policy files, and a bad
 * usercrate changes nothing.
 */

import assert from "node:assert/strict";
import { vigo } from "./support/cli.ts";

function envFor(base: string) {
  return { PATH: Deno.env.get("PATH")!, HOME: base, VIGO_ROOT: `${base}/root` };
}

const policyDir = (base: string) =>
  `${base}/root/var/lib/vigo/usercrate-policy`;

Deno.test({
  name: "config apply writes one policy file per user",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-config-" });
    try {
      Deno.writeTextFileSync(
        `${base}/dan.vgo`,
        `resources:
- type: user
  username: dan
  home: /home/dan
  shell: /bin/bash
  puddle: true
  gitback: true
  authorized_keys: |
    ssh-ed25519 AAAA operator@laptop
- type: package
  name: git
- type: user
  username: svc
  home: /srv/svc
`,
      );
      const result = await vigo(envFor(base), [
        "config",
        "apply",
        `${base}/dan.vgo`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const dan = JSON.parse(
        Deno.readTextFileSync(`${policyDir(base)}/dan.json`),
      );
      assert.equal(dan.puddle, true);
      assert.equal(dan.gitback, true);
      assert.equal(dan.home, "/home/dan");
      assert.equal(
        Deno.statSync(`${policyDir(base)}/dan.json`).mode! & 0o777,
        0o644,
      );
      const svc = JSON.parse(
        Deno.readTextFileSync(`${policyDir(base)}/svc.json`),
      );
      assert.equal(svc.puddle, false);
      assert.equal(svc.gitback, false);
    } finally {
      Deno.removeSync(base, { recursive: true });
    }
  },
});

Deno.test({
  name: "config apply refuses bad usercrates and writes nothing",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const base = Deno.makeTempDirSync({ prefix: "vigo-config-" });
    try {
      const cases: [string, string | null, RegExp][] = [
        ["missing.vgo", null, /does not exist/],
        ["broken.vgo", "resources: [\n  - {", /not valid YAML/],
        ["empty.vgo", "users: []\n", /no `resources:` list/],
        [
          "badname.vgo",
          "resources:\n- type: user\n  username: Bad Name\n  home: /h\n",
          /valid `username`/,
        ],
        [
          "relhome.vgo",
          "resources:\n- type: user\n  username: dan\n  home: h\n",
          /absolute `home`/,
        ],
        [
          "flag.vgo",
          "resources:\n- type: user\n  username: dan\n  home: /h\n  puddle: yes-please\n",
          /must be true or false/,
        ],
        [
          "twice.vgo",
          "resources:\n- {type: user, username: dan, home: /h}\n- {type: user, username: dan, home: /h}\n",
          /listed twice/,
        ],
      ];
      for (const [name, text, pattern] of cases) {
        if (text !== null) Deno.writeTextFileSync(`${base}/${name}`, text);
        const result = await vigo(envFor(base), [
          "config",
          "apply",
          `${base}/${name}`,
        ]);
        assert.equal(result.code, 1, name);
        assert.match(result.stderr, pattern, name);
        assert.match(result.stderr, /nothing was applied/, name);
      }
      assert.throws(() => Deno.statSync(policyDir(base)));
      const usage = await vigo(envFor(base), ["config", "apply"]);
      assert.equal(usage.code, 2);
    } finally {
      Deno.removeSync(base, { recursive: true });
    }
  },
});
