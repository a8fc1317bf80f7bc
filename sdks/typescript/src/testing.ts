/**
 * `@offload/sdk/testing`: helpers for users' own tests, with no server.
 *
 * - `signedRequest` / `signedHeaders` build a delivery exactly as the server signs it, to send through your
 *   real route (signature checks included);
 * - `deliver` runs a push handler on a payload without any signature (the verify-free mode) and returns the
 *   answer the server would get;
 * - `perform` runs a pull worker handler in memory and returns how the attempt ended, with the progress it
 *   reported;
 * - `callFunction` runs one call of a durable function in memory, with the step results you give, and returns
 *   its call response (what the server would record next);
 * - `runFunction` runs a whole run in memory, call after call, as the server would: sleeps pass at once, waits
 *   and invokes are answered by callbacks, failed steps are retried on their own count.
 */
import type { OffloadFunction } from "./functions/define.js";
import { executeCall, type ExecuteOptions } from "./functions/execute.js";
import type { CallRequest, CallResponse, FunctionEvent, StepOp, StepResult, WireEvent } from "./functions/protocol.js";
import { answer, SKIP_VERIFY, type PushHandler, type Reply } from "./push/handler.js";
import { sign, toBase64 } from "./push/verify.js";
import { Job, type AbortReason, type LogLineInput } from "./worker/job.js";
import { completed, outcomeOf, type Outcome } from "./worker/outcomes.js";
import type { JobHandler } from "./worker/worker.js";

/** Facts of a test delivery or job. */
export interface TestJobOptions {
  /** Job id (default: a random UUID). */
  jobId?: string;
  queue?: string;
  name?: string;
  attempt?: number;
  maxAttempts?: number;
}

/** Options of `signedRequest`. */
export interface SignOptions extends TestJobOptions {
  /** The secret to sign with, `whsec_...`. */
  secret: string;
  /** Signing time, Unix seconds (default now; set it in the past to test the freshness check). */
  timestamp?: number;
  /** Extra headers. */
  headers?: Record<string, string>;
}

/** A new random secret, `whsec_<base64 of 32 bytes>`. */
export function generateSecret(): string {
  return "whsec_" + toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

/** The headers the server sends with a delivery of `body`, signed with `options.secret`. */
export async function signedHeaders(body: string, options: SignOptions): Promise<Record<string, string>> {
  const id = options.jobId ?? crypto.randomUUID();
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    "content-type": "application/json",
    ...options.headers,
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await sign(id, timestamp, body, options.secret),
    "offload-job-id": id,
    "offload-queue": options.queue ?? "default",
    "offload-attempt": String(options.attempt ?? 1),
    "offload-max-attempts": String(options.maxAttempts ?? 25),
    ...(options.name ? { "offload-job-name": options.name } : {}),
  };
}

/** A POST of `payload` to `url`, signed as the server signs deliveries. */
export async function signedRequest(url: string, payload: unknown, options: SignOptions): Promise<Request> {
  const body = JSON.stringify(payload);
  return new Request(url, { method: "POST", headers: await signedHeaders(body, options), body });
}

/** The answer a push handler gives, as the server would read it. */
export interface Delivered {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** What the server makes of it. */
  outcome: "succeeded" | "retry" | "dead";
}

/** Runs a push handler on `payload` without verifying anything, and returns its answer. */
export async function deliver<P, R>(handler: PushHandler<P, R>, payload: P, options: TestJobOptions = {}): Promise<Delivered> {
  const id = options.jobId ?? crypto.randomUUID();
  const headers = new Headers({
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
    "offload-job-id": id,
    "offload-queue": options.queue ?? "default",
    "offload-attempt": String(options.attempt ?? 1),
    "offload-max-attempts": String(options.maxAttempts ?? 25),
    ...(options.name ? { "offload-job-name": options.name } : {}),
  });
  const reply: Reply = await answer(handler, { headers, body: new TextEncoder().encode(JSON.stringify(payload)) }, SKIP_VERIFY);
  return { ...reply, outcome: pushOutcome(reply.status) };
}

/** The server's reading of a status (its push outcome rules). */
function pushOutcome(status: number): Delivered["outcome"] {
  if (status >= 200 && status < 300) return "succeeded";
  if (status === 408 || status === 429 || status >= 500) return "retry";
  return "dead";
}

/** Options of `perform`. */
export interface PerformOptions extends TestJobOptions {
  tags?: Record<string, string>;
  timeoutMs?: number;
  /** Answer heartbeats with `cancel_requested` (as if a user cancelled the job). */
  cancelRequested?: boolean;
  /** Abort the job's signal with this reason before the handler starts. */
  abort?: AbortReason;
}

/** How a handler run by `perform` ended. */
export interface Performed {
  /** The report the worker would send. */
  outcome: Outcome;
  /** Progress reported, in order. */
  progress: { percent: number; message?: string }[];
  /** Every log line the handler wrote, in order. */
  logs: LogLineInput[];
  /** The job's state after the report, by the server's rules (without a cancel request). */
  state: "succeeded" | "retrying" | "dead" | "scheduled" | "available" | "cancelled";
}

/** Runs a pull worker handler on `payload` in memory. */
export async function perform<P, R>(handler: JobHandler<P, R>, payload: P, options: PerformOptions = {}): Promise<Performed> {
  const progress: Performed["progress"] = [];
  const logs: LogLineInput[] = [];
  const attempt = options.attempt ?? 1;
  const maxAttempts = options.maxAttempts ?? 25;
  const job = new Job<P>(
    {
      id: options.jobId ?? crypto.randomUUID(),
      queue: options.queue ?? "default",
      name: options.name,
      payload: structuredClone(payload),
      attempt,
      maxAttempts,
      tags: options.tags ?? {},
      createdAt: new Date().toISOString(),
      timeoutMs: options.timeoutMs ?? 300_000,
    },
    {
      heartbeat: async (p) => {
        if (p) progress.push(p);
        return { cancel_requested: options.cancelRequested ?? false, lease_expires_at: new Date().toISOString() };
      },
      log: async (lines) => {
        logs.push(...lines);
      },
    },
  );
  if (options.abort) job.abort(options.abort);
  let outcome: Outcome;
  try {
    outcome = completed(JSON.parse(JSON.stringify((await handler(job)) ?? null)) ?? undefined);
  } catch (e) {
    outcome = outcomeOf(e);
  }
  return { outcome, progress, logs, state: stateAfter(outcome, attempt, maxAttempts) };
}

function stateAfter(outcome: Outcome, attempt: number, maxAttempts: number): Performed["state"] {
  switch (outcome.kind) {
    case "complete":
      return "succeeded";
    case "abort":
      return "cancelled";
    case "snooze":
      return outcome.delayMs > 0 ? "scheduled" : "available";
    case "fail":
      return outcome.retryable && attempt < maxAttempts ? "retrying" : "dead";
  }
}

/** Options of `callFunction`. */
export interface CallFunctionOptions extends Omit<ExecuteOptions, "fetchSteps"> {
  /** The run's event (default `{ name: "test/event", data: {} }`). */
  event?: FunctionEvent<any>;
  /** Steps already recorded, by id: `{ charge: { data: {...} }, email: { error: { name, message } } }`. */
  steps?: Record<string, StepResult>;
  /** Make the call for this planned parallel step. */
  runStep?: string;
  attempt?: number;
  runId?: string;
}

/** Runs one call of `fn` in memory and returns its call response; rejects as the call would fail. */
export function callFunction(fn: OffloadFunction<any, any>, options: CallFunctionOptions = {}): Promise<CallResponse> {
  const { event = { name: "test/event", data: {} }, steps = {}, runStep, attempt = 1, runId = crypto.randomUUID(), ...rest } = options;
  const request: CallRequest = { run_id: runId, function_id: fn.id, attempt, event, events: [event], steps };
  if (runStep !== undefined) request.run_step = runStep;
  return executeCall(fn, request, rest);
}

/** Options of `runFunction`. */
export interface RunFunctionOptions extends Omit<ExecuteOptions, "fetchSteps"> {
  /** The run's event (default `{ name: "test/event", data: {} }`). */
  event?: FunctionEvent<any>;
  /** The event a `waitForEvent` step receives (default: none, as after its timeout). */
  onWait?: (step: { id: string; event: string; match?: string }) => FunctionEvent<any> | null | undefined;
  /** The output of an invoked function; throw (e.g. a `StepError`) for its error. Default: `null`. */
  onInvoke?: (step: { id: string; function_id: string; data?: unknown }) => unknown;
  /** Most calls before giving up (default 1000). */
  maxCalls?: number;
}

/** How a run simulated by `runFunction` ended. */
export interface RunResult {
  /** The run's output. */
  output: unknown;
  /** Every recorded step, by id. */
  steps: Record<string, StepResult>;
  /** Events sent by `sendEvent` steps, in order. */
  sent: WireEvent[];
  /** Failed attempts of steps, by id. */
  failures: Record<string, number>;
  /** Calls made. */
  calls: number;
}

/**
 * Runs `fn` for one event from start to end in memory, as the server would. Rejects as the run would fail:
 * with the error of a call that failed (an error outside steps, or a recorded step error left uncaught).
 */
export async function runFunction(fn: OffloadFunction<any, any>, options: RunFunctionOptions = {}): Promise<RunResult> {
  const { event = { name: "test/event", data: {} }, onWait, onInvoke, maxCalls = 1000, ...execute } = options;
  const retries = fn.config.retries ?? 4;
  const result: RunResult = { output: undefined, steps: {}, sent: [], failures: {}, calls: 0 };
  const runId = crypto.randomUUID();
  let retrying: string | undefined;
  const call = (runStep?: string): Promise<CallResponse> => {
    if (++result.calls > maxCalls) throw new Error(`the run took more than ${maxCalls} calls`);
    const request: CallRequest = {
      run_id: runId,
      function_id: fn.id,
      attempt: 1 + (retrying ? result.failures[retrying] ?? 0 : 0),
      event,
      events: [event],
      steps: structuredClone(result.steps),
    };
    if (runStep !== undefined) request.run_step = runStep;
    return executeCall(fn, request, execute);
  };
  const apply = async (op: StepOp): Promise<void> => {
    if (result.steps[op.id]) return;
    switch (op.op) {
      case "run":
        if (op.error) {
          const failed = (result.failures[op.id] ?? 0) + 1;
          if (op.error.retryable !== false && failed <= retries) {
            result.failures[op.id] = failed;
            retrying = op.id;
            return;
          }
          result.steps[op.id] = { error: { name: op.error.name, message: op.error.message } };
        } else {
          result.steps[op.id] = { data: op.data ?? null };
        }
        return;
      case "sleep":
        result.steps[op.id] = { data: null };
        return;
      case "wait_for_event":
        result.steps[op.id] = { data: onWait?.(op.match === undefined ? { id: op.id, event: op.event } : { id: op.id, event: op.event, match: op.match }) ?? null };
        return;
      case "send_event":
        result.sent.push(...op.events);
        result.steps[op.id] = { data: { ids: op.events.map(() => crypto.randomUUID()) } };
        return;
      case "invoke":
        try {
          result.steps[op.id] = { data: JSON.parse(JSON.stringify((await onInvoke?.(op)) ?? null)) };
        } catch (e) {
          const error = e instanceof Error ? e : new Error(String(e));
          result.steps[op.id] = { error: { name: error.name, message: error.message } };
        }
        return;
      case "plan_run":
        for (;;) {
          const answer = await call(op.id);
          if (!("steps" in answer) || answer.steps.length !== 1 || answer.steps[0]!.id !== op.id) {
            throw new Error(`the call for parallel step ${op.id} answered ${JSON.stringify(answer)}`);
          }
          await apply(answer.steps[0]!);
          if (result.steps[op.id]) return;
        }
    }
  };
  for (;;) {
    const answer = await call();
    retrying = undefined;
    if ("done" in answer) {
      result.output = answer.output;
      return result;
    }
    for (const op of answer.steps) await apply(op);
  }
}
