/**
 * The fleet server's mutual-TLS routes: what agents and operator verbs call
 * with a fleet certificate.
 *
 * - `POST /fleet/checkin`: an envoy's traits (traits.ts); the certificate's
 *   CN must be the traits' envoy. Answers the result, the period the
 *   server judges staleness by, and the digest of the published policy.
 * - `GET /fleet/names`: the name map, `names.json`'s form.
 * - `GET /fleet/policy`: the published usercrate policy (404 before any).
 * - `GET /fleet/gitback/:project`: the fleet's view of one project, by id
 *   or handle. A members-only project is shown only to envoys that hold
 *   it, so an enrolled envoy cannot map other groups' private projects.
 *
 * @module
 */

import { HttpError, type SwarmRoute } from "../swarm/swarm_server.ts";
import type { Logger } from "../platform/log.ts";
import { describeUntrusted } from "../envoy/host_name.ts";
import { MAX_TRAITS_BYTES, parseTraits, TraitsError } from "../swarm/traits.ts";
import type { FleetStore } from "./store.ts";
import { findProjects, projectView } from "./gitback_mesh.ts";

/** What the routes need from the running server. */
export interface FleetRouteContext {
  store: FleetStore;
  /** The check-in period, seconds. */
  checkinSeconds: number;
  log: Logger;
  /** The server's clock, unix seconds (tests may pin it). */
  now?: () => number;
}

/** The routes, over `context`. */
export function fleetRoutes(context: FleetRouteContext): SwarmRoute[] {
  const { store, log } = context;
  const now = context.now ?? (() => Math.floor(Date.now() / 1000));
  const seen = new Set<string>();
  return [
    {
      method: "POST",
      pattern: "/fleet/checkin",
      maxBodyBytes: MAX_TRAITS_BYTES,
      handler: (ctx) => {
        let traits;
        try {
          traits = parseTraits(ctx.body, { certificateHost: ctx.peer.subject });
        } catch (error) {
          if (!(error instanceof TraitsError)) throw error;
          log.warn("check-in refused", {
            peer: ctx.peer.subject,
            status: error.status,
            error: error.message,
          });
          throw new HttpError(error.status, error.message);
        }
        const result = store.recordCheckIn(traits, now());
        if (!seen.has(traits.envoy)) {
          seen.add(traits.envoy);
          log.info("envoy checked in", {
            envoy: traits.envoy,
            users: traits.users.length,
          });
        }
        return {
          status: 200,
          json: {
            result,
            checkin_s: context.checkinSeconds,
            policy: store.publishedPolicy()?.digest ?? null,
          },
        };
      },
    },
    {
      method: "GET",
      pattern: "/fleet/names",
      handler: () => ({ status: 200, json: store.nameMap() }),
    },
    {
      method: "GET",
      pattern: "/fleet/policy",
      handler: () => {
        const policy = store.publishedPolicy();
        if (!policy) {
          throw new HttpError(
            404,
            "no usercrate policy has been published; run `vigo config publish <dir>` on the server host.",
          );
        }
        return { status: 200, json: policy };
      },
    },
    {
      method: "GET",
      pattern: "/fleet/gitback/:project",
      handler: (ctx) => {
        const query = ctx.params.project;
        if (query.length > 128) {
          throw new HttpError(400, "a project is named by its id or handle.");
        }
        const latest = store.latestTraits();
        const names = store.nameMap().names;
        const at = now();
        const views = findProjects(latest, query).map((id) =>
          projectView(latest, names, at, context.checkinSeconds, id)
        ).filter((view) =>
          view !== null &&
          (view.scope === "swarm-wide" ||
            view.envoys.some((e) => e.envoy === ctx.peer.subject))
        );
        if (views.length === 0) {
          throw new HttpError(
            404,
            `no envoy reports a project ${
              describeUntrusted(query)
            } that ${ctx.peer.subject} may see (members-only projects are shown to envoys that hold them).`,
          );
        }
        if (views.length > 1) {
          throw new HttpError(
            409,
            `${describeUntrusted(query)} names ${views.length} projects: ${
              views.map((v) => v!.project_id).join(", ")
            }; give the project id.`,
          );
        }
        return { status: 200, json: views[0] };
      },
    },
  ];
}
