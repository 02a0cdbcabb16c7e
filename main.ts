/**
 * The one executable. Which face runs depends on the name it was called by:
 * `git-remote-gitback` is git's remote helper; anything else is `vigo`.
 *
 * @module
 */

import { dispatch, type VerbGroup } from "./src/cli/dispatch.ts";
import { reportError } from "./src/cli/errors.ts";

// Each face loads only its own modules: git starts the remote helper for
// every fetch and push, so its start-up time is on the hot path.

const USAGE = `usage: vigo <command>

commands:
  swarm puddle <verb>    this user's identity: init, unlock, lock, status, pubkey,
                         rotate-passphrase, pair, join, members
  swarm gitback <verb>   git over the swarm: status, purge, gc-orphans, project …
  config apply <file>    (root) apply a usercrate: who may use puddle and gitback
  config publish <dir>   (root, server host) publish usercrates to every agent
  agent [--config FILE]  (root) run this envoy's agent in the foreground
  server [--config FILE] (root) run the fleet server in the foreground
  ca init | issue …      (root) the fleet CA and envoy certificates
  version                print the version

Run \`vigo swarm puddle help\` for the puddle verbs.`;

/** The program's version. */
export const VERSION = "0.1.0";

/** The face a process runs, chosen by the basename it was invoked as. */
export function faceFor(argv0: string): "remote-helper" | "vigo" {
  const base = argv0.slice(argv0.lastIndexOf("/") + 1);
  return base === "git-remote-gitback" ? "remote-helper" : "vigo";
}

const SWARM_USAGE = `vigo swarm <subsystem> <verb>

subsystems:
  puddle <verb>    this user's identity (\`vigo swarm puddle help\`)
  gitback <verb>   git over the swarm (\`vigo swarm gitback help\`)`;

/** `vigo swarm`: the user-facing subsystems. */
export const SWARM_GROUP: VerbGroup = {
  command: "vigo swarm",
  noun: "swarm subsystem",
  usage: SWARM_USAGE,
  verbs: {
    puddle: async (args) =>
      await (await import("./src/cli/puddle.ts")).runPuddle(args),
    gitback: async (args) =>
      await (await import("./src/cli/gitback.ts")).runGitback(args),
  },
  missingVerb: "`vigo swarm` needs a subsystem.",
};

function printVersion(): number {
  console.log(`vigo ${VERSION}`);
  return 0;
}

/** `vigo`: every face a person runs by name. */
export const VIGO_GROUP: VerbGroup = {
  command: "vigo",
  noun: "command",
  usage: USAGE,
  verbs: {
    swarm: SWARM_GROUP,
    config: async (args) =>
      await (await import("./src/cli/config.ts")).runConfig(args),
    agent: async (args) =>
      await (await import("./src/cli/agent.ts")).runAgentCommand(args),
    server: async (args) =>
      await (await import("./src/cli/server.ts")).runServerCommand(args),
    ca: async (args) => await (await import("./src/cli/ca.ts")).runCa(args),
    version: printVersion,
  },
  hidden: { "--version": printVersion },
};

/** Entry point: dispatches on argv0 and turns errors into exit codes. */
export async function main(argv0: string, args: string[]): Promise<number> {
  try {
    if (faceFor(argv0) === "remote-helper") {
      const { runRemoteHelper } = await import(
        "./src/gitback/remote_helper.ts"
      );
      return await runRemoteHelper(args);
    }
    return await dispatch(VIGO_GROUP, args);
  } catch (error) {
    return reportError(error);
  }
}

/**
 * The name this process was invoked by, and its real arguments. The
 * development launcher passes the name as a leading `--argv0=…` (reading it
 * from `node:process` costs ~30 ms of start-up, paid by every git fetch);
 * the compiled binary has no launcher and asks `node:process`.
 */
export async function invocation(
  args: string[],
): Promise<{ argv0: string; args: string[] }> {
  const [first, ...rest] = args;
  if (first?.startsWith(ARGV0_FLAG)) {
    return { argv0: first.slice(ARGV0_FLAG.length), args: rest };
  }
  const { default: process } = await import("node:process");
  return { argv0: process.argv0, args };
}

const ARGV0_FLAG = "--argv0=";

if (import.meta.main) {
  const { argv0, args } = await invocation(Deno.args);
  Deno.exit(await main(argv0, args));
}
