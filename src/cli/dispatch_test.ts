import assert from "node:assert/strict";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { CliError, UsageError } from "./errors.ts";

/** Runs `dispatch` with console.log captured. */
async function run(
  group: VerbGroup,
  args: string[],
): Promise<{ code: number; stdout: string[] }> {
  const stdout: string[] = [];
  const log = console.log;
  console.log = (line: unknown) => stdout.push(String(line));
  try {
    return { code: await dispatch(group, args), stdout };
  } finally {
    console.log = log;
  }
}

/** A group that records what ran; its gate refuses when `open` is false. */
function fixture(open = true) {
  const ran: string[] = [];
  const child: VerbGroup = {
    command: "tool sub",
    noun: "sub verb",
    usage: "tool sub <verb>",
    verbs: {
      go: (args) => {
        ran.push(`sub go ${args.join(" ")}`);
        return 0;
      },
    },
    gate: () => {
      ran.push("sub gate");
    },
  };
  const group: VerbGroup = {
    command: "tool",
    noun: "tool verb",
    usage: "tool <verb>",
    verbs: {
      run: async (args) => {
        ran.push(`run ${args.join(" ")}`);
        return await Promise.resolve(3);
      },
      sub: child,
    },
    hidden: {
      _inner: () => {
        ran.push("inner");
        return 0;
      },
    },
    gate: () => {
      ran.push("gate");
      if (!open) throw new CliError("not enabled.");
    },
  };
  return { group, ran };
}

Deno.test("help, --help and -h print the usage and exit 0 without passing the gate", async () => {
  for (const word of ["help", "--help", "-h"]) {
    const { group, ran } = fixture(false);
    assert.deepEqual(await run(group, [word, "extra"]), {
      code: 0,
      stdout: ["tool <verb>"],
    });
    assert.deepEqual(await run(group, ["sub", word]), {
      code: 0,
      stdout: ["tool sub <verb>"],
    });
    assert.deepEqual(ran, []);
  }
});

Deno.test("no verb prints the usage and exits 2, or is the group's usage error", async () => {
  const { group, ran } = fixture(false);
  assert.deepEqual(await run(group, []), { code: 2, stdout: ["tool <verb>"] });
  assert.deepEqual(ran, []);
  await assert.rejects(
    run({ ...group, missingVerb: "`tool` needs a verb." }, []),
    (error) =>
      error instanceof UsageError &&
      error.message === "`tool` needs a verb." &&
      error.hint === "run `tool help` for the list.",
  );
});

Deno.test("a listed verb runs after the gate, and not when the gate refuses", async () => {
  const open = fixture();
  assert.equal((await run(open.group, ["run", "a", "b"])).code, 3);
  assert.deepEqual(open.ran, ["gate", "run a b"]);
  const shut = fixture(false);
  await assert.rejects(run(shut.group, ["run"]), CliError);
  assert.deepEqual(shut.ran, ["gate"]);
});

Deno.test("hidden verbs skip the gate; a subgroup passes its own gate only", async () => {
  const { group, ran } = fixture(false);
  assert.equal((await run(group, ["_inner"])).code, 0);
  assert.equal((await run(group, ["sub", "go", "x"])).code, 0);
  assert.deepEqual(ran, ["inner", "sub gate", "sub go x"]);
});

Deno.test("an unknown verb is a usage error naming `<group> help`, after the gate", async () => {
  for (const verb of ["frobnicate", "constructor", "__proto__", "toString"]) {
    const { group, ran } = fixture();
    await assert.rejects(
      run(group, [verb]),
      (error) =>
        error instanceof UsageError &&
        error.message === `unknown tool verb ${JSON.stringify(verb)}.` &&
        error.hint === "run `tool help` for the list.",
    );
    assert.deepEqual(ran, ["gate"]);
  }
  const shut = fixture(false);
  await assert.rejects(run(shut.group, ["frobnicate"]), CliError);
});

Deno.test("a fallback takes every argument list that names no verb", async () => {
  const seen: string[][] = [];
  const group: VerbGroup = {
    command: "daemon",
    noun: "daemon argument",
    usage: "daemon [--config FILE]",
    verbs: {},
    fallback: (args) => {
      seen.push(args);
      return 0;
    },
  };
  assert.equal((await run(group, [])).code, 0);
  assert.equal((await run(group, ["--config", "x"])).code, 0);
  assert.deepEqual((await run(group, ["-h"])).stdout, [
    "daemon [--config FILE]",
  ]);
  assert.deepEqual(seen, [[], ["--config", "x"]]);
});

Deno.test("mapError turns a subsystem's errors into the CLI's", async () => {
  class DomainError extends Error {}
  const group: VerbGroup = {
    command: "tool",
    noun: "tool verb",
    usage: "tool <verb>",
    verbs: {
      fail: () => {
        throw new DomainError("broken.");
      },
    },
    mapError: (error) =>
      error instanceof DomainError ? new CliError(error.message) : error,
  };
  await assert.rejects(
    run(group, ["fail"]),
    (error) => error instanceof CliError && error.message === "broken.",
  );
  await assert.rejects(run(group, ["nope"]), UsageError);
});
