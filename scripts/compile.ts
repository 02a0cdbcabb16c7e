/**
 * `deno task compile`: builds `dist/vigo` and the `dist/git-remote-gitback`
 * symlink. `deno compile` needs its runtime (denort), which it downloads;
 * where that cannot be had, this says so in one line and exits 0.
 */

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DIST = `${REPO}/dist`;

await Deno.mkdir(DIST, { recursive: true });
const out = await new Deno.Command(`${REPO}/scripts/deno`, {
  args: [
    "compile",
    "--quiet",
    // One binary serves every face, so it carries their union; the
    // development launcher narrows permissions per face (docs/architecture.md).
    "--allow-all",
    "--output",
    `${DIST}/vigo`,
    `${REPO}/main.ts`,
  ],
  cwd: REPO,
  stdout: "piped",
  stderr: "piped",
}).output();

if (!out.success) {
  const stderr = new TextDecoder().decode(out.stderr);
  if (/error sending request|dns error|denort/i.test(stderr)) {
    console.log(
      "compile skipped: deno compile must download its runtime (denort), which this machine cannot reach; set DENORT_BIN to a local denort to build offline.",
    );
    Deno.exit(0);
  }
  console.error(stderr);
  Deno.exit(1);
}
try {
  await Deno.remove(`${DIST}/git-remote-gitback`);
} catch {
  // Not there yet.
}
await Deno.symlink("vigo", `${DIST}/git-remote-gitback`);
console.log(`built ${DIST}/vigo and ${DIST}/git-remote-gitback -> vigo`);
