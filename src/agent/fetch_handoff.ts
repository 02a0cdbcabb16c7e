/**
 * Fetches without a relay: once the git socket has checked a fetch (token
 * chain, signed challenge), it hands the caller a one-time ticket instead
 * of piping the pack. The remote helper then sends the ticket with its own
 * standard input and output (git's pipes) attached to
 * `<varRun>/gitback-fd.sock`, and `git upload-pack` runs with those
 * descriptors as its own: the pack goes from upload-pack to git with no
 * process in between.
 *
 * A ticket is 32 random bytes, names one checked request, is good once, for
 * {@link HANDOFF_TTL_MS}, and only for the uid (SO_PEERCRED) that was
 * checked; at most {@link MAX_PENDING_HANDOFFS} wait at once (beyond that
 * the git socket relays as before). The descriptors arrive close-on-exec,
 * are given to upload-pack alone and closed here once it runs.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { toHex } from "../crypto/hex.ts";
import type { Logger } from "../platform/log.ts";
import {
  closeDescriptor,
  type DescriptorMessage,
  startDescriptorListener,
} from "../platform/descriptor_listener.ts";

/** How long a ticket stays good. */
export const HANDOFF_TTL_MS = 10_000;
/** Tickets waiting at once. */
export const MAX_PENDING_HANDOFFS = 256;
/** A uid's refused hand-offs are logged at most this often. */
const REFUSAL_LOG_MS = 10_000;

interface Pending {
  uid: number;
  repo: string;
  project: string;
  expires: number;
}

/** Where the helper hands its descriptors over. */
export function handoffSocketPath(varRun: string): string {
  return `${varRun}/gitback-fd.sock`;
}

/** The tickets and the listener that redeems them. */
export class FetchHandoffs {
  readonly #pending = new Map<string, Pending>();
  readonly #log: Logger;
  readonly #refusals = new Map<number, { at: number; suppressed: number }>();
  #listener: { close(): Promise<void> } | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Starts listening at `path` (mode 0666: the ticket and uid decide). */
  start(path: string): void {
    this.#listener = startDescriptorListener({
      path,
      mode: 0o666,
      handler: (message) => this.#redeem(message),
      onError: (error) =>
        this.#log.warn("fetch hand-off failed", { error: error.message }),
    });
  }

  /**
   * A ticket for `uid` to fetch from `repo`, or null when too many wait
   * (the caller then relays the fetch itself).
   */
  offer(uid: number, repo: string, project: string): string | null {
    const now = Date.now();
    for (const [ticket, p] of this.#pending) {
      if (p.expires <= now) this.#pending.delete(ticket);
    }
    if (this.#pending.size >= MAX_PENDING_HANDOFFS) return null;
    const ticket = toHex(crypto.getRandomValues(new Uint8Array(32)));
    this.#pending.set(ticket, {
      uid,
      repo,
      project,
      expires: now + HANDOFF_TTL_MS,
    });
    return ticket;
  }

  async #redeem(message: DescriptorMessage): Promise<string> {
    let ticket: unknown;
    try {
      ticket = JSON.parse(message.text).ticket;
    } catch {
      ticket = undefined;
    }
    const pending = typeof ticket === "string"
      ? this.#pending.get(ticket)
      : undefined;
    if (
      !pending || pending.uid !== message.peer.uid ||
      pending.expires <= Date.now() || message.fds.length !== 2
    ) {
      message.fds.forEach(closeDescriptor);
      this.#noteRefusal(
        message.peer.uid,
        !pending
          ? "unknown or used ticket"
          : pending.uid !== message.peer.uid
          ? "ticket of another uid"
          : pending.expires <= Date.now()
          ? "expired ticket"
          : "not two descriptors",
      );
      return JSON.stringify({
        ok: false,
        error:
          "the agent refused the hand-off (an unknown, used, expired or foreign ticket); fetch again.",
      });
    }
    this.#pending.delete(ticket as string);
    this.#log.info("fetch handed off", {
      uid: message.peer.uid,
      project: pending.project,
    });
    const [input, output] = message.fds;
    const code = await new Promise<number>((resolve) => {
      const child = spawn("git-upload-pack", [pending.repo], {
        stdio: [input, output, "pipe"],
      });
      const stderr: Uint8Array[] = [];
      child.stderr?.on("data", (chunk: Uint8Array) => stderr.push(chunk));
      let closed = false;
      const release = () => {
        if (closed) return;
        closed = true;
        closeDescriptor(input);
        closeDescriptor(output);
      };
      // upload-pack has its own copies once it runs; ours would keep git
      // from seeing the end of the stream.
      child.once("spawn", release);
      child.once("error", (error) => {
        release();
        this.#log.warn("git service failed", {
          service: "git-upload-pack",
          project: pending.project,
          error: error.message,
        });
        resolve(1);
      });
      child.once("close", (c) => {
        release();
        if (c !== 0) {
          this.#log.warn("git service failed", {
            service: "git-upload-pack",
            project: pending.project,
            code: c ?? -1,
            stderr: new TextDecoder().decode(
              Uint8Array.from(stderr.flatMap((s) => [...s])),
            ).trim().slice(0, 300),
          });
        }
        resolve(c ?? 1);
      });
    });
    return JSON.stringify({ ok: true, code });
  }

  /**
   * Logs a refusal, at most once per uid every {@link REFUSAL_LOG_MS}
   * (with how many were left out), so that nobody can flood the log.
   */
  #noteRefusal(uid: number, reason: string): void {
    const now = Date.now();
    const last = this.#refusals.get(uid);
    if (last && now - last.at < REFUSAL_LOG_MS) {
      last.suppressed++;
      return;
    }
    if (this.#refusals.size >= MAX_PENDING_HANDOFFS) this.#refusals.clear();
    this.#log.warn("fetch hand-off refused", {
      uid,
      reason,
      suppressed: last?.suppressed ?? 0,
    });
    this.#refusals.set(uid, { at: now, suppressed: 0 });
  }

  /** Stops taking hand-offs; fetches under way finish. */
  async close(): Promise<void> {
    await this.#listener?.close();
  }
}
