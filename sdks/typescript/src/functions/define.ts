/**
 * `createFunction`: a durable function's definition (id, triggers, where its calls run, retries, timeout,
 * `cancelOn`) with its code, and the registered form of that definition (`FunctionSpec`) the server stores.
 *
 * Invariant: an `OffloadFunction` only exists if its definition passed the checks the server makes on shape
 * (id, event names, one of `event`/`cron` per trigger, retries in range, durations), so a sync or a `put`
 * refused by the server means a server-side rule (such as the push address policy), never a typo caught late.
 */
import type { Backoff, Target } from "../types.js";
import type { CancelOnSpec, FunctionSpec, TriggerSpec } from "./api.js";
import { durationToMs, type DurationInput } from "./duration.js";
import type { EventInput, FunctionEvent } from "./protocol.js";
import type { components } from "../api.gen.js";

type Schemas = components["schemas"];

/** What starts a run: an event by name (with an optional filter), or a cron schedule. */
export type FunctionTrigger =
  | {
      /** The event name, e.g. `app/user.signup`. */
      event: string;
      /** A filter the event must pass: `{ "data.plan": "pro", "data.amount": { gte: 100 } }`. */
      if?: Record<string, unknown>;
    }
  | {
      /** A cron expression, e.g. `0 9 * * MON-FRI`. */
      cron: string;
      /** IANA time zone (default UTC). */
      timezone?: string;
    };

/** Cancels a run when `event` arrives; with `match`, only runs whose event has the same value there. */
export interface CancelOn {
  event: string;
  /** A field path compared between the two events, e.g. `data.user_id`. */
  match?: string;
}

/** A function's definition. */
export interface FunctionConfig {
  /** Stable id: 1 to 128 ASCII letters, digits and `-_.:`. Keep it across deploys (runs in flight use it). */
  id: string;
  /** Human name shown in the dashboard. */
  name?: string;
  /** What starts a run (one trigger, or several). */
  trigger: FunctionTrigger | FunctionTrigger[];
  /** Retries of a failed step, and of a call that failed outside any step (default 4: 5 attempts). */
  retries?: number;
  /** Delay between retries (default: 1 s doubling to 1 h, with jitter). */
  backoff?: Backoff;
  /** Lease of one call: how long one call may take (default 5 minutes). */
  timeout?: DurationInput;
  /** Events that cancel a running, sleeping or waiting run. */
  cancelOn?: CancelOn | CancelOn[];
  /** Push: the URL (or full target) the server delivers calls to, where `serve({ functions })` answers. */
  target?: string | Target;
  /** Pull: the queue workers claim calls from (default: the id). Not with `target`. */
  queue?: string;
  /**
   * Most running calls: a number (for the whole function), or up to two limits, at most one with a `key`
   * (a field path into the event, e.g. `data.account_id`: the limit holds per value). They become the
   * function's queue's limits; see the flow-control guide.
   */
  concurrency?: number | FunctionConcurrency | FunctionConcurrency[];
  /** Most call starts per period (`{ limit: 5, period: "1s", burst?, key? }`). */
  throttle?: FunctionThrottle;
  /** Events beyond `limit` per `period` (per value of `key`) start no run; the event lists the function as skipped. */
  rateLimit?: FunctionRateLimit;
  /** At most one live run (per value of `key`): `mode: "skip"` skips the new event, `"cancel"` cancels the old run. */
  singleton?: FunctionSingleton;
}

/** One concurrency limit of a function. */
export type FunctionConcurrency = Schemas["FunctionConcurrency"];
/** A function's throttle. */
export type FunctionThrottle = Schemas["FunctionThrottle"];
/** A function's rate limit. */
export type FunctionRateLimit = Schemas["FunctionRateLimit"];
/** A function's singleton rule. */
export type FunctionSingleton = Schemas["FunctionSingleton"];

/** Writes for the run's log; silent while the code replays recorded steps, so each line is written once. */
export interface FunctionLogger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** Options of `step.waitForEvent`. */
export interface WaitForEventOptions {
  /** The awaited event's name. */
  event: string;
  /**
   * A field path compared between the awaited event and the run's event: `"data.user_id"` waits for an event
   * whose `data.user_id` equals the run's event's. Without it, any event of that name.
   */
  match?: string;
  /** How long to wait before the step resolves to `null` (at most a year). */
  timeout: DurationInput;
}

/** Options of `step.invoke`. */
export interface InvokeOptions {
  /** The function to run (its object, or its id). */
  function: OffloadFunction<any, any> | string;
  /** The `data` of the event the child run gets (`{"name": "offload/function.invoked", "data": ...}`). */
  data?: Record<string, unknown>;
  /** How long to wait for the child run (default and most: a year); then the step throws `InvokeTimeout`. */
  timeout?: DurationInput;
}

/**
 * The durable steps. Each takes an id unique within the run (repeats are numbered: `send`, `send:1`, ...); a
 * step recorded by an earlier call returns its recorded result without running again.
 */
export interface Step {
  /**
   * Runs `fn` once (retried on its own count when it throws; `NonRetriableError` fails it at once) and records
   * its result as JSON: what you get back is the JSON form (`undefined` becomes `null`, a `Date` a string).
   * `Promise.all` over several `step.run`s runs them in parallel, one call each.
   */
  run<T>(id: string, fn: () => T | Promise<T>): Promise<Awaited<T>>;
  /** Sleeps for a duration (`"1h"`, `"3d"`, milliseconds); no process waits meanwhile. */
  sleep(id: string, duration: DurationInput): Promise<void>;
  /** Sleeps until a time (a `Date`, RFC 3339 text, or epoch milliseconds). */
  sleepUntil(id: string, until: Date | string | number): Promise<void>;
  /** Waits for an event; resolves to it, or to `null` after the timeout. */
  waitForEvent<D = Record<string, unknown>>(id: string, options: WaitForEventOptions): Promise<FunctionEvent<D> | null>;
  /** Sends events once, however often the code replays; resolves to their ids. */
  sendEvent(id: string, events: EventInput<unknown> | EventInput<unknown>[]): Promise<{ ids: string[] }>;
  /** Runs another function with `data` and resolves to its output (throws its error, or `InvokeTimeout`). */
  invoke<O = unknown>(id: string, options: InvokeOptions): Promise<O>;
}

/** What the function's code is given on every call. */
export interface FunctionContext<D = Record<string, unknown>> {
  /** The event that started the run. */
  event: FunctionEvent<D>;
  /** Every event of the run (one, unless the function batches events). */
  events: FunctionEvent<D>[];
  /** The durable steps. */
  step: Step;
  /** The run's id. */
  runId: string;
  /** 1 + the failed attempts of the step this call retries. */
  attempt: number;
  /** The function's id. */
  functionId: string;
  /** A log that writes each line once, not on every replay. */
  logger: FunctionLogger;
}

/** A function's code: returns the run's output (JSON). */
export type FunctionHandler<D = Record<string, unknown>, O = unknown> = (context: FunctionContext<D>) => O | Promise<O>;

const FUNCTION_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const EVENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;
/** Most retries a function may ask for (the server's rule). */
export const MAX_RETRIES = 100;

/** A function: its definition and its code. Serve it with `serve({ functions })` or a `Worker`. */
export class OffloadFunction<D = Record<string, unknown>, O = unknown> {
  /** The function's id. */
  readonly id: string;
  /** The definition as given. */
  readonly config: Readonly<FunctionConfig>;
  /** The code. */
  readonly handler: FunctionHandler<D, O>;

  constructor(config: FunctionConfig, handler: FunctionHandler<D, O>) {
    this.config = Object.freeze({ ...config });
    this.id = config.id;
    this.handler = handler;
    // Validates everything now: a bad definition fails where it is written.
    this.spec();
  }

  /** The queue its calls go on: `queue`, else the id. */
  get queue(): string {
    return this.config.queue ?? this.id;
  }

  /** Whether its calls are pushed (it has a target) rather than claimed by pull workers. */
  get pushed(): boolean {
    return this.config.target !== undefined;
  }

  /**
   * The definition as the server registers it. `defaults.target` applies when the function names neither a
   * target nor a queue (an app served at one URL).
   */
  spec(defaults: { target?: string | Target } = {}): FunctionSpec {
    const c = this.config;
    if (typeof c.id !== "string" || !FUNCTION_ID.test(c.id)) {
      throw new TypeError(`function id \`${String(c.id)}\`: 1 to 128 ASCII letters, digits and -_.:, starting with a letter or digit`);
    }
    const at = `function ${c.id}`;
    const spec: FunctionSpec = { id: c.id, triggers: triggers(c.trigger, at) };
    if (c.name !== undefined) {
      if (typeof c.name !== "string" || c.name.length === 0 || c.name.length > 128 || /\p{Cc}/u.test(c.name)) {
        throw new TypeError(`${at}: name must be 1 to 128 characters without control characters`);
      }
      spec.name = c.name;
    }
    if (c.target !== undefined && c.queue !== undefined) throw new TypeError(`${at}: give target (push) or queue (pull), not both`);
    const target = c.target ?? (c.queue === undefined ? defaults.target : undefined);
    if (target !== undefined) spec.target = typeof target === "string" ? { url: target } : target;
    if (c.queue !== undefined) {
      if (!FUNCTION_ID.test(c.queue)) throw new TypeError(`${at}: queue \`${c.queue}\`: 1 to 128 ASCII letters, digits and -_.:`);
      spec.queue = c.queue;
    }
    if (c.retries !== undefined) {
      if (!Number.isInteger(c.retries) || c.retries < 0 || c.retries > MAX_RETRIES) {
        throw new TypeError(`${at}: retries must be a whole number from 0 to ${MAX_RETRIES}`);
      }
      spec.retries = c.retries;
    }
    if (c.backoff !== undefined) spec.backoff = c.backoff;
    if (c.timeout !== undefined) spec.timeout = durationToMs(c.timeout);
    const cancelOn = c.cancelOn === undefined ? [] : Array.isArray(c.cancelOn) ? c.cancelOn : [c.cancelOn];
    if (cancelOn.length > 0) {
      spec.cancel_on = cancelOn.map((rule, i): CancelOnSpec => {
        checkEventName(rule.event, `${at}: cancelOn[${i}].event`);
        return rule.match === undefined ? { event: rule.event } : { event: rule.event, match: rule.match };
      });
    }
    if (c.concurrency !== undefined) {
      const list = typeof c.concurrency === "number" ? [{ limit: c.concurrency }] : Array.isArray(c.concurrency) ? c.concurrency : [c.concurrency];
      spec.concurrency = list;
    }
    if (c.throttle !== undefined) spec.throttle = c.throttle;
    if (c.rateLimit !== undefined) spec.rate_limit = c.rateLimit;
    if (c.singleton !== undefined) spec.singleton = c.singleton;
    return spec;
  }
}

function triggers(given: FunctionConfig["trigger"], at: string): TriggerSpec[] {
  const list = given === undefined ? [] : Array.isArray(given) ? given : [given];
  if (list.length === 0) throw new TypeError(`${at}: give a trigger, e.g. { event: "app/user.signup" } or { cron: "0 9 * * *" }`);
  let crons = 0;
  return list.map((t, i): TriggerSpec => {
    const where = `${at}: trigger[${i}]`;
    const r = t as Partial<Record<"event" | "if" | "cron" | "timezone", unknown>>;
    if ((r.event === undefined) === (r.cron === undefined)) throw new TypeError(`${where}: give event or cron, exactly one`);
    if (r.event !== undefined) {
      checkEventName(r.event, `${where}.event`);
      if (r.timezone !== undefined) throw new TypeError(`${where}: timezone goes with cron only`);
      const out: TriggerSpec = { event: r.event as string };
      if (r.if !== undefined) {
        if (typeof r.if !== "object" || r.if === null || Array.isArray(r.if)) throw new TypeError(`${where}.if: must be an object of conditions`);
        out.if = r.if as Record<string, unknown>;
      }
      return out;
    }
    if (typeof r.cron !== "string" || r.cron.trim() === "") throw new TypeError(`${where}.cron: must be a cron expression`);
    if (r.if !== undefined) throw new TypeError(`${where}: if goes with event only`);
    if (++crons > 1) throw new TypeError(`${at}: at most one cron trigger`);
    const out: TriggerSpec = { cron: r.cron };
    if (r.timezone !== undefined) out.timezone = String(r.timezone);
    return out;
  });
}

/** Throws unless `name` is a valid event name. */
export function checkEventName(name: unknown, where: string): asserts name is string {
  if (typeof name !== "string" || !EVENT_NAME.test(name)) {
    throw new TypeError(`${where}: \`${String(name)}\` is not an event name (1 to 128 ASCII letters, digits and -_.:/)`);
  }
}

/**
 * Defines a durable function: `createFunction({ id, trigger: { event: "app/user.signup" } }, async ({ event,
 * step }) => { ... })`. Its code replays from the top on every call; each `step` runs once.
 */
export function createFunction<D = Record<string, unknown>, O = unknown>(
  config: FunctionConfig,
  handler: FunctionHandler<D, O>,
): OffloadFunction<D, O> {
  return new OffloadFunction<D, O>(config, handler);
}
