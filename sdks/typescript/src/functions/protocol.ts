/**
 * The call protocol's wire types (`docs/functions-protocol.md`): what a call delivers to function code (the job
 * payload of every call, pushed or claimed) and what the code answers (the push response body, or the pull
 * job's result).
 *
 * Invariant: these types mirror the server's `offload_core::function::protocol` exactly; the executor only ever
 * builds answers of these shapes.
 */

/** An event as a run sees it: the one that started it, or one a `waitForEvent` step received. */
export interface FunctionEvent<D = Record<string, unknown>> {
  /** The event's name, e.g. `app/user.signup`. */
  name: string;
  /** Its data (an object; `{}` when the sender gave none). */
  data: D;
  /** The sender's de-duplication id, when it gave one. */
  id?: string | null;
  /** When it happened (RFC 3339). */
  ts?: string | null;
}

/** An event to send: `name` and optional `data`, de-duplication `id` and `ts`. */
export interface EventInput<D = Record<string, unknown>> {
  /** 1 to 128 ASCII letters, digits and `-_.:/`, e.g. `app/order.paid`. */
  name: string;
  /** A JSON object (default `{}`). */
  data?: D;
  /** De-duplication key: an event whose id was seen within the retention starts nothing again. */
  id?: string;
  /** When it happened (RFC 3339 or a `Date`; default: when the server received it). */
  ts?: string | Date;
}

/** A recorded step as the code sees it on replay. */
export type StepResult = { data: unknown } | { error: { name: string; message: string } };

/** What every call delivers. */
export interface CallRequest {
  run_id: string;
  function_id: string;
  /** 1 + the failed attempts of the step this call retries. */
  attempt: number;
  /** The event that started the run. */
  event: FunctionEvent;
  /** Every event of the run. */
  events: FunctionEvent[];
  /** Every step recorded so far, by step id. */
  steps: Record<string, StepResult>;
  /** Present in a call made for one planned parallel step: run only it. */
  run_step?: string;
  /** True when the steps did not fit in the request: fetch them from `GET /v1/runs/{id}/steps`. */
  steps_omitted?: boolean;
}

/** A step's error as reported: `retryable: false` records it at once instead of retrying the step. */
export interface StepErrorWire {
  name: string;
  message: string;
  retryable?: boolean;
}

/** One op of an answer. */
export type StepOp =
  | { id: string; op: "run"; data?: unknown; error?: StepErrorWire }
  | { id: string; op: "sleep"; until: string }
  | { id: string; op: "wait_for_event"; event: string; match?: string; timeout: number }
  | { id: string; op: "send_event"; events: WireEvent[] }
  | { id: string; op: "invoke"; function_id: string; data?: unknown; timeout?: number }
  | { id: string; op: "plan_run" };

/** An event as the server takes it (`ts` as RFC 3339 text). */
export interface WireEvent {
  name: string;
  data?: unknown;
  id?: string;
  ts?: string;
}

/** A call response: the run's output, or the steps ran and what comes next. */
export type CallResponse = { done: true; output: unknown } | { steps: StepOp[] };

/** Whether `value` has the shape of a call request (a push body or a claimed job's payload). */
export function isCallRequest(value: unknown): value is CallRequest {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.run_id === "string" &&
    typeof v.function_id === "string" &&
    typeof v.attempt === "number" &&
    typeof v.event === "object" &&
    v.event !== null &&
    typeof v.steps === "object" &&
    v.steps !== null
  );
}

/** An event in the server's shape. */
export function wireEvent(event: EventInput<unknown>): WireEvent {
  const out: WireEvent = { name: event.name };
  if (event.data !== undefined) out.data = event.data;
  if (event.id !== undefined) out.id = event.id;
  if (event.ts !== undefined) out.ts = event.ts instanceof Date ? event.ts.toISOString() : event.ts;
  return out;
}
