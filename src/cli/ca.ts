/**
 * `vigo ca init | issue`: the fleet CA and envoy certificates. Both verbs
 * run as root on the CA host and write under `<VIGO_ROOT>/etc/vigo`.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import {
  assertPrivateFile,
  ensurePrivateDir,
  exists,
  readFileBounded,
  writeFileAtomic,
  writeTextAtomic,
} from "../platform/fs.ts";
import { createFleetCa, issueEnvoyCertificate } from "../ca/ca.ts";
import { parseVerbArgs } from "./args.ts";
import { dispatch, type VerbGroup } from "./dispatch.ts";
import { CliError, UsageError } from "./errors.ts";

const INIT_USAGE = "vigo ca init [--name NAME]";
const ISSUE_USAGE = "vigo ca issue <hostname> [--ip ADDRESS]… [--out DIR]";
const USAGE = `${INIT_USAGE}\n${ISSUE_USAGE}`;
const MAX_PEM_BYTES = 64 * 1024;

function requireRoot() {
  if (Deno.uid() !== 0) {
    throw new CliError(
      "vigo ca must run as root: it writes root-only keys.",
      "run it with sudo.",
    );
  }
}

function readPem(path: string, what: string): string {
  try {
    return new TextDecoder().decode(readFileBounded(path, MAX_PEM_BYTES));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(
        `${what} ${path} is missing.`,
        "restore the CA directory from its backup, or start a new fleet with `vigo ca init`.",
      );
    }
    throw error;
  }
}

/** Creates `dir` (and parents) 0700 when missing; an existing one is kept. */
function ensureOutDir(dir: string): void {
  try {
    const info = Deno.statSync(dir);
    if (!info.isDirectory) {
      throw new CliError(
        `${dir} exists and is not a directory.`,
        "give --out a directory, or a path that does not exist yet.",
      );
    }
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(dir, 0o700);
}

async function init(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { name: { type: "string" } },
    INIT_USAGE,
  );
  requireRoot();
  const dir = `${systemPaths().etc}/ca`;
  if (exists(`${dir}/ca.key`)) {
    throw new CliError(
      `a fleet CA already exists in ${dir}; nothing was changed.`,
      "issue certificates with `vigo ca issue <hostname>`; to start over, move that directory aside first.",
    );
  }
  let ca;
  try {
    ca = await createFleetCa({
      commonName: (values.name as string | undefined) ?? "vigo fleet CA",
    });
  } catch (error) {
    throw new UsageError((error as Error).message, `usage: ${INIT_USAGE}`);
  }
  Deno.mkdirSync(systemPaths().etc, { recursive: true, mode: 0o755 });
  ensurePrivateDir(dir);
  // The certificate first: ca.key is what marks the CA as existing, so a
  // crash in between leaves a state `init` simply repeats.
  writeTextAtomic(`${dir}/ca.crt`, ca.certPem, 0o644);
  const key = new TextEncoder().encode(ca.keyPem);
  writeFileAtomic(`${dir}/ca.key`, key, 0o600);
  key.fill(0);
  console.log(`✓ Fleet CA created`);
  console.log(`  ${dir}/ca.key (0600; keep it on this host and back it up)`);
  console.log(`  ${dir}/ca.crt`);
  console.log(`next: vigo ca issue <hostname> --ip <address>`);
  return 0;
}

async function issue(args: string[]): Promise<number> {
  const { values, positionals } = parseVerbArgs(
    args,
    {
      ip: { type: "string", multiple: true },
      out: { type: "string" },
    },
    ISSUE_USAGE,
    1,
  );
  const hostname = positionals[0];
  if (!hostname) {
    throw new UsageError("issue needs a hostname.", `usage: ${ISSUE_USAGE}`);
  }
  const ips = (values.ip as string[] | undefined) ?? [];
  const outOption = values.out as string | undefined;
  if (outOption === "") {
    throw new UsageError("--out needs a directory.", `usage: ${ISSUE_USAGE}`);
  }
  requireRoot();
  const etc = systemPaths().etc;
  const caDir = `${etc}/ca`;
  if (!exists(`${caDir}/ca.key`)) {
    throw new CliError(
      `there is no fleet CA in ${caDir}.`,
      "create it first with `vigo ca init` on the CA host.",
    );
  }
  try {
    assertPrivateFile(`${caDir}/ca.key`);
  } catch (error) {
    throw new CliError(
      `the CA key is exposed: ${(error as Error).message}`,
    );
  }
  const caCertPem = readPem(`${caDir}/ca.crt`, "the CA certificate");
  const caKeyPem = readPem(`${caDir}/ca.key`, "the CA key");
  let pair;
  try {
    pair = await issueEnvoyCertificate({ caKeyPem, caCertPem, hostname, ips });
  } catch (error) {
    const message = (error as Error).message;
    if (/host name|IPv4 or IPv6/.test(message)) {
      throw new UsageError(message, `usage: ${ISSUE_USAGE}`);
    }
    throw new CliError(message);
  }
  const out = outOption ?? etc;
  if (outOption) ensureOutDir(out);
  else Deno.mkdirSync(out, { recursive: true, mode: 0o755 });
  const key = new TextEncoder().encode(pair.keyPem);
  writeFileAtomic(`${out}/tls.key`, key, 0o600);
  key.fill(0);
  writeTextAtomic(`${out}/tls.crt`, pair.certPem, 0o644);
  writeTextAtomic(`${out}/ca.crt`, caCertPem, 0o644);
  console.log(
    `✓ Issued a certificate for ${hostname}${
      ips.length ? ` (${ips.join(", ")})` : ""
    }`,
  );
  console.log(`  ${out}/tls.key (0600)`);
  console.log(`  ${out}/tls.crt`);
  console.log(`  ${out}/ca.crt`);
  if (outOption) {
    console.log(
      `next: copy these three files into /etc/vigo/ on ${hostname} (root-owned, tls.key 0600).`,
    );
  }
  return 0;
}

/** `vigo ca`. */
export const CA_GROUP: VerbGroup = {
  command: "vigo ca",
  noun: "ca verb",
  usage: `usage:\n${USAGE}`,
  verbs: { init, issue },
  missingVerb: "`vigo ca` needs a verb.",
};

/** Runs `vigo ca …`. */
export async function runCa(args: string[]): Promise<number> {
  return await dispatch(CA_GROUP, args);
}
