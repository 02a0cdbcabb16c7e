/**
 * The shape every root daemon's verb shares (`vigo agent`, `vigo server`):
 * one command with `--config FILE`, root unless `VIGO_ROOT` points at a
 * test or development tree, run in the foreground until SIGTERM.
 *
 * @module
 */

import { type SystemPaths, systemPaths } from "../platform/paths.ts";
import { parseVerbArgs } from "./args.ts";
import type { VerbGroup } from "./dispatch.ts";
import { CliError } from "./errors.ts";

/** What distinguishes one daemon's verb. */
export interface DaemonVerb {
  /** `vigo agent`. */
  command: string;
  /** The usage text after the synopsis line. */
  description: string;
  /** `the agent`: how messages name the daemon. */
  daemon: string;
  /** Why it must be root, as a sentence. */
  whyRoot: string;
  /** Its systemd unit under deploy/. */
  unit: string;
  /** Runs it until a clean stop; rejects when it cannot start. */
  run(options: { paths: SystemPaths; configFile?: string }): Promise<void>;
}

/** The verb group of a root daemon. */
export function daemonGroup(verb: DaemonVerb): VerbGroup {
  const usage = `${verb.command} [--config FILE]`;
  return {
    command: verb.command,
    noun: `${verb.command.split(" ").at(-1)} argument`,
    usage: `${usage}\n\n${verb.description}`,
    verbs: {},
    fallback: async (args) => {
      const { values } = parseVerbArgs(
        args,
        { config: { type: "string" } },
        usage,
      );
      const paths = systemPaths();
      if (Deno.uid() !== 0 && paths.root.replace(/\/+$/, "") === "") {
        throw new CliError(
          `${verb.command} must run as root: ${verb.whyRoot}`,
          `start it with systemd (${verb.unit}) or sudo; a test fleet sets VIGO_ROOT to its own directory instead.`,
        );
      }
      try {
        await verb.run({
          paths,
          configFile: values.config as string | undefined,
        });
      } catch (error) {
        throw new CliError(
          `${verb.daemon} could not start: ${
            (error as Error).message.replace(/\.$/, "")
          }.`,
          "fix what the message names and start it again.",
        );
      }
      return 0;
    },
  };
}
