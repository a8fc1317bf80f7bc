/**
 * A claimed job as a handler sees it: payload and facts, `signal` (aborted when the job is cancelled, its
 * lease is lost, or the worker stops for good), `progress` and `log`.
 *
 * Invariant: `signal` only ever aborts; the reason says why (`"cancelled"`, `"lease_lost"`, `"shutdown"`).
 */
import type { HeartbeatResponse } from "../types.js";

/** Why a job's signal aborted. */
export type AbortReason = "cancelled" | "lease_lost" | "shutdown";

/** How important a log line is. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One log line as sent to the server. */
export interface LogLineInput {
  message: string;
  level: LogLevel;
  /** When it was written (RFC 3339). */
  at: string;
}

/** Where progress reports and log lines go: the server (heartbeats, `POST /v1/jobs/{id}/logs`), or lists in tests. */
export interface JobBackend {
  heartbeat(progress?: { percent: number; message?: string }): Promise<HeartbeatResponse>;
  log(lines: LogLineInput[]): Promise<void>;
}

/** What a handler is given. */
export interface JobFacts<P> {
  id: string;
  queue: string;
  name: string | undefined;
  payload: P;
  attempt: number;
  maxAttempts: number;
  tags: Record<string, string>;
  createdAt: string;
  timeoutMs: number;
}

/** Longest progress message the server takes, in bytes. */
export const MAX_PROGRESS_MESSAGE_BYTES = 1024;

/** Longest log message the server takes, in bytes. */
export const MAX_LOG_MESSAGE_BYTES = 4096;

/** One attempt of a job, handed to a handler. */
export class Job<P = unknown> implements JobFacts<P> {
  readonly id: string;
  readonly queue: string;
  readonly name: string | undefined;
  readonly payload: P;
  /** This attempt's number, 1 for the first. */
  readonly attempt: number;
  /** Attempts allowed. */
  readonly maxAttempts: number;
  readonly tags: Record<string, string>;
  readonly createdAt: string;
  /** The lease length: without a heartbeat within it the job is retried elsewhere (the worker heartbeats). */
  readonly timeoutMs: number;
  /** Made on first use: most handlers never look at their signal, and a worker runs thousands of jobs a second. */
  #controller: AbortController | undefined;
  #reason: AbortReason | undefined;
  readonly #backend: JobBackend;

  constructor(facts: JobFacts<P>, backend: JobBackend) {
    this.id = facts.id;
    this.queue = facts.queue;
    this.name = facts.name;
    this.payload = facts.payload;
    this.attempt = facts.attempt;
    this.maxAttempts = facts.maxAttempts;
    this.tags = facts.tags;
    this.createdAt = facts.createdAt;
    this.timeoutMs = facts.timeoutMs;
    this.#backend = backend;
  }

  /** Aborted when a user cancels the job, its lease is lost, or the worker stops for good; stop work then. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Why `signal` aborted, if it did. */
  get abortReason(): AbortReason | undefined {
    return this.#reason;
  }

  /**
   * Reports progress (0 to 100) with an optional short message (cut to 1024 bytes), shown on the job and the
   * dashboard. It also extends the lease, and aborts `signal` when the server says the job was cancelled.
   */
  async progress(percent: number, message?: string): Promise<void> {
    const p = Math.max(0, Math.min(100, Math.round(percent)));
    const answer = await this.#backend.heartbeat(message === undefined ? { percent: p } : { percent: p, message: cut(message) });
    if (answer.cancel_requested) this.abort("cancelled");
  }

  /**
   * Attaches a log line to the job (shown on the job's page, read with `GET /v1/jobs/{id}/logs`), recorded with
   * this attempt. The message is cut to 4096 bytes and NUL characters become U+FFFD. The server keeps each
   * job's newest 1,000 lines.
   */
  async log(message: string, level: LogLevel = "info"): Promise<void> {
    const clean = cut(message.replaceAll("\0", "\uFFFD"), MAX_LOG_MESSAGE_BYTES);
    await this.#backend.log([{ message: clean, level, at: new Date().toISOString() }]);
  }

  /** A heartbeat without progress: extends the lease; aborts `signal` on a cancel request. */
  async heartbeat(): Promise<void> {
    const answer = await this.#backend.heartbeat();
    if (answer.cancel_requested) this.abort("cancelled");
  }

  /** Aborts `signal` (once; the first reason stays). */
  abort(reason: AbortReason): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/** `message` cut to at most `max` UTF-8 bytes (default `MAX_PROGRESS_MESSAGE_BYTES`), at a character boundary. */
export function cut(message: string, max: number = MAX_PROGRESS_MESSAGE_BYTES): string {
  const encoder = new TextEncoder();
  if (encoder.encode(message).length <= max) return message;
  let out = "";
  let bytes = 0;
  for (const ch of message) {
    const n = encoder.encode(ch).length;
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}
