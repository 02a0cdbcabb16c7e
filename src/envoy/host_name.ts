/**
 * The one grammar for host names that arrive from users (`project.json`'s
 * `cross_subnet_members`) or from peers (UDP announcements): RFC 1123 labels
 * of letters, digits and inner dashes, 1–63 characters each, joined by
 * single dots, 253 characters at most. No `..`, no leading or trailing dot
 * or dash, no slash, colon, space or control character.
 *
 * Text that passes may be used as a peer's name (to address it, to log it);
 * it is still never made into a root-side path: per-peer state is named by
 * {@link hostDigest} instead.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../crypto/hex.ts";

/** An RFC 1123 host name (the same rule agent.yaml's names follow). */
export const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** An IPv4 address in dotted-quad form. */
export const IPV4 =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** True for an IPv4 or IPv6 literal. */
export function isIpAddress(text: string): boolean {
  if (IPV4.test(text)) return true;
  if (!text.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** True when `text` is a string and a host name by {@link HOST_NAME}. */
export function isHostName(text: unknown): text is string {
  return typeof text === "string" && HOST_NAME.test(text);
}

/**
 * The lowercase hex SHA-256 of a host name's UTF-8 bytes: the name of that
 * peer's state files. Throws for text that is not a host name.
 */
export function hostDigest(host: string): string {
  if (!isHostName(host)) {
    throw new Error(`${describeUntrusted(host)} is not a host name.`);
  }
  return toHex(sha256(new TextEncoder().encode(host)));
}

/**
 * A short, printable rendering of untrusted text for a log line: at most
 * 80 characters, JSON-quoted (so control characters are escaped).
 */
export function describeUntrusted(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  } catch {
    text = String(typeof value);
  }
  const short = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return JSON.stringify(short);
}
