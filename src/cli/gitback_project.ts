/**
 * `vigo swarm gitback project <verb>`: the verb group of founding,
 * inviting, joining, listing, leaving and revoking, all on the calling
 * user's state. Each verb lives in its own `project_<verb>.ts`.
 *
 * @module
 */

import { userPaths } from "../platform/paths.ts";
import { ProjectError } from "../gitback/project.ts";
import { type VerbGroup } from "./dispatch.ts";
import { CliError } from "./errors.ts";
import { requireFeature } from "./policy_gate.ts";
import { finishFounderUpdates } from "./puddle_rekey.ts";
import { projectInit } from "./project_init.ts";
import { projectPush } from "./project_push.ts";
import { projectInvite } from "./project_invite.ts";
import { projectJoin } from "./project_join.ts";
import { projectLeave } from "./project_leave.ts";
import { projectList } from "./project_list.ts";
import { projectStatus } from "./project_status.ts";
import { projectRevoke } from "./project_revoke.ts";
import { projectReinviteAll } from "./project_reinvite.ts";
import { projectRejoin } from "./project_rejoin.ts";
import { projectRefound } from "./project_refound.ts";
import { projectReanchor } from "./project_reanchor.ts";

const USAGE = `vigo swarm gitback project <verb>

verbs:
  init <handle> [--scope swarm-wide|members-only] [--repo <path>] [--no-push]
  push [<handle>] [--repo <path>]
  invite <project_id> --puddle <fp> --role admin|member [--expires <Nd>]
  join <project_id> [--invitation <file|->]
  leave <project_id> [--purge] [--yes]
  list [--json]
  status <project_id>
  revoke <project_id> --token-id <hex> [--reason <text>]
  re-invite-all [<project_id>]
                       after a key rotation: a fresh invitation per member
                       from another puddle (JSON on stdout)
  rejoin <project_id> [--invitation <file|->]
                       take up such an invitation for a project held here
  re-found <project_id> [--force] [--confirm <handle>]
                       the founder moves the project to a new id under the
                       current key (at the delegation cap, or --force)
  reanchor <project_id> [--confirm <handle>]
                       a member carries the project on under a new id of
                       their own when the founder is gone

<project_id> is the 64-hex id or a unique handle prefix of a local project.`;

/** Turns a gitback library error into the CLI's. */
export function projectErrorToCli(error: unknown): unknown {
  return error instanceof ProjectError
    ? new CliError(error.message, error.hint)
    : error;
}

/** `vigo swarm gitback project`. */
export const PROJECT_GROUP: VerbGroup = {
  command: "vigo swarm gitback project",
  noun: "project verb",
  usage: USAGE,
  verbs: {
    init: projectInit,
    push: projectPush,
    invite: projectInvite,
    join: projectJoin,
    leave: projectLeave,
    list: projectList,
    status: projectStatus,
    revoke: projectRevoke,
    "re-invite-all": projectReinviteAll,
    rejoin: projectRejoin,
    "re-found": projectRefound,
    reanchor: projectReanchor,
  },
  gate: async () => {
    requireFeature("gitback");
    // A key rotation's unapplied project changes come first.
    await finishFounderUpdates(userPaths());
  },
  mapError: projectErrorToCli,
};
