/**
 * `vigo ca init | issue`: the fleet CA and envoy certificates.
 *
 * @module
 */

import { systemPaths } from "../platform/paths.ts";
import {
  ensurePrivateDir,
  exists,
  writeFileAtomic,
  writeTextAtomic,
} from "../platform/fs.ts";
import { createFleetCa, issueEnvoyCertificate } from "../ca/ca.ts";
import { parseVerbArgs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

const USAGE = `vigo ca init [--name NAME]
vigo ca issue <hostname> [--ip ADDRESS]… [--out DIR]`;

function requireRoot() {
  if (Deno.uid() !== 0) {
    throw new CliError(
      "vigo ca must run as root: it writes root-only keys.",
      "run it with sudo.",
    );
  }
}

async function init(args: string[]): Promise<number> {
  const { values } = parseVerbArgs(
    args,
    { name: { type: "string" } },
    "vigo ca init [--name NAME]",
  );
  requireRoot();
  const dir = `${systemPaths().etc}/ca`;
  if (exists(`${dir}/ca.key`)) {
    throw new CliError(
      `a fleet CA already exists in ${dir}; nothing was changed.`,
      "issue certificates with `vigo ca issue <hostname>`.",
    );
  }
  Deno.mkdirSync(systemPaths().etc, { recursive: true, mode: 0o755 });
  ensurePrivateDir(dir);
  const ca = await createFleetCa({
    commonName: (values.name as string | undefined) ?? "vigo fleet CA",
  });
  writeFileAtomic(`${dir}/ca.key`, new TextEncoder().encode(ca.keyPem), 0o600);
  writeTextAtomic(`${dir}/ca.crt`, ca.certPem, 0o644);
  console.log(`✓ Fleet CA created`);
  console.log(`  key:         ${dir}/ca.key (0600; never leaves this host)`);
  console.log(`  certificate: ${dir}/ca.crt`);
  console.log(`next: vigo ca issue <hostname> --ip <address>`);
  return 0;
}

async function issue(args: string[]): Promise<number> {
  const usage = "vigo ca issue <hostname> [--ip ADDRESS]… [--out DIR]";
  const { values, positionals } = parseVerbArgs(
    args,
    {
      ip: { type: "string", multiple: true },
      out: { type: "string" },
    },
    usage,
    1,
  );
  const hostname = positionals[0];
  if (!hostname) {
    throw new UsageError("issue needs a hostname.", `usage: ${usage}`);
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
  let pair;
  try {
    pair = await issueEnvoyCertificate({
      caKeyPem: Deno.readTextFileSync(`${caDir}/ca.key`),
      caCertPem: Deno.readTextFileSync(`${caDir}/ca.crt`),
      hostname,
      ips: (values.ip as string[] | undefined) ?? [],
    });
  } catch (error) {
    throw new UsageError((error as Error).message, `usage: ${usage}`);
  }
  const out = (values.out as string | undefined) ?? etc;
  if (values.out) ensurePrivateDir(out);
  else Deno.mkdirSync(out, { recursive: true, mode: 0o755 });
  writeFileAtomic(
    `${out}/tls.key`,
    new TextEncoder().encode(pair.keyPem),
    0o600,
  );
  writeTextAtomic(`${out}/tls.crt`, pair.certPem, 0o644);
  writeTextAtomic(
    `${out}/ca.crt`,
    Deno.readTextFileSync(`${caDir}/ca.crt`),
    0o644,
  );
  console.log(
    `✓ Issued a certificate for ${hostname}${
      values.ip ? ` (${(values.ip as string[]).join(", ")})` : ""
    }`,
  );
  for (const name of ["tls.key", "tls.crt", "ca.crt"]) {
    console.log(`  ${out}/${name}`);
  }
  if (values.out) {
    console.log(
      `copy these into etc/vigo/ on ${hostname} (keep tls.key 0600, root-owned).`,
    );
  }
  return 0;
}

/** Runs `vigo ca …`. */
export async function runCa(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === "init") return await init(rest);
  if (verb === "issue") return await issue(rest);
  throw new UsageError(
    verb === undefined
      ? "`vigo ca` needs a verb."
      : `unknown ca verb ${JSON.stringify(verb)}.`,
    `usage:\n${USAGE}`,
  );
}
