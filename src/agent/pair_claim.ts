/**
 * `POST /swarm/puddle/pair-claim/<user>`: another enrolled envoy presents
 * the user's pairing code and receives the wrapped identity once.
 *
 * Authorization is dual: the mutual-TLS certificate (any envoy of this
 * fleet) and the single-use code the user just read out.
 *
 * @module
 */

import { encodeBase64 } from "../platform/encoding.ts";
import { userByName } from "../platform/users.ts";
import { claimPairing, normalizePairCode } from "../puddle/pair.ts";
import { recordMember } from "../puddle/members.ts";
import { type AgentConfig, homeOf } from "./config.ts";
import type { Logger } from "./log.ts";
import { isValidUsername, readPolicy } from "./policy.ts";
import { HttpError, type SwarmRoute } from "./swarm_server.ts";

/** The uid that owns `user`'s files: from passwd, else the home's owner. */
function ownerOf(user: string, home: string): number | undefined {
  const entry = userByName(user);
  if (entry) return entry.uid;
  try {
    return Deno.statSync(home).uid ?? undefined;
  } catch {
    return undefined;
  }
}

/** The pair-claim route for this agent. */
export function pairClaimRoute(config: AgentConfig, log: Logger): SwarmRoute {
  // Claims for one user run one at a time, so a code cannot be used twice.
  const inFlight = new Map<string, Promise<unknown>>();

  return {
    method: "POST",
    pattern: "/swarm/puddle/pair-claim/:user",
    maxBodyBytes: 1024,
    handler: async (ctx) => {
      const user = ctx.params.user;
      const peer = ctx.peer.subject;
      if (!isValidUsername(user)) {
        throw new HttpError(
          400,
          `${JSON.stringify(user)} is not a valid user name.`,
        );
      }
      const body = ctx.json<{ code?: unknown }>();
      const code = typeof body?.code === "string"
        ? normalizePairCode(body.code)
        : null;
      if (!code) {
        throw new HttpError(400, 'the body must be {"code": "NNNN-NNNN"}.');
      }
      const home = homeOf(config, user);
      const uid = home === undefined ? undefined : ownerOf(user, home);
      if (home === undefined || uid === undefined) {
        log.warn("pair-claim for unknown user", { user, peer });
        throw new HttpError(
          404,
          `there is no user ${user} on ${config.hostname}.`,
        );
      }
      if (!readPolicy(config.paths, user)?.puddle) {
        log.warn("pair-claim for user without puddle", { user, peer });
        throw new HttpError(
          403,
          `puddle is not enabled for ${user} on ${config.hostname}.`,
        );
      }

      const previous = inFlight.get(user) ?? Promise.resolve();
      const claim = previous.catch(() => {}).then(() =>
        claimPairing(`${home}/.vigo-puddle`, uid, code)
      );
      inFlight.set(user, claim);
      const outcome = await claim.finally(() => {
        if (inFlight.get(user) === claim) inFlight.delete(user);
      });

      if (!outcome.ok) {
        log.warn("pair-claim refused", { user, peer, reason: outcome.reason });
        switch (outcome.reason) {
          case "no-pending":
            throw new HttpError(
              404,
              `no pairing is pending for ${user} on ${config.hostname}; run \`vigo swarm puddle pair\` there first.`,
            );
          case "expired":
            throw new HttpError(
              410,
              `the pairing code for ${user} expired; run \`vigo swarm puddle pair\` again.`,
            );
          case "mismatch":
            throw new HttpError(
              403,
              `wrong pairing code for ${user}; the code is now used up, run \`vigo swarm puddle pair\` again.`,
            );
          default:
            throw new HttpError(
              409,
              `${user}'s puddle files on ${config.hostname} are not usable (${outcome.reason}).`,
            );
        }
      }
      log.info("pair-claim accepted", { user, peer });
      await recordMember(config.paths, user, {
        host: peer,
        direction: "joined-from-here",
        at: new Date().toISOString(),
      });
      const reply = {
        status: 200,
        json: {
          from: config.hostname,
          pubkey: outcome.pubkey,
          salt: encodeBase64(outcome.salt),
          wrapped: encodeBase64(outcome.wrapped),
        },
      };
      outcome.salt.fill(0);
      outcome.wrapped.fill(0);
      return reply;
    },
  };
}
