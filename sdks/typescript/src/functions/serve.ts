/**
 * Durable functions behind the push and pull plumbing: one job handler that runs a call request with the
 * replay executor, for the `serve` adapters (the push body is the call request, the 200 body the call
 * response) and for the pull `Worker` (the claimed payload is the call request, the job's result the call
 * response).
 *
 * Invariant: a job is run as a call only when its payload is a call request of a function served here;
 * anything else is refused with `NonRetriableError` (a misrouted call fails at once instead of retrying into
 * the same refusal), unless an ordinary handler takes it.
 */
import { NonRetriableError } from "../errors.js";
import type { OffloadFunction } from "./define.js";
import { executeCall, type ExecuteOptions } from "./execute.js";
import { isCallRequest, type CallRequest, type CallResponse, type StepOp } from "./protocol.js";

/** Largest call response the server reads from a push endpoint, in bytes. */
export const MAX_PUSH_RESPONSE_BYTES = 64 * 1024;

/** How calls are run. */
export interface CallOptions extends Omit<ExecuteOptions, "fetchSteps"> {
  /** Fetches recorded steps that did not fit in a call request. */
  fetchSteps?: ExecuteOptions["fetchSteps"];
}

/** The served functions by id; throws on a repeated id. */
export function byId(functions: readonly OffloadFunction<any, any>[]): Map<string, OffloadFunction<any, any>> {
  const map = new Map<string, OffloadFunction<any, any>>();
  for (const fn of functions) {
    if (map.has(fn.id)) throw new TypeError(`two functions have the id \`${fn.id}\``);
    map.set(fn.id, fn);
  }
  return map;
}

/**
 * Runs `payload` as a call when it is one for a function in `functions`; `undefined` when it is not a call
 * request at all (so an ordinary handler may take it).
 */
export async function runCall(
  functions: Map<string, OffloadFunction<any, any>>,
  payload: unknown,
  options: CallOptions,
): Promise<CallResponse | undefined> {
  if (!isCallRequest(payload)) return undefined;
  const request: CallRequest = payload;
  const fn = functions.get(request.function_id);
  if (!fn) {
    throw new NonRetriableError(`no function \`${request.function_id}\` is served here (serving: ${[...functions.keys()].join(", ") || "none"})`);
  }
  return executeCall(fn, request, options);
}

/**
 * A call response that fits in a push answer: the results of `run` steps too large for it, largest first, are
 * replaced by a non-retryable `StepOutputTooLarge` error (the same result every time, so retrying cannot
 * help); an output too large fails the call for good.
 */
export function fitPushResponse(response: CallResponse, max = MAX_PUSH_RESPONSE_BYTES): CallResponse {
  const size = (value: unknown) => new TextEncoder().encode(JSON.stringify(value)).length;
  if (size(response) <= max) return response;
  if (!("steps" in response)) {
    throw new NonRetriableError(`the function's output is ${size(response)} bytes; a push endpoint answers at most ${max}: return less, or serve the function from a pull Worker`);
  }
  const steps: StepOp[] = [...response.steps];
  const order = steps
    .map((op, i) => ({ i, bytes: op.op === "run" && op.data !== undefined ? size(op.data) : 0 }))
    .filter((o) => o.bytes > 0)
    .sort((a, b) => b.bytes - a.bytes);
  for (const { i, bytes } of order) {
    const op = steps[i];
    if (!op) continue;
    const message = `the step's result is ${bytes} bytes; a push endpoint answers at most ${max} bytes: return less (store it elsewhere and return its key), or serve the function from a pull Worker`;
    steps[i] = { id: op.id, op: "run", error: { name: "StepOutputTooLarge", message, retryable: false } };
    // Nothing may follow a failed step: the answer ends with it.
    steps.length = i + 1;
    if (size({ steps }) <= max) break;
  }
  return { steps };
}
