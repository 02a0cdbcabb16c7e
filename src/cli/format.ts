/**
 * How the CLI shows values that are too long to show whole.
 *
 * @module
 */

/** A project or token id as listings and messages show it: 16 hex and `…`. */
export function shortId(id: string): string {
  return `${id.slice(0, 16)}…`;
}

/** Human-readable size, as the seed's listings show it. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
