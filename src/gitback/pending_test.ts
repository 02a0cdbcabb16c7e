import assert from "node:assert/strict";
import {
  appendPending,
  pendingPath,
  pendingQueues,
  readPending,
} from "./pending.ts";

const ID = "a".repeat(64);

Deno.test("envelopes queue in order, 0600, per queue", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/${ID}`);
    assert.deepEqual(pendingQueues(dir, ID), []);
    assert.deepEqual(readPending(dir, ID, "leave.pending"), []);
    const path = appendPending(dir, ID, "revoke.pending", { n: 1 });
    assert.equal(path, `${dir}/${ID}/revoke.pending`);
    appendPending(dir, ID, "revoke.pending", { n: 2 });
    assert.deepEqual(readPending(dir, ID, "revoke.pending"), [
      { n: 1 },
      { n: 2 },
    ]);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.deepEqual(pendingQueues(dir, ID), ["revoke.pending"]);
    appendPending(dir, ID, "leave.pending", { n: 3 });
    assert.deepEqual(pendingQueues(dir, ID), [
      "leave.pending",
      "revoke.pending",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a damaged queue reads as empty and is started afresh", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/${ID}`);
    const path = pendingPath(dir, ID, "leave.pending");
    Deno.writeTextFileSync(path, "{not json");
    assert.deepEqual(readPending(dir, ID, "leave.pending"), []);
    appendPending(dir, ID, "leave.pending", "envelope");
    assert.deepEqual(JSON.parse(Deno.readTextFileSync(path)), ["envelope"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
