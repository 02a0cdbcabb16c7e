/**
 * Applying signed ref states to a bare repository: the one place where a
 * replica's refs move. A state is applied only when it verified (see
 * ref_state.ts), its changes are allowed for its signer's role, and every
 * object it names is present and connected.
 *
 * Convergence rule: of two states, the one with the higher `seq` wins, and
 * at equal `seq` the one with the smaller id. The winner's refs become the
 * repository's refs exactly (creations, moves and deletions alike). When a
 * state loses to a state that does not follow it (two envoys accepted
 * conflicting pushes), the loser's tips that the winner does not contain
 * are kept as `refs/gitback/lost/<first 16 hex of the loser's id>/<ref
 * without refs/>`, so no commit is dropped silently.
 *
 * @module
 */

import { git, gitWithInput, listRefs, walkNewObjects } from "./repo.ts";
import {
  LOST_PREFIX,
  readRefStates,
  type RefState,
  supersedes,
  type VerifiedRefState,
  writeRefStates,
} from "./ref_state.ts";
import { refUpdates, refusedUpdates } from "./ref_rules.ts";

/** Where conflict losers' tips are kept. */
export const LOST_REFS = `${LOST_PREFIX}lost/`;

/** A state was refused; `message` may be told to the peer that sent it. */
export class RefStateRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefStateRefused";
  }
}

/** A state names objects the repository lacks: send them (a full bundle). */
export class RefStateIncomplete extends RefStateRefused {
  constructor(message: string) {
    super(message);
    this.name = "RefStateIncomplete";
  }
}

/** What applying states did. */
export interface ApplyOutcome {
  /** Refs created, moved or deleted (lost refs included). */
  changed: number;
  /** Lost refs created. */
  lost: string[];
  /** The state now current. */
  current: RefState | null;
}

function refsOf(state: RefState): Map<string, string> {
  return new Map(Object.entries(state.body.refs));
}

/** The name under which `state`'s tip of `ref` is kept when it lost. */
export function lostRefName(state: RefState, ref: string): string {
  return `${LOST_REFS}${state.id.slice(0, 16)}/${ref.slice("refs/".length)}`;
}

/** Objects `tips` needs that are not in `repo`; empty when complete. */
async function missingObjects(repo: string, tips: string[]): Promise<boolean> {
  if (tips.length === 0) return false;
  return !(await walkNewObjects(repo, tips)).success;
}

/** The tips of `refs` not reachable from `from`. */
async function unreachable(
  repo: string,
  refs: Map<string, string>,
  from: Map<string, string>,
): Promise<Array<[string, string]>> {
  const bases = [...new Set(from.values())];
  const out: Array<[string, string]> = [];
  for (const [ref, tip] of refs) {
    if (bases.includes(tip)) continue;
    const args = ["-C", repo, "rev-list", "--max-count=1", tip];
    if (bases.length > 0) args.push("--not", ...bases);
    const first = await git(args).catch(() => "");
    if (first.trim() !== "") out.push([ref, tip]);
  }
  return out;
}

/**
 * Sets `repo`'s refs to `target` in one transaction, lost refs left alone;
 * returns how many refs changed.
 */
export async function setRefs(
  repo: string,
  target: Map<string, string>,
): Promise<number> {
  const now = await listRefs(repo);
  const lines: string[] = [];
  for (const [ref, id] of now) {
    if (ref.startsWith(LOST_PREFIX)) continue;
    if (!target.has(ref)) lines.push(`delete ${ref} ${id}`);
  }
  for (const [ref, id] of target) {
    if (now.get(ref) !== id) {
      lines.push(
        now.has(ref)
          ? `update ${ref} ${id} ${now.get(ref)}`
          : `create ${ref} ${id}`,
      );
    }
  }
  if (lines.length === 0) return 0;
  // Deletions first, so a ref may become a directory of refs (a/b after a).
  lines.sort((a, b) =>
    Number(!a.startsWith("delete")) - Number(!b.startsWith("delete"))
  );
  await updateRefs(repo, lines);
  return lines.length;
}

/** Runs `lines` as one `git update-ref --stdin` transaction. */
async function updateRefs(repo: string, lines: string[]): Promise<void> {
  const out = await gitWithInput(
    ["-C", repo, "update-ref", "--stdin"],
    lines.join("\n") + "\n",
  );
  if (!out.success) throw new Error(`git update-ref failed: ${out.stderr}`);
}

/** Creates lost refs for `tips` of `loser`; returns their names. */
async function keepLost(
  repo: string,
  loser: RefState,
  tips: Array<[string, string]>,
): Promise<string[]> {
  if (tips.length === 0) return [];
  const now = await listRefs(repo);
  const names: string[] = [];
  const lines: string[] = [];
  for (const [ref, tip] of tips) {
    const name = lostRefName(loser, ref);
    names.push(name);
    if (now.get(name) !== tip) lines.push(`update ${name} ${tip}`);
  }
  if (lines.length > 0) await updateRefs(repo, lines);
  return names;
}

/**
 * Applies `states` (already verified, in any order) to `repo`, whose new
 * objects are already in place. Throws {@link RefStateRefused} for a state
 * its signer's role does not allow or that is older than the current state
 * without being a known fork, and {@link RefStateIncomplete} when objects
 * are missing; states before the refused one stay applied.
 */
export async function applyRefStates(
  repo: string,
  states: VerifiedRefState[],
): Promise<ApplyOutcome> {
  const ordered = [...states].sort((a, b) =>
    a.body.seq - b.body.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
  let changed = 0;
  const lost: string[] = [];
  for (const state of ordered) {
    const stored = readRefStates(repo);
    const known = [stored.current, ...stored.recent].filter(
      (s): s is RefState => s !== null,
    );
    if (known.some((s) => s.id === state.id)) continue;
    const current = stored.current;
    const parent = known.find((s) => s.id === state.body.parent) ?? null;
    const admin = state.chain.role === "admin";
    // Judged against its parent, a state must also rank just after it: a
    // far higher seq over an old parent would win over every state since
    // while only the changes from that parent are checked.
    if (parent && state.body.seq !== parent.body.seq + 1) {
      throw new RefStateRefused(
        `ref state ${state.body.seq} follows state ${parent.body.seq}; a state's seq is one more than its parent's.`,
      );
    }
    // Only an admin's state may follow a state this envoy does not know: a
    // member's would be judged against a parent it could make up, and its
    // seq could jump arbitrarily far ahead. Senders send every state since
    // the last admin state the receiver lacks (fanout.ts).
    if (
      !parent && current !== null && state.body.parent !== null && !admin
    ) {
      throw new RefStateRefused(
        `ref state ${state.body.seq} follows a state this envoy does not know, and only an admin's state may; send the states between.`,
      );
    }
    const wins = current === null || supersedes(state, current) ||
      (stored.anchored === false && admin);
    if (!wins && current && state.body.seq < current.body.seq && !parent) {
      throw new RefStateRefused(
        `the ref state ${state.body.seq} is older than this envoy's ${current.body.seq} and follows no state it knows; older states are not replayed.`,
      );
    }
    const refs = refsOf(state);
    if (await missingObjects(repo, [...new Set(refs.values())])) {
      throw new RefStateIncomplete(
        `this envoy lacks objects that ref state ${state.body.seq} names.`,
      );
    }
    // What the repository holds: the current state's refs, or, with no
    // state yet (or one from before signed states), the refs it has.
    const held = current ? refsOf(current) : withoutLost(await listRefs(repo));
    // Old values: the state it follows when known, else what is held. A
    // repository with no state is judged by its refs, whatever parent is
    // named.
    const base = parent
      ? refsOf(parent)
      : current === null
      ? held
      : state.body.parent === null
      ? new Map<string, string>()
      : held;
    const refused = await refusedUpdates(
      repo,
      refUpdates(base, refs),
      state.chain.role,
    );
    if (refused.length > 0) {
      throw new RefStateRefused(
        `ref state ${state.body.seq} signed by a ${state.chain.role} makes changes only an admin may make: ${
          refused.slice(0, 3).join("; ")
        }`,
      );
    }
    if (wins) {
      changed += await setRefs(repo, refs);
      // A state that follows the current one replaces it on purpose; any
      // other winner (a conflict, or a gap) keeps what it drops, named
      // after the state that lost (refs with no state: after the winner).
      if (!current || state.body.parent !== current.id) {
        const dropped = await unreachable(repo, held, refs);
        const names = await keepLost(repo, current ?? state, dropped);
        lost.push(...names);
        changed += names.length;
      }
      writeRefStates(repo, {
        current: state,
        recent: current ? [...stored.recent, current] : stored.recent,
        // Anchored: an admin's state, a first state, or one following a
        // known state (inheriting the current one's standing).
        anchored: admin || state.body.parent === null ||
          (parent !== null &&
            (parent.id !== current?.id || stored.anchored !== false)),
      });
    } else {
      const dropped = await unreachable(repo, refs, held);
      const names = await keepLost(repo, state, dropped);
      lost.push(...names);
      changed += names.length;
      writeRefStates(repo, {
        current,
        anchored: stored.anchored,
        recent: [...stored.recent, state],
      });
    }
  }
  return { changed, lost, current: readRefStates(repo).current };
}

function withoutLost(refs: Map<string, string>): Map<string, string> {
  return new Map([...refs].filter(([ref]) => !ref.startsWith(LOST_PREFIX)));
}

/** The lost refs of `repo`: name → tip. */
export async function lostRefs(repo: string): Promise<Map<string, string>> {
  return new Map(
    [...await listRefs(repo)].filter(([ref]) => ref.startsWith(LOST_REFS)),
  );
}
