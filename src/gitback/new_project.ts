/**
 * The state a new project starts with on its founder's envoy: `project.json`
 * with the founder's signed scope statement and the founder as its only
 * member, and `tokens.json` holding the founder's bootstrap admin token.
 * `project init` writes it; founding a project anew reuses it.
 *
 * @module
 */

import { formatPublicKey } from "../crypto/ed25519.ts";
import type { Signer } from "../crypto/signed_object.ts";
import { exists } from "../platform/fs.ts";
import { clearLeft } from "./left.ts";
import {
  type ProjectConfig,
  projectDir,
  ProjectError,
  type Scope,
  type TokenStore,
  writeProjectState,
} from "./project.ts";
import { projectId } from "./project_id.ts";
import { signScopeStatement } from "./scope_statement.ts";
import { mintBootstrapToken } from "./tokens.ts";

/** A project id as messages show it (16 hex and `…`), like the CLI's. */
const shortId = (id: string) => `${id.slice(0, 16)}…`;

/** What a new project's founder holds: `project.json` and `tokens.json`. */
export interface NewProjectState {
  project: ProjectConfig;
  tokens: TokenStore;
}

/** What founding a project takes besides the founder's key. */
export interface NewProjectFields {
  handle: string;
  scope: Scope;
  /** When it is founded; defaults to now. */
  now?: Date;
}

/**
 * The state of project `handle` founded by `signer`'s key: a bootstrap
 * admin token and a scope statement, both signed now, and the founder as
 * the only member. Writes nothing.
 */
export async function newProjectState(
  signer: Signer,
  fields: NewProjectFields,
): Promise<NewProjectState> {
  const now = fields.now ?? new Date();
  const seconds = Math.floor(now.getTime() / 1000);
  const id = await projectId(signer.publicKey, fields.handle);
  const token = await mintBootstrapToken(signer, fields.handle, {
    now: seconds,
  });
  // The scope every envoy goes by: the founder's signed word, nothing else.
  const statement = await signScopeStatement(signer, {
    projectId: id,
    handle: fields.handle,
    scope: fields.scope,
    now: seconds,
  });
  const founder = formatPublicKey(signer.publicKey);
  return {
    project: {
      version: 1,
      project_id: id,
      handle: fields.handle,
      founder,
      scope: fields.scope,
      scope_statement: statement,
      members: [founder],
      cross_subnet_members: [],
      created_at: now.toISOString(),
      tombstoned_at: null,
    },
    tokens: { version: 1, chain: [token] },
  };
}

/**
 * Founds `handle` for `signer`'s key in `gitbackDir`: refuses a project
 * this user already founded here, writes its new state, and undoes an
 * earlier leave or purge of it. Returns the new `project.json`.
 */
export async function foundProject(
  gitbackDir: string,
  signer: Signer,
  fields: NewProjectFields,
): Promise<ProjectConfig> {
  const id = await projectId(signer.publicKey, fields.handle);
  if (exists(`${projectDir(gitbackDir, id)}/project.json`)) {
    throw new ProjectError(
      `you already founded ${fields.handle} (project ${
        shortId(id)
      }); nothing was changed.`,
      "`vigo swarm gitback project push` publishes it again.",
    );
  }
  const { project, tokens } = await newProjectState(signer, fields);
  writeProjectState(gitbackDir, project, tokens);
  // Founding it again here undoes an earlier leave or purge.
  await clearLeft(gitbackDir, id);
  return project;
}
