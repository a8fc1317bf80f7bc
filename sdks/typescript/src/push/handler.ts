/**
 * What a push endpoint answers, decided once for every adapter: a delivery is verified, its payload decoded,
 * the user's handler run, and its end turned into the status the server reads as the attempt's outcome.
 *
 * | handler                          | answer                       | the server                      |
 * | -------------------------------- | ---------------------------- | ------------------------------- |
 * | returns a value                  | 200, the value as JSON       | job succeeded (body = result)   |
 * | returns `undefined`              | 204                          | job succeeded                   |
 * | throws `NonRetriableError`       | 422, the message             | job dead, no retry              |
 * | throws `RetryAfterError(ms)`     | 503, `Retry-After: ceil(s)`  | retried after that delay        |
 * | throws anything else             | 500, the message             | retried with the job's backoff  |
 * | request not signed / stale       | 401                          | job dead (a misconfigured key)  |
 * | body is not JSON                 | 400                          | job dead                        |
 */
import { errorMessage, NonRetriableError, RetryAfterError } from "../errors.js";
import { readEnv } from "../env.js";
import { Offload } from "../client.js";
import type { OffloadFunction } from "../functions/define.js";
import { byId, fitPushResponse, runCall, type CallOptions } from "../functions/serve.js";
import { HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, verifyParts, VerifyError, type Secrets } from "./verify.js";

/** What a push handler is given. */
export interface PushContext<P = unknown> {
  /** The job's payload (the request's JSON body). */
  payload: P;
  /** The job's id (`offload-job-id`; also the `webhook-id`, the same for every attempt: de-duplicate on it). */
  jobId: string;
  /** The job's queue. */
  queue: string;
  /** The job's name, when it has one. */
  name: string | undefined;
  /** This attempt's number, 1 for the first. */
  attempt: number;
  /** Attempts allowed. */
  maxAttempts: number;
  /** When the server signed the delivery, Unix seconds. */
  timestamp: number;
  /** Every request header, lower-case names. */
  headers: Headers;
}

/** A push handler: returns the job's result, or throws to fail the attempt. */
export type PushHandler<P = unknown, R = unknown> = (delivery: PushContext<P>) => R | Promise<R>;

/** Options of every `serve` adapter. */
export interface ServeOptions {
  /**
   * Secret(s) the server signs with, `whsec_<base64>`; several during a rotation (default: the
   * `OFFLOAD_SIGNING_SECRET` environment variable, comma-separated for several).
   */
  secret?: Secrets;
  /** Seconds a delivery's timestamp may be away from the local clock (default 300). */
  toleranceSeconds?: number;
  /** Largest body read, in bytes (default 16 MiB); larger requests get 413. */
  maxBodyBytes?: number;
}

/**
 * Options of `serve({ functions })`: durable functions whose calls this endpoint answers (the call response
 * with 200), and optionally a handler for ordinary jobs delivered to the same URL.
 */
export interface ServeFunctionsOptions extends ServeOptions, CallOptions {
  /** The functions served here; a call names its function by id. */
  functions: readonly OffloadFunction<any, any>[];
  /** Runs deliveries that are not calls (ordinary push jobs). Without it they are refused (422: dead). */
  handler?: PushHandler<any, any>;
  /** Client used to fetch recorded steps that did not fit in a call (default: `new Offload()`, from the environment). */
  client?: Offload;
}

/** The handler and options of a `serve` adapter's arguments, with functions turned into one handler. */
export function toPushHandler<P, R>(
  handler: PushHandler<P, R> | ServeFunctionsOptions,
  options: ServeOptions,
): [PushHandler<P, R>, ServeOptions] {
  if (typeof handler === "function") return [handler, options];
  if (!handler || !Array.isArray(handler.functions)) {
    throw new TypeError("serve: give a handler function, or { functions: [...] }");
  }
  const { functions, handler: jobs, client, secret, toleranceSeconds, maxBodyBytes, ...call } = handler;
  const served = byId(functions);
  let lazyClient = client;
  const fetchSteps = call.fetchSteps ?? ((runId: string) => (lazyClient ??= new Offload()).runs.recordedSteps(runId));
  const merged: ServeOptions = { ...options };
  if (secret !== undefined) merged.secret = secret;
  if (toleranceSeconds !== undefined) merged.toleranceSeconds = toleranceSeconds;
  if (maxBodyBytes !== undefined) merged.maxBodyBytes = maxBodyBytes;
  const run: PushHandler<any, any> = async (delivery) => {
    const response = await runCall(served, delivery.payload, { ...call, fetchSteps });
    if (response !== undefined) return fitPushResponse(response);
    if (jobs) return jobs(delivery);
    throw new NonRetriableError("this endpoint serves durable functions, and the delivery is not a call request");
  };
  return [run as PushHandler<P, R>, merged];
}

/** The default of `maxBodyBytes`. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** An answer, independent of any framework. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A request as the adapters hand it over: a header lookup and the raw body. */
export interface Incoming {
  headers: Headers;
  body: Uint8Array;
}

/** Verification is skipped only through the testing module, which passes this. */
export const SKIP_VERIFY: unique symbol = Symbol("offload.skip-verify");

/** The secrets of `options`, else of the environment; throws when there are none. */
export function resolveSecrets(options: ServeOptions): Secrets {
  const secrets = options.secret ?? readEnv("OFFLOAD_SIGNING_SECRET")?.split(",").map((s) => s.trim()).filter(Boolean);
  if (!secrets || secrets.length === 0) {
    throw new TypeError("no signing secret: pass { secret } or set OFFLOAD_SIGNING_SECRET (see `offload push secret`)");
  }
  return secrets;
}

function text(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers }, body };
}

/** Runs `handler` for one request and decides the answer. `secrets` is `SKIP_VERIFY` only in tests. */
export async function answer<P, R>(
  handler: PushHandler<P, R>,
  request: Incoming,
  secrets: Secrets | typeof SKIP_VERIFY,
  options: ServeOptions = {},
): Promise<Reply> {
  const h = request.headers;
  let timestamp = Number(h.get(HEADER_TIMESTAMP) ?? 0);
  if (secrets !== SKIP_VERIFY) {
    try {
      const verified = await verifyParts(
        { id: h.get(HEADER_ID), timestamp: h.get(HEADER_TIMESTAMP), signature: h.get(HEADER_SIGNATURE), body: request.body },
        secrets,
        options.toleranceSeconds === undefined ? {} : { toleranceSeconds: options.toleranceSeconds },
      );
      timestamp = verified.timestamp;
    } catch (e) {
      if (e instanceof VerifyError) return text(401, `not a verified Offload delivery: ${e.message}`);
      throw e;
    }
  }
  let payload: P;
  try {
    const raw = new TextDecoder().decode(request.body);
    payload = (raw === "" ? null : JSON.parse(raw)) as P;
  } catch (e) {
    return text(400, `the body is not JSON: ${errorMessage(e)}`);
  }
  const context: PushContext<P> = {
    payload,
    jobId: h.get("offload-job-id") ?? h.get(HEADER_ID) ?? "",
    queue: h.get("offload-queue") ?? "",
    name: h.get("offload-job-name") ?? undefined,
    attempt: Number(h.get("offload-attempt") ?? 1),
    maxAttempts: Number(h.get("offload-max-attempts") ?? 1),
    timestamp,
    headers: h,
  };
  try {
    const result = await handler(context);
    if (result === undefined) return { status: 204, headers: {}, body: "" };
    return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(result) };
  } catch (e) {
    if (e instanceof NonRetriableError) return text(422, e.message);
    if (e instanceof RetryAfterError) {
      return text(503, e.message, { "retry-after": String(Math.ceil(e.retryAfterMs / 1000)) });
    }
    return text(500, errorMessage(e));
  }
}
