/**
 * What a process is running right now, from /proc: tests use it to act in
 * the middle of an agent's work (a kill mid-ingest) without guessing times.
 *
 * @module
 */

/** True when a child of `pid` runs a command line `matches` accepts. */
export function childRuns(
  pid: number,
  matches: (argv: string[]) => boolean,
): boolean {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== pid) continue;
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`)
        .split("\0");
      if (matches(argv)) return true;
    } catch {
      // The process ended meanwhile.
    }
  }
  return false;
}
