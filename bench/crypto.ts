/**
 * Strict Ed25519 verification against `node:crypto`'s own verify of the
 * same signatures, side by side: the native engine behind the strict byte
 * checks (what daemons use), and the pure-JavaScript engine (what
 * short-lived faces use).
 *
 * @module
 */

import { type KeyObject, verify } from "node:crypto";
import {
  generateSeed,
  publicKeyFromSeed,
  PURE_JS_ENGINE,
  signBytes,
  useVerifyEngine,
  verifyBytes,
} from "../src/crypto/ed25519.ts";
import { keyObject, NATIVE_ENGINE } from "../src/crypto/ed25519_native.ts";
import { fmt, type Section } from "./report.ts";

const KEYS = 64;
const SECONDS = 2;

interface Case {
  key: Uint8Array;
  keyObject: KeyObject;
  message: Uint8Array;
  signature: Uint8Array;
}

function cases(): Case[] {
  return Array.from({ length: KEYS }, (_, i) => {
    const seed = generateSeed();
    const key = publicKeyFromSeed(seed);
    const message = new TextEncoder().encode(`a signed body of some size ${i}`);
    const signature = signBytes(seed, message);
    seed.fill(0);
    return { key, message, signature, keyObject: keyObject(key) };
  });
}

/** Verifications per second of `check` over the cases, for SECONDS. */
function perSecond(all: Case[], check: (c: Case) => boolean): number {
  for (const c of all) if (!check(c)) throw new Error("a signature failed");
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    for (const c of all) check(c);
    count += all.length;
  }
  return count / ((performance.now() - start) / 1000);
}

/** Runs the verification benchmark. */
export function benchVerify(): Promise<Section> {
  const all = cases();
  const reference = perSecond(
    all,
    (c) => verify(null, c.message, c.keyObject, c.signature),
  );
  useVerifyEngine(NATIVE_ENGINE);
  let native: number;
  try {
    native = perSecond(all, (c) => verifyBytes(c.key, c.message, c.signature));
  } finally {
    useVerifyEngine(PURE_JS_ENGINE);
  }
  const pure = perSecond(
    all,
    (c) => verifyBytes(c.key, c.message, c.signature),
  );
  const rate = (n: number) => `${fmt(n, 0)}/s`;
  return Promise.resolve({
    title: "Strict Ed25519 verification",
    method:
      `${KEYS} keys, one signature each, verified round-robin for ${SECONDS} s per row in one run. The reference is node:crypto's verify of the same signatures with ready key objects. Ours is verifyBytes: the strict checks on bytes (canonical A, A not of small order, S < L) and the cofactorless equation in the engine.`,
    rows: [{
      what: "strict verifications per second, native engine (daemons)",
      ours: rate(native),
      reference: rate(reference),
      ratio: `${fmt(native / reference)}×`,
      target: "≥ 0.8×",
      met: native / reference >= 0.8 ? "yes" : "no",
    }, {
      what:
        "strict verifications per second, pure JavaScript (short-lived faces)",
      ours: rate(pure),
      reference: rate(reference),
      ratio: `${fmt(pure / reference)}×`,
      target: "reported",
      met: "—",
    }],
  });
}
