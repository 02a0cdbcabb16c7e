/**
 * `vigo config publish <dir>`: on the fleet server host, publish every
 * usercrate in `<dir>` at once. Each agent that checks in learns the new
 * digest and converges its usercrate policy to it (src/agent/fleet_link.ts),
 * so no envoy needs its own `vigo config apply`.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import {
  publishedPolicy,
  readUsercrate,
  type UserPolicy,
} from "../envoy/policy.ts";
import { loadServerConfig } from "../fleet/server_config.ts";
import { openServerStore } from "../fleet/server.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

const USAGE = "vigo config publish <dir>";
/** Most usercrate files one publication reads. */
const MAX_FILES = 4096;
const USERCRATE_FILE = /\.(vgo|ya?ml)$/;

/** The usercrate files of `dir`: regular files only, by name. */
function usercrateFiles(dir: string): string[] {
  const files: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(
        `${dir} does not exist; nothing was published.`,
        `name the directory of usercrates: ${USAGE}.`,
      );
    }
    if (error instanceof Deno.errors.NotADirectory) {
      throw new CliError(
        `${dir} is not a directory; nothing was published.`,
        `name the directory of usercrates (\`vigo config apply\` takes one file): ${USAGE}.`,
      );
    }
    throw error;
  }
  for (const entry of entries) {
    if (entry.isFile && USERCRATE_FILE.test(entry.name)) {
      files.push(`${dir.replace(/\/+$/, "")}/${entry.name}`);
    }
  }
  if (files.length > MAX_FILES) {
    throw new CliError(
      `${dir} holds ${files.length} usercrate files, more than the ${MAX_FILES} one publication takes; nothing was published.`,
      "merge users into fewer files.",
    );
  }
  return files.sort();
}

/** `vigo config publish <dir>`. */
export function publish(args: string[]): number {
  const { positionals } = parseVerbArgs(args, {}, USAGE, 1);
  if (positionals.length !== 1) {
    throw new UsageError(
      "name the directory of usercrates to publish.",
      `usage: ${USAGE}`,
    );
  }
  if (Deno.uid() !== 0) {
    throw new CliError(
      "vigo config publish writes the fleet server's store and must run as root.",
      `run \`sudo ${USAGE}\` on the server host.`,
    );
  }
  const paths = systemPaths();
  // Only where a server is configured: publishing into a store no server
  // reads would look like success and reach no agent.
  let checkinSeconds: number;
  try {
    checkinSeconds = loadServerConfig(paths).checkinSeconds;
  } catch (error) {
    throw new CliError(
      `this host is not a fleet server: ${
        (error as Error).message.replace(/\.$/, "")
      }; nothing was published.`,
      "run `vigo config publish` on the host that runs `vigo server`.",
    );
  }
  const files = usercrateFiles(positionals[0]);
  if (files.length === 0) {
    throw new CliError(
      `${
        positionals[0]
      } holds no usercrate files (*.vgo, *.yaml, *.yml); nothing was published.`,
      "put one usercrate per file there and publish again.",
    );
  }
  const users: UserPolicy[] = [];
  const from = new Map<string, string>();
  for (const file of files) {
    let listed: UserPolicy[];
    try {
      listed = readUsercrate(file);
    } catch (error) {
      throw new CliError(
        `${
          (error as Error).message.replace(/\.$/, "")
        }; nothing was published.`,
        "fix the file and publish again.",
      );
    }
    for (const user of listed) {
      const earlier = from.get(user.user);
      if (earlier !== undefined) {
        throw new CliError(
          `${user.user} is listed in both ${earlier} and ${file}; nothing was published.`,
          "keep each user in one usercrate.",
        );
      }
      from.set(user.user, file);
      users.push(user);
    }
  }
  const policy = publishedPolicy(users, new Date().toISOString());
  const store = openServerStore(paths);
  try {
    store.publishPolicy(policy);
  } finally {
    store.close();
  }
  for (const user of policy.users) {
    const flags =
      [user.puddle ? "puddle" : null, user.gitback ? "gitback" : null]
        .filter(Boolean).join(", ") || "nothing enabled";
    console.log(`✓ ${user.user}: ${flags} (${from.get(user.user)})`);
  }
  console.log(
    `Published ${policy.users.length} user(s) from ${files.length} file(s), digest ${
      policy.digest.slice(0, 16)
    }…; every agent converges on its next check-in (every ${checkinSeconds} s).`,
  );
  return 0;
}
