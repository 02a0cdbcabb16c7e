/**
 * The usercrate gate every puddle and gitback verb passes: a non-root user
 * needs the feature's flag in the policy the agent applied; root bypasses.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import { userByUid } from "../platform/users.ts";
import { readPolicy } from "../envoy/policy.ts";
import { CliError } from "./errors.ts";

/** Throws unless the calling user may use `feature` on this envoy. */
export function requireFeature(feature: "puddle" | "gitback"): void {
  const uid = Deno.uid();
  if (uid === 0 || uid === null) return;
  const user = userByUid(uid)?.name;
  if (!user) {
    throw new CliError(
      `uid ${uid} has no entry in /etc/passwd, so its usercrate policy cannot be found.`,
    );
  }
  const policy = readPolicy(systemPaths(), user);
  if (!policy?.[feature]) {
    throw new CliError(
      `${feature} is not enabled for user ${user} on this envoy.`,
      `an operator sets \`${feature}: true\` on ${user} in the usercrate and runs \`sudo vigo config apply <file>\`.`,
    );
  }
}
