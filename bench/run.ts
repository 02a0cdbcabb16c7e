/**
 * `deno task bench [name…]`: runs every benchmark (or only the named ones)
 * side by side with its reference and rewrites docs/benchmarks.md; a run of
 * some benchmarks replaces only their sections, each marked with when it
 * was measured.
 *
 * @module
 */

import { renderReport, replaceSections, type Section } from "./report.ts";
import { benchSign, benchUnlock } from "./puddle.ts";
import { benchGitback, benchTokens } from "./gitback.ts";
import { benchReplication } from "./replication.ts";
import { benchFleet } from "./fleet.ts";
import { benchVerify } from "./crypto.ts";

const REPORT = new URL("../docs/benchmarks.md", import.meta.url).pathname;

const BENCHES = [
  ["unlock", benchUnlock],
  ["sign", benchSign],
  ["verify", benchVerify],
  ["tokens", benchTokens],
  ["gitback", benchGitback],
  ["replication", benchReplication],
  ["fleet", benchFleet],
] as const;
const wanted = Deno.args;
const unknown = wanted.filter((w) => !BENCHES.some(([name]) => name === w));
if (unknown.length > 0) {
  console.error(
    `error: no benchmark named ${unknown.join(", ")}; choose from ${
      BENCHES.map(([name]) => name).join(", ")
    }.`,
  );
  Deno.exit(2);
}

const sections: Section[] = [];
for (
  const [name, bench] of BENCHES.filter(([name]) =>
    wanted.length === 0 || wanted.includes(name)
  )
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
Deno.writeTextFileSync(
  REPORT,
  wanted.length === 0
    ? renderReport(sections)
    : replaceSections(Deno.readTextFileSync(REPORT), sections),
);
// Keep the report in `deno fmt` style so a bench run leaves the tree clean.
await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", REPORT] })
  .output();
console.log(`wrote ${REPORT}`);
