/**
 * Base64 for public data (payloads, signatures, wire fields). Secret bytes
 * never go through here: these helpers build JS strings.
 *
 * @module
 */

const BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Decodes standard padded base64; throws on anything else. */
export function decodeBase64(text: string): Uint8Array {
  if (!BASE64.test(text)) throw new Error("not valid base64.");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/**
 * Standard base64 of `value` as UTF-8 JSON: the form of every header that
 * carries a JSON value (chains, ref states, bindings, scope statements).
 */
export function encodeJsonBase64(value: unknown): string {
  return encodeBase64(new TextEncoder().encode(JSON.stringify(value)));
}

/** The JSON value that {@link encodeJsonBase64} made `text` of; throws when it is none. */
export function decodeJsonBase64(text: string): unknown {
  return JSON.parse(new TextDecoder().decode(decodeBase64(text)));
}
