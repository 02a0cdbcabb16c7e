/**
 * Comparison of secret-derived bytes without early exit.
 *
 * @module
 */

/** True when `a` and `b` are equal; time depends only on their lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
