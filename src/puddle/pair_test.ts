import assert from "node:assert/strict";
import {
  claimPairing,
  generatePairCode,
  normalizePairCode,
  PAIR_PENDING,
  pendingClaim,
  REKEY_PENDING,
  startPairing,
} from "./pair.ts";
import { initIdentity } from "./identity.ts";

const uid = Deno.uid()!;

async function withIdentity(fn: (dir: string) => Promise<void>) {
  const base = Deno.makeTempDirSync();
  try {
    const dir = `${base}/.vigo-puddle`;
    await initIdentity(dir, new TextEncoder().encode("pw"));
    await fn(dir);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

Deno.test("pair codes are NNNN-NNNN and spread over the whole range", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const code = generatePairCode();
    assert.match(code, /^\d{4}-\d{4}$/);
    seen.add(code);
  }
  assert.ok(seen.size > 195);
  assert.equal(normalizePairCode(" 12345678 "), "1234-5678");
  assert.equal(normalizePairCode("1234-5678"), "1234-5678");
  assert.equal(normalizePairCode("1234-567"), null);
  assert.equal(normalizePairCode("abcd-efgh"), null);
});

Deno.test("a pairing is stored hashed and claimed once", async () => {
  await withIdentity(async (dir) => {
    const { code } = await startPairing(dir);
    const pending = Deno.readTextFileSync(`${dir}/${PAIR_PENDING}`);
    assert.equal(pending.includes(code), false);
    assert.equal(pending.includes(code.replace("-", "")), false);
    assert.equal(Deno.statSync(`${dir}/${PAIR_PENDING}`).mode! & 0o777, 0o600);
    const first = await claimPairing(dir, uid, code);
    assert.equal(first.ok, true);
    if (first.ok) {
      assert.equal(first.wrapped.length, 87);
      assert.equal(first.salt.length, 16);
      assert.match(first.pubkey, /^ed25519:[0-9a-f]{64}$/);
    }
    const second = await claimPairing(dir, uid, code);
    assert.deepEqual(second, { ok: false, reason: "no-pending" });
  });
});

Deno.test("a wrong code burns the pairing", async () => {
  await withIdentity(async (dir) => {
    const { code } = await startPairing(dir);
    const wrong = code === "0000-0000" ? "0000-0001" : "0000-0000";
    assert.deepEqual(await claimPairing(dir, uid, wrong), {
      ok: false,
      reason: "mismatch",
    });
    assert.deepEqual(await claimPairing(dir, uid, code), {
      ok: false,
      reason: "no-pending",
    });
  });
});

Deno.test("an expired code is refused and removed", async () => {
  await withIdentity(async (dir) => {
    const { code } = await startPairing(dir, new Date(Date.now() - 301_000));
    assert.deepEqual(await claimPairing(dir, uid, code), {
      ok: false,
      reason: "expired",
    });
    assert.throws(() => Deno.statSync(`${dir}/${PAIR_PENDING}`));
  });
});

Deno.test("claims refuse files owned by someone else or symlinked", async () => {
  await withIdentity(async (dir) => {
    const { code } = await startPairing(dir);
    assert.deepEqual(await claimPairing(dir, uid + 1, code), {
      ok: false,
      reason: "damaged",
    });
    const again = await startPairing(dir);
    Deno.renameSync(`${dir}/identity.wrapped`, `${dir}/real.wrapped`);
    Deno.symlinkSync(`${dir}/real.wrapped`, `${dir}/identity.wrapped`);
    assert.deepEqual(await claimPairing(dir, uid, again.code), {
      ok: false,
      reason: "no-identity",
    });
  });
});

Deno.test("a rekey claim hands over its payload and the rotation log once; wrong and expired codes burn it", async () => {
  await withIdentity(async (dir) => {
    const session = {
      kind: REKEY_PENDING,
      extraFiles: ["retired_puddles.json"],
    } as const;
    const write = (text: string) =>
      Deno.writeTextFileSync(`${dir}/${REKEY_PENDING}`, text, { mode: 0o600 });
    Deno.writeTextFileSync(`${dir}/retired_puddles.json`, '{"rotations":[]}');
    const payload = { version: 1, projects: ["p"] };
    const first = await pendingClaim(new Date(), payload);
    write(first.text);
    assert.doesNotMatch(first.text, new RegExp(first.code));
    // A pair claim does not reach the rekey file, nor the other way round.
    assert.deepEqual(await claimPairing(dir, uid, first.code), {
      ok: false,
      reason: "no-pending",
    });
    const claimed = await claimPairing(
      dir,
      uid,
      first.code,
      new Date(),
      session,
    );
    assert.equal(claimed.ok, true);
    if (claimed.ok) {
      assert.deepEqual(claimed.payload, payload);
      assert.deepEqual(
        new TextDecoder().decode(claimed.extra["retired_puddles.json"]),
        '{"rotations":[]}',
      );
    }
    assert.deepEqual(
      await claimPairing(dir, uid, first.code, new Date(), session),
      { ok: false, reason: "no-pending" },
      "reused",
    );

    const second = await pendingClaim(new Date(), payload);
    write(second.text);
    const wrong = second.code === "0000-0000" ? "0000-0001" : "0000-0000";
    assert.deepEqual(
      await claimPairing(dir, uid, wrong, new Date(), session),
      { ok: false, reason: "mismatch" },
    );
    assert.deepEqual(
      await claimPairing(dir, uid, second.code, new Date(), session),
      { ok: false, reason: "no-pending" },
      "burned by the wrong guess",
    );

    const old = await pendingClaim(new Date(Date.now() - 301_000), payload);
    write(old.text);
    assert.deepEqual(
      await claimPairing(dir, uid, old.code, new Date(), session),
      { ok: false, reason: "expired" },
    );
  });
});
