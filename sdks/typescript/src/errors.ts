/**
 * Every error the SDK throws or understands. `OffloadError` carries what the server said; the other classes
 * are thrown by user code to choose how an attempt ends (in a push handler and in a pull worker alike).
 */
import type { Problem } from "./types.js";

/**
 * A call to the server failed. For an answer of the server, `status`, `code`, `detail` and `field` are its
 * problem document's; when no answer came (connection refused, reset, timeout), `status` is 0 and `code` is
 * `connection_failed`, with the underlying error as `cause`.
 */
export class OffloadError extends Error {
  /** HTTP status (0 when the server could not be reached). */
  readonly status: number;
  /** Stable machine-readable code, e.g. `invalid_field`, `not_found`, `lease_mismatch`. */
  readonly code: string;
  /** The server's human explanation. */
  readonly detail: string;
  /** JSON path of the offending field, when one is to blame. */
  readonly field: string | undefined;
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    status: number,
    code: string,
    detail: string,
    field?: string | null,
    options?: { cause?: unknown; retryAfterMs?: number | undefined },
  ) {
    super(`${code} (${status}): ${detail}`, options);
    this.retryAfterMs = options?.retryAfterMs;
    this.name = "OffloadError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.field = field ?? undefined;
  }

  /** An error from a problem document. */
  static fromProblem(problem: Problem): OffloadError {
    return new OffloadError(problem.status, problem.code, problem.detail, problem.field);
  }

  /** True when no answer came from the server. */
  get isConnectionError(): boolean {
    return this.status === 0;
  }
}

/** The code of an [`OffloadError`] raised when the server could not be reached. */
export const CONNECTION_FAILED = "connection_failed";

/**
 * Thrown by a handler: the job must not be tried again. A push delivery answers 422 (the server makes the job
 * dead); a pull worker reports a failure with `retryable: false`.
 */
export class NonRetriableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetriableError";
  }
}

/**
 * Thrown by a handler: the attempt failed and the job should be tried again after `retryAfterMs`, instead of
 * after its backoff. A push delivery answers 503 with `Retry-After` (whole seconds, rounded up); a pull worker
 * reports the failure with `retry_after`.
 */
export class RetryAfterError extends Error {
  /** Milliseconds until the next attempt. */
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number, message = `retry after ${retryAfterMs} ms`, options?: { cause?: unknown }) {
    super(message, options);
    if (!Number.isFinite(retryAfterMs) || retryAfterMs < 0) {
      throw new RangeError(`retryAfterMs must be a non-negative number, not ${retryAfterMs}`);
    }
    this.name = "RetryAfterError";
    this.retryAfterMs = retryAfterMs;
  }
}

/** The text of anything thrown, for an attempt's error. */
export function errorMessage(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message || thrown.name;
  if (typeof thrown === "string") return thrown;
  try {
    return JSON.stringify(thrown) ?? String(thrown);
  } catch {
    return String(thrown);
  }
}

/**
 * A step's recorded error, thrown into a durable function where it calls that step: its retries were used up,
 * it threw `NonRetriableError`, or (for `step.invoke`) the invoked run failed. `name` is the original error's
 * name (e.g. `TypeError`, `CardDeclined`, `InvokeTimeout`), so code can catch it by name. Left uncaught it
 * fails the run.
 */
export class StepError extends Error {
  /** The step that failed. */
  readonly stepId: string;

  constructor(stepId: string, error: { name: string; message: string }) {
    super(error.message);
    this.name = error.name;
    this.stepId = stepId;
  }
}
