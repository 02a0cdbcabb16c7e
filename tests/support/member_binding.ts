/**
 * The `X-Vigo-Member` header a test peer presents: the binding a real user
 * made at unlock on an envoy (read from that envoy's root-side record), or
 * one signed in-process with a test key.
 *
 * @module
 */

import type { Envoy } from "../../scripts/fleet.ts";
import { encodeBase64 } from "../../src/platform/encoding.ts";
import { signWithContext } from "../../src/crypto/signed.ts";
import { publicKeyFromSeed } from "../../src/crypto/ed25519.ts";
import {
  memberBindingBody,
  memberBindingBytes,
  memberBindingWire,
} from "../../src/gitback/member_binding.ts";

function header(value: unknown): string {
  return encodeBase64(new TextEncoder().encode(JSON.stringify(value)));
}

/**
 * The binding statement recorded on `envoy` for `pubkey` (any local user
 * who unlocked there with that key), as a header value.
 */
export function memberHeaderOn(envoy: Envoy, pubkey?: string): string {
  const dir = `${envoy.root}/var/lib/vigo/swarm/puddle/bindings`;
  for (const entry of Deno.readDirSync(dir)) {
    const record = JSON.parse(Deno.readTextFileSync(`${dir}/${entry.name}`));
    if (record.statement && (!pubkey || record.pubkey === pubkey)) {
      return header(record.statement);
    }
  }
  throw new Error(`no binding statement on ${envoy.name}`);
}

/** A binding of the key of `seed` to the envoy named `envoy`, as a header. */
export function signedMemberHeader(seed: Uint8Array, envoy: string): string {
  const body = memberBindingBody({
    member: publicKeyFromSeed(seed),
    envoy,
  });
  return header(
    memberBindingWire(
      body,
      signWithContext(
        seed,
        "vigo-swarm/v1/puddle-envoy-binding",
        memberBindingBytes(body),
      ),
    ),
  );
}
