/**
 * Reading fields of the YAML configuration files root writes (agent.yaml,
 * server.yaml): every error names the file and the key, and unknown keys
 * are errors, so a misspelt setting is never silently ignored.
 *
 * @module
 */

import { HOST_NAME, isIpAddress } from "./host_name.ts";

/** The longest period a configuration may set, in seconds (one day). */
export const MAX_SECONDS = 86_400;

/** Throws `<file>: <message>`. */
export function configError(file: string, message: string): never {
  throw new Error(`${file}: ${message}`);
}

/** A host name (RFC 1123) or an IPv4/IPv6 literal. */
export function isAddress(text: string): boolean {
  return HOST_NAME.test(text) || isIpAddress(text);
}

/** A YAML mapping (absent or null → `{}`), with only `allowed` keys if given. */
export function configMapping(
  file: string,
  key: string,
  value: unknown,
  allowed?: string[],
): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    configError(file, `\`${key}\` must be a mapping.`);
  }
  const record = value as Record<string, unknown>;
  if (allowed) {
    const unknown = Object.keys(record).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) {
      configError(
        file,
        `unknown key(s) under \`${key}\`: ${unknown.join(", ")}; expected ${
          allowed.join(", ")
        }.`,
      );
    }
  }
  return record;
}

/** A TCP or UDP port number. */
export function configPort(file: string, key: string, value: unknown): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > 65535
  ) {
    configError(file, `\`${key}\` must be an integer between 1 and 65535.`);
  }
  return value;
}

/** A period in seconds (fractions allowed, for test fleets), or `fallback`. */
export function configSeconds(
  file: string,
  key: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || value > MAX_SECONDS) {
    configError(
      file,
      `\`${key}\` must be a number of seconds above 0 and at most ${MAX_SECONDS}.`,
    );
  }
  return value;
}
