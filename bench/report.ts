/**
 * Writes docs/benchmarks.md from the sections a bench run measured.
 *
 * @module
 */

/** One row: what, ours, the reference, their ratio, the target. */
export interface Row {
  what: string;
  ours: string;
  reference: string;
  ratio: string;
  target: string;
  met: "yes" | "no" | "—";
}

/** A section of the report. */
export interface Section {
  title: string;
  method: string;
  rows: Row[];
  notes?: string[];
}

/** Summary statistics of a list of durations (ms). */
export function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const pick = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { p50: pick(0.5), p99: pick(0.99), mean, min: sorted[0] };
}

/** Median of a list. */
export function median(samples: number[]): number {
  return stats(samples).p50;
}

/** `n` formatted with `digits` decimals. */
export function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

function machine(): string {
  const cpu = (() => {
    try {
      return /model name\s*:\s*(.*)/.exec(
        Deno.readTextFileSync("/proc/cpuinfo"),
      )?.[1] ?? "unknown CPU";
    } catch {
      return "unknown CPU";
    }
  })();
  const kernel = new TextDecoder().decode(
    new Deno.Command("uname", { args: ["-r"] }).outputSync().stdout,
  ).trim();
  return `${navigator.hardwareConcurrency} cores, ${cpu}, Linux ${kernel}, Deno ${Deno.version.deno}`;
}

/** Renders the whole report. */
export function renderReport(sections: Section[], date = new Date()): string {
  const lines = [
    "# Benchmarks",
    "",
    "Every figure below is measured by `npx deno task bench` (after `npm ci`; the",
    "unlock comparison needs Debian's `argon2` package). Each benchmark runs our",
    "code and the reference side by side in the same run and reports their ratio;",
    "nothing here is a test assertion. The file is rewritten by every run.",
    "",
    `Run: ${date.toISOString()} on ${machine()}.`,
  ];
  for (const section of sections) {
    lines.push("", `## ${section.title}`, "", section.method, "");
    lines.push(
      "| what | ours | reference | ratio | target | met |",
      "|---|---|---|---|---|---|",
    );
    for (const r of section.rows) {
      lines.push(
        `| ${r.what} | ${r.ours} | ${r.reference} | ${r.ratio} | ${r.target} | ${r.met} |`,
      );
    }
    for (const note of section.notes ?? []) lines.push("", note);
  }
  return lines.join("\n") + "\n";
}

/**
 * `report` (a whole rendered report) with `sections` replacing those of the
 * same title, or added at the end; each is marked as measured separately.
 */
export function replaceSections(
  report: string,
  sections: Section[],
  date = new Date(),
): string {
  const parts = report.split(/^(?=## )/m);
  for (const section of sections) {
    const rendered = renderReport([{
      ...section,
      notes: [
        ...(section.notes ?? []),
        `Measured on its own: ${date.toISOString()} on ${machine()}.`,
      ],
    }], date);
    const body = rendered.slice(rendered.indexOf("\n## ") + 1);
    const at = parts.findIndex((p) => p.startsWith(`## ${section.title}\n`));
    if (at >= 0) parts[at] = body + "\n";
    else parts.push(body);
  }
  return parts.join("").replace(/\n+$/, "\n");
}
