/**
 * `vigo config apply <file>`: turn a usercrate into per-user policy files;
 * `vigo config publish <dir>` (config_publish.ts) hands them to the fleet.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import { userByName } from "../platform/users.ts";
import { readUsercrate, writePolicies } from "../envoy/policy.ts";
import { parseVerbArgs } from "./args.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { CliError, UsageError } from "./errors.ts";

const USAGE = "vigo config apply <usercrate.yaml>";

async function publish(args: string[]): Promise<number> {
  return (await import("./config_publish.ts")).publish(args);
}

/** `vigo config`. */
export const CONFIG_GROUP: VerbGroup = {
  command: "vigo config",
  noun: "config verb",
  usage: `vigo config <verb>

verbs:
  apply <usercrate.yaml>  (root) turn a usercrate into the per-user policy
                          files that say who may use puddle and gitback
  publish <dir>           (root, on the fleet server host) publish every
                          usercrate in <dir>; each agent converges to it
                          on its next check-in`,
  verbs: { apply, publish },
  missingVerb: "`vigo config` needs a verb.",
};

/** Runs `vigo config …`. */
export async function runConfig(args: string[]): Promise<number> {
  return await dispatch(CONFIG_GROUP, args);
}

/** `vigo config apply <file>`. */
function apply(args: string[]): number {
  const { positionals } = parseVerbArgs(args, {}, USAGE, 1);
  if (positionals.length !== 1) {
    throw new UsageError(
      "name the usercrate file to apply.",
      `usage: ${USAGE}`,
    );
  }
  if (Deno.uid() !== 0) {
    throw new CliError(
      "vigo config apply writes root-owned policy and must run as root.",
      `run \`sudo ${USAGE}\`.`,
    );
  }
  let users;
  try {
    users = readUsercrate(positionals[0]);
  } catch (error) {
    throw new CliError(
      `${(error as Error).message.replace(/\.$/, "")}; nothing was applied.`,
      "fix the file and apply it again.",
    );
  }
  const paths = systemPaths();
  const written = writePolicies(paths, users, positionals[0]);
  for (const [i, user] of users.entries()) {
    const flags =
      [user.puddle ? "puddle" : null, user.gitback ? "gitback" : null]
        .filter(Boolean).join(", ") || "nothing enabled";
    console.log(`✓ ${user.user}: ${flags} → ${written[i]}`);
    if (user.gitback && !user.puddle) {
      console.error(
        `warning: ${user.user} has gitback without puddle; gitback signs with the puddle key, so enable both.`,
      );
    }
    if (!userByName(user.user)) {
      console.error(
        `warning: ${user.user} has no account on this machine yet.`,
      );
    }
  }
  if (users.length === 0) console.log("no user resources in the file.");
  return 0;
}
