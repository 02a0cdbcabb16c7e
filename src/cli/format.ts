/**
 * How the CLI shows values that are too long to show whole.
 *
 * @module
 */

/** A project or token id as listings and messages show it: 16 hex and `…`. */
export function shortId(id: string): string {
  return `${id.slice(0, 16)}…`;
}
