/**
 * Proof that a member lives on the envoy asking: routes that take a token
 * chain also take, in `X-Vigo-Member`, the chain subject's binding to the
 * requesting envoy (gitback/member_binding.ts), made at that member's
 * unlock there. A chain copied to another envoy therefore proves nothing.
 *
 * @module
 */

import { decodeJsonBase64, encodeJsonBase64 } from "../platform/encoding.ts";
import { verifyMemberBinding } from "../gitback/member_binding.ts";
import type { AgentConfig } from "../envoy/config.ts";
import { bindingStatementOf, statementForKey } from "./puddle_bindings.ts";
import { HttpError } from "../swarm/swarm_server.ts";
import { managedHomes } from "../envoy/user_homes.ts";
import { readUserProject } from "./user_state.ts";
import { decodeToken } from "../gitback/tokens.ts";
import { CHAIN_HEADER, chainHeaderFor } from "./fanout.ts";

/** Header carrying the member's binding (base64 of its JSON wire form). */
export const MEMBER_HEADER = "x-vigo-member";

/**
 * The {@link MEMBER_HEADER} value for `pubkey` from this envoy: the binding
 * a local user (`uid`, when given) who proved that key made here. Null when
 * none did.
 */
export function memberHeaderFor(
  config: AgentConfig,
  pubkey: string,
  uid?: number,
): string | null {
  let statement = null;
  if (uid === undefined) statement = statementForKey(config.paths, pubkey);
  else {
    const bound = bindingStatementOf(config.paths, uid);
    if (bound?.pubkey === pubkey) statement = bound.statement;
  }
  return statement ? encodeJsonBase64(statement) : null;
}

/**
 * Checks that `header` binds `member` to `peer` (the requesting envoy's
 * certificate name); 403 when it does not.
 */
export function requireMemberBinding(
  header: string | undefined,
  member: string,
  peer: string,
): void {
  if (!header || header.length > 4096) {
    throw new HttpError(
      403,
      `a chain proves nothing without its member's binding to ${peer} (${MEMBER_HEADER}); the member unlocks their puddle there to make one.`,
    );
  }
  let wire: unknown;
  try {
    wire = decodeJsonBase64(header);
  } catch {
    throw new HttpError(400, `the ${MEMBER_HEADER} header is not base64 JSON.`);
  }
  try {
    verifyMemberBinding(wire, { member, envoy: peer });
  } catch (error) {
    throw new HttpError(
      403,
      `the member binding does not hold: ${(error as Error).message}`,
    );
  }
}

/**
 * Headers by which this envoy shows a peer that a member of `projectId`
 * lives here: the chain (with the delegations recorded here) and binding of
 * the first local user whose proven key presents a chain for the project
 * and who made a binding here. Null when no local user can.
 */
export function localMemberHeaders(
  config: AgentConfig,
  projectId: string,
): Record<string, string> | null {
  for (const home of managedHomes(config)) {
    const bound = bindingStatementOf(config.paths, home.uid);
    if (!bound) continue;
    const chain = readUserProject(home, projectId, { chain: true })?.chain;
    if (!chain) continue;
    try {
      const leaf = decodeToken(chain[chain.length - 1]);
      if (leaf.body.subject !== bound.pubkey) continue;
    } catch {
      continue;
    }
    return {
      [CHAIN_HEADER]: chainHeaderFor(config, projectId, chain),
      [MEMBER_HEADER]: encodeJsonBase64(bound.statement),
    };
  }
  return null;
}
