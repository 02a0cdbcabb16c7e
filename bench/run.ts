/**
 * `deno task bench`: runs every benchmark side by side with its reference
 * and rewrites docs/benchmarks.md.
 *
 * @module
 */

import { renderReport, type Section } from "./report.ts";
import { benchSign, benchUnlock } from "./puddle.ts";
import { benchGitback, benchTokens } from "./gitback.ts";
import { benchReplication } from "./replication.ts";

const REPORT = new URL("../docs/benchmarks.md", import.meta.url).pathname;

const sections: Section[] = [];
for (
  const [name, bench] of [
    ["unlock", benchUnlock],
    ["sign", benchSign],
    ["tokens", benchTokens],
    ["gitback", benchGitback],
    ["replication", benchReplication],
  ] as const
) {
  console.error(`bench: ${name}…`);
  const section = await bench();
  sections.push(section);
  for (const row of section.rows) {
    console.log(
      `${section.title}: ${row.what}: ${row.ours} vs ${row.reference} → ${row.ratio} (target ${row.target})`,
    );
  }
}
Deno.writeTextFileSync(REPORT, renderReport(sections));
// Keep the report in `deno fmt` style so a bench run leaves the tree clean.
await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", REPORT] })
  .output();
console.log(`wrote ${REPORT}`);
