import assert from "node:assert/strict";
import {
  clearLeft,
  LEFT_FILE,
  MAX_LEFT_PROJECTS,
  parseLeft,
  readLeft,
  recordLeft,
} from "./left.ts";

const id = (n: number) => n.toString(16).padStart(64, "0");

Deno.test("left.json records dropped projects until they are joined again", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const gitbackDir = `${dir}/gitback`;
    assert.deepEqual(readLeft(gitbackDir), new Set());
    // Recording creates the directory privately; ids that are not project
    // ids are not recorded.
    await recordLeft(gitbackDir, [id(1), id(2), "../etc"]);
    assert.equal(Deno.statSync(gitbackDir).mode! & 0o777, 0o700);
    assert.equal(
      Deno.statSync(`${gitbackDir}/${LEFT_FILE}`).mode! & 0o777,
      0o600,
    );
    assert.deepEqual(readLeft(gitbackDir), new Set([id(1), id(2)]));
    await recordLeft(gitbackDir, [id(2), id(3)]);
    assert.deepEqual(readLeft(gitbackDir), new Set([id(1), id(2), id(3)]));
    await clearLeft(gitbackDir, id(2));
    assert.deepEqual(readLeft(gitbackDir), new Set([id(1), id(3)]));
    // Clearing the last entry removes the file.
    await clearLeft(gitbackDir, id(1));
    await clearLeft(gitbackDir, id(3));
    assert.throws(
      () => Deno.statSync(`${gitbackDir}/${LEFT_FILE}`),
      Deno.errors.NotFound,
    );
    await clearLeft(gitbackDir, id(3));
    assert.deepEqual(readLeft(gitbackDir), new Set());
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("concurrent recordings all land", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => recordLeft(dir, [id(i)])),
    );
    assert.equal(readLeft(dir).size, 20);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("left.json is bounded and an unreadable one stops readers, not writers", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const old = new Date("2020-01-01T00:00:00Z");
    await recordLeft(dir, [id(0)], old);
    await recordLeft(
      dir,
      Array.from({ length: MAX_LEFT_PROJECTS }, (_, i) => id(i + 1)),
    );
    const left = readLeft(dir);
    assert.equal(left.size, MAX_LEFT_PROJECTS);
    assert.ok(!left.has(id(0)), "the oldest entry gives way");
    // A parse caps what it takes, whatever the file holds.
    const huge = Object.fromEntries(
      Array.from({ length: MAX_LEFT_PROJECTS + 5 }, (_, i) => [id(i), "t"]),
    );
    assert.equal(parseLeft({ projects: huge }).size, MAX_LEFT_PROJECTS);
    assert.equal(parseLeft({ projects: [id(1)] }).size, 0);
    assert.equal(parseLeft(null).size, 0);

    Deno.writeTextFileSync(`${dir}/${LEFT_FILE}`, "{not json");
    assert.throws(() => readLeft(dir), /not valid JSON/);
    await recordLeft(dir, [id(7)]);
    assert.deepEqual(readLeft(dir), new Set([id(7)]));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
