/**
 * `vigo swarm puddle name set <name> | clear | show`: the puddle's claim to
 * a friendly name, so that `gitback://<name>/<handle>` resolves.
 *
 * @module
 */

import { systemPaths, userPaths } from "../platform/paths.ts";
import { formatPublicKey } from "../crypto/ed25519.ts";
import { readPublicKey } from "../puddle/identity.ts";
import {
  clearNameClaim,
  nameMapPath,
  readNameClaim,
  readNameMap,
  signNameClaim,
  validateName,
  verifyNameClaim,
  writeNameClaim,
} from "../puddle/names.ts";
import { sessionSigner } from "../gitback/session_signer.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

const USAGE = "vigo swarm puddle name set <name> | clear | show [--json]";

/** Runs `vigo swarm puddle name …`. */
export async function name(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  switch (action) {
    case "set":
      return await set(rest);
    case "clear":
      return clear(rest);
    case "show":
      return show(rest);
    default:
      throw new UsageError(
        action === undefined
          ? "name needs set, clear or show."
          : `unknown name action ${JSON.stringify(action)}.`,
        `usage: ${USAGE}`,
      );
  }
}

async function set(args: string[]): Promise<number> {
  const { positionals } = parseVerbArgs(args, {}, USAGE, 1);
  const wanted = positionals[0];
  if (!wanted) {
    throw new UsageError("name set needs a name.", `usage: ${USAGE}`);
  }
  validateName(wanted);
  const paths = userPaths();
  const mine = formatPublicKey(readPublicKey(paths.puddleDir));
  const holders = readNameMap(nameMapPath(systemPaths().varLib)).get(wanted) ??
    [];
  const others = holders.filter((key) => key !== mine);
  if (others.length > 0) {
    throw new CliError(
      `the name ${wanted} is already claimed by ${
        others.join(", ")
      } in this envoy's name map; nothing was changed.`,
      "choose another name: names are first come, first served.",
    );
  }
  const signer = await sessionSigner(paths.sessionSocket);
  let wire;
  try {
    wire = await signNameClaim(signer, wanted);
  } finally {
    signer.close();
  }
  // The session signs with the key identity.pub names, or the claim lies.
  const claim = verifyNameClaim(wire);
  if (claim.key !== mine) {
    throw new CliError(
      "the session helper signed with another key than this puddle's; nothing was changed.",
      "lock and unlock again.",
    );
  }
  writeNameClaim(paths.puddleDir, wire);
  console.log(`✓ Claimed the name ${wanted} for ${mine}`);
  console.log(`  file: ${paths.puddleDir}/name-claim.json (public)`);
  console.log(
    "  the fleet server joins claims first come, first served; until then it resolves only for you",
  );
  return 0;
}

function clear(args: string[]): number {
  parseVerbArgs(args, {}, USAGE);
  const removed = clearNameClaim(userPaths().puddleDir);
  console.log(removed ? "✓ Name claim removed" : "no name claim to remove");
  return 0;
}

function show(args: string[]): number {
  const { values } = parseVerbArgs(args, { json: { type: "boolean" } }, USAGE);
  const paths = userPaths();
  const claim = readNameClaim(paths.puddleDir);
  const map = readNameMap(nameMapPath(systemPaths().varLib));
  const holders = claim ? map.get(claim.name) ?? [] : [];
  const state = !claim
    ? "none"
    : holders.length === 0
    ? "not in the fleet map yet"
    : holders.length === 1 && holders[0] === claim.key
    ? "resolves fleet-wide"
    : "contested: the fleet map holds other keys for it";
  if (values.json) {
    console.log(JSON.stringify({
      name: claim?.name ?? null,
      key: claim?.key ?? null,
      state,
      holders,
    }));
    return 0;
  }
  if (!claim) {
    console.log("no name claimed (`vigo swarm puddle name set <name>`)");
    return 0;
  }
  console.log(`name:  ${claim.name}`);
  console.log(`key:   ${claim.key}`);
  console.log(`state: ${state}`);
  return 0;
}
