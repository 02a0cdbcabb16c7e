/**
 * Who may change which ref. A `member` may create refs and fast-forward
 * branches; only an `admin` may delete a ref, move a tag or force-update.
 * Nobody may set refs under `refs/gitback/` (the envoys keep conflict
 * losers there) or use a ref name outside the signed-state grammar.
 *
 * The rule exists twice, kept equal by one table of cases in the tests:
 * as {@link refusedUpdates}, which every receiver of a signed ref state
 * applies, and as {@link PRE_RECEIVE_HOOK}, which the agent's git socket
 * runs inside `git receive-pack` so a refused push is refused before any
 * ref moves.
 *
 * @module
 */

import type { Role } from "./tokens.ts";
import { isStateRefName } from "./ref_state.ts";

/** One ref's change: null is "absent". */
export interface RefUpdate {
  ref: string;
  old: string | null;
  new: string | null;
}

/** The changes from `before` to `after`, sorted by ref name. */
export function refUpdates(
  before: ReadonlyMap<string, string>,
  after: ReadonlyMap<string, string>,
): RefUpdate[] {
  const names = [...new Set([...before.keys(), ...after.keys()])].sort();
  return names
    .map((ref) => ({
      ref,
      old: before.get(ref) ?? null,
      new: after.get(ref) ?? null,
    }))
    .filter((u) => u.old !== u.new);
}

/** True when `old` is an ancestor of `next` in `repo` (a fast-forward). */
export async function isAncestor(
  repo: string,
  old: string,
  next: string,
): Promise<boolean> {
  const out = await new Deno.Command("git", {
    args: ["-C", repo, "merge-base", "--is-ancestor", old, next],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/**
 * Why each update `role` may not make, one message per refused update;
 * empty when all are allowed. New objects must already be in `repo`.
 */
export async function refusedUpdates(
  repo: string,
  updates: RefUpdate[],
  role: Role,
): Promise<string[]> {
  const refused: string[] = [];
  for (const u of updates) {
    if (!isStateRefName(u.ref)) {
      refused.push(`${u.ref}: this ref name is not allowed`);
      continue;
    }
    if (role === "admin") continue;
    if (u.new === null) {
      refused.push(`${u.ref}: only an admin may delete a ref`);
    } else if (u.old === null) {
      continue;
    } else if (u.ref.startsWith("refs/tags/")) {
      refused.push(`${u.ref}: only an admin may move a tag`);
    } else if (!(await isAncestor(repo, u.old, u.new))) {
      refused.push(
        `${u.ref}: only an admin may force-update (not a fast-forward)`,
      );
    }
  }
  return refused;
}

/**
 * The same rule as {@link refusedUpdates}, as a `pre-receive` hook: git
 * passes `<old> <new> <ref>` lines; `VIGO_ROLE` names the pusher's role.
 */
export const PRE_RECEIVE_HOOK = `#!/bin/sh
# vigo gitback: who may change which ref (docs/formats.md, "Roles and refs").
status=0
while read -r old new ref; do
  if [ \${#ref} -gt 255 ]; then
    echo "refused $ref: this ref name is not allowed" >&2
    status=1; continue
  fi
  case "$ref" in
    refs/gitback/*)
      echo "refused $ref: refs/gitback/ is kept by the envoys" >&2
      status=1; continue ;;
    refs/*[!A-Za-z0-9._/+@-]*|refs/*..*|*/.*|*//*|*/|*.lock|*.lock/*)
      echo "refused $ref: this ref name is not allowed" >&2
      status=1; continue ;;
    refs/*) ;;
    *)
      echo "refused $ref: this ref name is not allowed" >&2
      status=1; continue ;;
  esac
  [ "$VIGO_ROLE" = admin ] && continue
  case "$new" in
    *[!0]*) ;;
    *) echo "refused $ref: only an admin may delete a ref" >&2
       status=1; continue ;;
  esac
  case "$old" in
    *[!0]*) ;;
    *) continue ;;
  esac
  case "$ref" in
    refs/tags/*)
      echo "refused $ref: only an admin may move a tag" >&2
      status=1; continue ;;
  esac
  if ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
    echo "refused $ref: only an admin may force-update (not a fast-forward)" >&2
    status=1
  fi
done
exit $status
`;

/**
 * Writes {@link PRE_RECEIVE_HOOK} into `dir` (root-owned, 0755) and returns
 * the directory, for `git -c core.hooksPath=<dir> receive-pack`.
 */
export function installRoleHook(dir: string): string {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = `${dir}/pre-receive`;
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  Deno.writeTextFileSync(temp, PRE_RECEIVE_HOOK, { mode: 0o755 });
  Deno.chmodSync(temp, 0o755);
  Deno.renameSync(temp, path);
  return dir;
}
