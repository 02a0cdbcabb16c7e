/**
 * `POST /swarm/puddle/pair-claim/<user>`: another enrolled envoy presents
 * the user's pairing code and receives the wrapped identity once.
 * `POST /swarm/puddle/rekey-claim/<user>`: the same for a rotated key, with
 * the rotation log and the rotation's project changes.
 *
 * Authorization is dual: the mutual-TLS certificate (any envoy of this
 * fleet) and the single-use code the user just read out.
 *
 * @module
 */

import { encodeBase64 } from "../platform/encoding.ts";
import { userByName } from "../platform/users.ts";
import {
  claimPairing,
  normalizePairCode,
  PAIR_PENDING,
  REKEY_PENDING,
} from "../puddle/pair.ts";
import { RETIRED_FILE } from "../puddle/rotation.ts";
import { recordMember } from "../puddle/members.ts";
import { type AgentConfig, homeOf } from "../envoy/config.ts";
import type { Logger } from "../platform/log.ts";
import { isValidUsername, readPolicy } from "../envoy/policy.ts";
import { HttpError, type SwarmRoute } from "../swarm/swarm_server.ts";

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

/** Which claim a route serves: its path, pending file, and the verb that starts it. */
const CLAIMS = {
  pair: { path: "pair-claim", pending: PAIR_PENDING, verb: "pair" },
  rekey: { path: "rekey-claim", pending: REKEY_PENDING, verb: "rekey-pair" },
} as const;

/** The pair-claim route for this agent. */
export function pairClaimRoute(config: AgentConfig, log: Logger): SwarmRoute {
  return claimRoute(config, log, "pair");
}

/** The rekey-claim route for this agent. */
export function rekeyClaimRoute(config: AgentConfig, log: Logger): SwarmRoute {
  return claimRoute(config, log, "rekey");
}

function claimRoute(
  config: AgentConfig,
  log: Logger,
  kind: keyof typeof CLAIMS,
): SwarmRoute {
  const claim = CLAIMS[kind];
  // Claims for one user run one at a time, so a code cannot be used twice.
  const inFlight = new Map<string, Promise<unknown>>();

  return {
    method: "POST",
    pattern: `/swarm/puddle/${claim.path}/:user`,
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
        log.warn(`${claim.path} for unknown user`, { user, peer });
        throw new HttpError(
          404,
          `there is no user ${user} on ${config.hostname}.`,
        );
      }
      if (!readPolicy(config.paths, user)?.puddle) {
        log.warn(`${claim.path} for user without puddle`, { user, peer });
        throw new HttpError(
          403,
          `puddle is not enabled for ${user} on ${config.hostname}.`,
        );
      }

      const previous = inFlight.get(user) ?? Promise.resolve();
      const attempt = previous.catch(() => {}).then(() =>
        claimPairing(`${home}/.vigo-puddle`, uid, code, new Date(), {
          kind: claim.pending,
          extraFiles: [RETIRED_FILE],
        })
      );
      inFlight.set(user, attempt);
      const outcome = await attempt.finally(() => {
        if (inFlight.get(user) === attempt) inFlight.delete(user);
      });

      const what = kind === "pair" ? "pairing" : "rekey";
      const again = kind === "pair"
        ? "`vigo swarm puddle pair`"
        : "`vigo swarm puddle rekey-pair --reissue`";
      if (!outcome.ok) {
        log.warn(`${claim.path} refused`, {
          user,
          peer,
          reason: outcome.reason,
        });
        switch (outcome.reason) {
          case "no-pending":
            throw new HttpError(
              404,
              `no ${what} is pending for ${user} on ${config.hostname}; run \`vigo swarm puddle ${claim.verb}\` there first.`,
            );
          case "expired":
            throw new HttpError(
              410,
              `the ${what} code for ${user} expired; run ${again} again.`,
            );
          case "mismatch":
            throw new HttpError(
              403,
              `wrong ${what} code for ${user}; the code is now used up, run ${again} again.`,
            );
          default:
            throw new HttpError(
              409,
              `${user}'s puddle files on ${config.hostname} are not usable (${outcome.reason}).`,
            );
        }
      }
      log.info(`${claim.path} accepted`, { user, peer });
      if (kind === "pair") {
        await recordMember(config.paths, user, {
          host: peer,
          direction: "joined-from-here",
          at: new Date().toISOString(),
        });
      }
      const reply = {
        status: 200,
        json: {
          from: config.hostname,
          pubkey: outcome.pubkey,
          salt: encodeBase64(outcome.salt),
          wrapped: encodeBase64(outcome.wrapped),
          // Public data: the claimant verifies every statement itself.
          rotations: rotationStatements(outcome.extra[RETIRED_FILE]),
          ...(kind === "rekey" ? { payload: outcome.payload ?? null } : {}),
        },
      };
      outcome.salt.fill(0);
      outcome.wrapped.fill(0);
      return reply;
    },
  };
}

/** The statements of a rotation log's bytes, unchecked (the claimant checks). */
function rotationStatements(bytes: Uint8Array | undefined): unknown[] {
  if (!bytes) return [];
  try {
    const log = JSON.parse(new TextDecoder().decode(bytes));
    return Array.isArray(log?.rotations)
      ? log.rotations.map((entry: { statement?: unknown }) => entry?.statement)
      : [];
  } catch {
    return [];
  }
}
