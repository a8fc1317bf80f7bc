/**
 * How a pull worker's handler ends an attempt, and the one function that turns that end into the report the
 * server gets. Pure: tested without a server.
 *
 * - return a value: completed, the value kept as the job's result;
 * - throw `NonRetriableError` (or `fatal(...)`): failed for good, the job is dead;
 * - throw `RetryAfterError(ms)`: failed, retried after `ms` instead of the job's backoff;
 * - throw `SnoozeError(ms)` (or `snooze(ms)`): run again after `ms` without using up an attempt;
 * - throw `CancelError` (or `cancel(reason)`): the job ends cancelled, whatever attempts are left;
 * - throw anything else: failed, retried with the job's backoff (or dead when attempts are exhausted).
 */
import { errorMessage, NonRetriableError, RetryAfterError } from "../errors.js";

/** Thrown by a handler: run the job again after `delayMs`, without using up an attempt. */
export class SnoozeError extends Error {
  /** Milliseconds until the job runs again. */
  readonly delayMs: number;

  constructor(delayMs: number) {
    super(`snoozed for ${delayMs} ms`);
    if (!Number.isFinite(delayMs) || delayMs < 0) throw new RangeError(`delayMs must be a non-negative number, not ${delayMs}`);
    this.name = "SnoozeError";
    this.delayMs = delayMs;
  }
}

/** Thrown by a handler: end the job cancelled at once, whatever attempts are left. */
export class CancelError extends Error {
  constructor(reason = "cancelled by the worker") {
    super(reason);
    this.name = "CancelError";
  }
}

/** `throw fatal("no such user")`: the job goes dead without another attempt. */
export function fatal(message: string): NonRetriableError {
  return new NonRetriableError(message);
}

/** `throw snooze(60_000)`: run again in a minute without using up an attempt. */
export function snooze(delayMs: number): SnoozeError {
  return new SnoozeError(delayMs);
}

/** `throw cancel("user deleted")`: end the job cancelled. */
export function cancel(reason?: string): CancelError {
  return new CancelError(reason);
}

/** `throw retryAfter(5_000, "rate limited")`: retry in five seconds instead of after the backoff. */
export function retryAfter(delayMs: number, message?: string): RetryAfterError {
  return new RetryAfterError(delayMs, message);
}

/** What to tell the server about an ended attempt. */
export type Outcome =
  | { kind: "complete"; result: unknown }
  | { kind: "fail"; error: string; retryable: boolean; retryAfterMs?: number }
  | { kind: "snooze"; delayMs: number }
  | { kind: "abort"; reason: string };

/** The outcome of a handler that returned `result`. */
export function completed(result: unknown): Outcome {
  return { kind: "complete", result };
}

/** The outcome of a handler that threw `thrown`. */
export function outcomeOf(thrown: unknown): Outcome {
  if (thrown instanceof SnoozeError) return { kind: "snooze", delayMs: thrown.delayMs };
  if (thrown instanceof CancelError) return { kind: "abort", reason: thrown.message };
  if (thrown instanceof NonRetriableError) return { kind: "fail", error: thrown.message, retryable: false };
  if (thrown instanceof RetryAfterError) {
    return { kind: "fail", error: thrown.message, retryable: true, retryAfterMs: thrown.retryAfterMs };
  }
  return { kind: "fail", error: errorMessage(thrown), retryable: true };
}
