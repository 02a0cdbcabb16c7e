/**
 * Strict lowercase hexadecimal encoding and decoding of byte arrays.
 *
 * @module
 */

const HEX_DIGITS = "0123456789abcdef";
const HEX_PATTERN = /^[0-9a-fA-F]*$/;

/**
 * Encodes bytes as lowercase hexadecimal, two characters per byte.
 *
 * @param bytes The bytes to encode.
 * @returns The lowercase hex string; empty for empty input.
 *
 * @example Usage
 * ```ts
 * import { toHex } from "./hex.ts";
 * toHex(new Uint8Array([0, 171])); // "00ab"
 * ```
 */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) {
    out += HEX_DIGITS[byte >> 4] + HEX_DIGITS[byte & 0x0f];
  }
  return out;
}

/**
 * Decodes a hexadecimal string into bytes. Upper- and lowercase digits are
 * both accepted; anything else (odd length, whitespace, a `0x` prefix) is
 * rejected rather than guessed at.
 *
 * @param text The hex string to decode.
 * @returns The decoded bytes.
 * @throws {SyntaxError} If the text has odd length or contains a non-hex
 * character.
 *
 * @example Usage
 * ```ts
 * import { fromHex } from "./hex.ts";
 * fromHex("00AB"); // Uint8Array [0, 171]
 * ```
 */
export function fromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0) {
    throw new SyntaxError(
      `Cannot decode hex: the text has ${text.length} characters, but hex needs an even number. Check that the value was copied completely.`,
    );
  }
  if (!HEX_PATTERN.test(text)) {
    throw new SyntaxError(
      "Cannot decode hex: the text contains characters other than 0-9 and a-f. Remove any spaces, quotes or 0x prefix and try again.",
    );
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}
