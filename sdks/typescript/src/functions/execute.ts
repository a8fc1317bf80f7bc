/**
 * The replay executor: runs a function's code for one call request and produces the call response.
 *
 * The code replays from the top. A step recorded in the request resolves (or throws) its recorded result at
 * once. At the first step(s) not recorded the code is suspended: every step it asks for before it settles (one
 * macrotask, so `Promise.all([...])` and `map` over async branches are seen together) is collected, then:
 * - a call with `run_step` executes only that step and answers with it;
 * - several `run` steps at once are planned (`plan_run`): the server makes one call per step;
 * - one `run` step is executed here and the code continues with its result, until it asks for another `run`
 *   step beyond `maxRunSteps` (default 1), asks for a sleep, wait, send or invoke (appended as the plan), or
 *   returns (the steps ran are answered, so they are recorded before the run can end on the next call);
 * - a sleep, wait, send or invoke is answered as the plan.
 *
 * Invariant: the answer always follows the protocol (zero or more `run` results, nothing after a failed one,
 * then at most one plan or one or more `plan_run`), and a call never runs a step that is recorded, nor more
 * than one step when it was made for a planned parallel step. A throw outside any step fails the call (the
 * promise rejects) unless steps ran in this call: then they are answered, so their work is kept, and the
 * next call meets the throw again. A recorded step error left uncaught rejects with `NonRetriableError`
 * (replaying would throw it again).
 */
import { errorMessage, NonRetriableError, StepError } from "../errors.js";
import type { FunctionContext, FunctionLogger, InvokeOptions, OffloadFunction, Step, WaitForEventOptions } from "./define.js";
import { checkEventName } from "./define.js";
import { durationToMs, type DurationInput } from "./duration.js";
import { wireEvent, type CallRequest, type CallResponse, type EventInput, type StepOp, type StepResult } from "./protocol.js";

/** Options of `executeCall`. */
export interface ExecuteOptions {
  /** Fetches a run's recorded steps when the request omitted them (`steps_omitted`). */
  fetchSteps?: (runId: string) => Promise<Record<string, StepResult>>;
  /** Where the function's `logger` writes (default `console`). */
  logger?: FunctionLogger;
  /** Most `run` steps executed in one call (default 1: each step's result is recorded before the next runs). */
  maxRunSteps?: number;
  /** The clock (for tests). */
  now?: () => number;
}

/** Longest step id, in bytes. */
export const MAX_STEP_ID_BYTES = 256;
/** Longest error name a step may report, in bytes. */
const MAX_ERROR_NAME_BYTES = 256;

type Kind = "run" | "sleep" | "wait_for_event" | "send_event" | "invoke";

/** A step the code asked for that is not recorded. */
interface Pending {
  id: string;
  kind: Kind;
  /** The plan op (for `run`: unused until executed). */
  op: StepOp;
  fn?: () => unknown;
  resolve(value: unknown): void;
}

/** Runs `fn` for `request`; resolves with the call response, rejects when the call fails outside any step. */
export async function executeCall(
  fn: OffloadFunction<any, any>,
  request: CallRequest,
  options: ExecuteOptions = {},
): Promise<CallResponse> {
  let steps = request.steps ?? {};
  if (request.steps_omitted) {
    if (!options.fetchSteps) throw new Error(`run ${request.run_id}: the call omitted its steps and no client is configured to fetch them`);
    steps = await options.fetchSteps(request.run_id);
  }
  return new Execution(fn, request, steps, options).start();
}

class Execution {
  readonly #fn: OffloadFunction<any, any>;
  readonly #request: CallRequest;
  readonly #steps: Record<string, StepResult>;
  readonly #options: ExecuteOptions;
  readonly #maxRunSteps: number;
  readonly #counts = new Map<string, number>();
  readonly #used = new Set<string>();
  readonly #pending: Pending[] = [];
  readonly #ran: StepOp[] = [];
  /** Recorded steps the code has not asked for yet: while there are some, the code is replaying. */
  #unvisited: number;
  /**
   * Lines logged since the last step executed in this call: written once the code's next step is part of the
   * answer (the next call replays past them), dropped otherwise (the next call writes them again).
   */
  #buffer: [keyof FunctionLogger, unknown[]][] | undefined;
  #executing = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #returned: { output: unknown } | undefined;
  #settled = false;
  #answer!: (response: CallResponse) => void;
  #fail!: (error: unknown) => void;

  constructor(fn: OffloadFunction<any, any>, request: CallRequest, steps: Record<string, StepResult>, options: ExecuteOptions) {
    this.#fn = fn;
    this.#request = request;
    this.#steps = steps;
    this.#options = options;
    this.#maxRunSteps = Math.max(1, options.maxRunSteps ?? 1);
    this.#unvisited = Object.keys(steps).length;
  }

  start(): Promise<CallResponse> {
    return new Promise<CallResponse>((answer, fail) => {
      this.#answer = answer;
      this.#fail = fail;
      const request = this.#request;
      const context: FunctionContext<any> = {
        event: request.event,
        events: request.events ?? [request.event],
        step: this.#stepTools(),
        runId: request.run_id,
        attempt: request.attempt,
        functionId: request.function_id,
        logger: this.#logger(),
      };
      let result: Promise<unknown>;
      try {
        result = Promise.resolve(this.#fn.handler(context));
      } catch (e) {
        result = Promise.reject(e);
      }
      result.then(
        (output) => this.#onReturn(output),
        (e) => this.#onThrow(e),
      );
    });
  }

  #stepTools(): Step {
    const now = () => this.#options.now?.() ?? Date.now();
    return {
      run: <T>(id: string, fn: () => T | Promise<T>) => {
        if (typeof fn !== "function") return Promise.reject(new TypeError(`step.run("${id}"): the second argument must be a function`));
        return this.#ask(id, "run", (sid) => ({ id: sid, op: "run" }), fn) as Promise<Awaited<T>>;
      },
      sleep: (id: string, duration: DurationInput) =>
        this.#ask(id, "sleep", (sid) => ({ id: sid, op: "sleep", until: new Date(now() + durationToMs(duration)).toISOString() })).then(
          () => undefined,
        ),
      sleepUntil: (id: string, until: Date | string | number) =>
        this.#ask(id, "sleep", (sid) => ({ id: sid, op: "sleep", until: timeText(until) })).then(() => undefined),
      waitForEvent: (id: string, options: WaitForEventOptions) =>
        this.#ask(id, "wait_for_event", (sid) => {
          checkEventName(options?.event, `step.waitForEvent("${id}").event`);
          const op: StepOp = { id: sid, op: "wait_for_event", event: options.event, timeout: durationToMs(options.timeout) };
          if (options.match !== undefined) op.match = options.match;
          return op;
        }) as Promise<any>,
      sendEvent: (id: string, events: EventInput<unknown> | EventInput<unknown>[]) =>
        this.#ask(id, "send_event", (sid) => {
          const list = Array.isArray(events) ? events : [events];
          if (list.length === 0 || list.length > 1000) throw new RangeError(`step.sendEvent("${id}"): give 1 to 1000 events`);
          list.forEach((e, i) => checkEventName(e?.name, `step.sendEvent("${id}") events[${i}].name`));
          return { id: sid, op: "send_event", events: list.map(wireEvent) };
        }) as Promise<{ ids: string[] }>,
      invoke: (id: string, options: InvokeOptions) =>
        this.#ask(id, "invoke", (sid) => {
          const target = options?.function;
          const functionId = typeof target === "string" ? target : target?.id;
          if (typeof functionId !== "string") throw new TypeError(`step.invoke("${id}"): give the function (or its id)`);
          const op: StepOp = { id: sid, op: "invoke", function_id: functionId };
          if (options.data !== undefined) op.data = options.data;
          if (options.timeout !== undefined) op.timeout = durationToMs(options.timeout);
          return op;
        }) as Promise<any>,
    };
  }

  /** A step the code asks for: its recorded result, or a promise that waits for this call's decision. */
  #ask(base: string, kind: Kind, makeOp: (id: string) => StepOp, fn?: () => unknown): Promise<unknown> {
    if (this.#settled) return new Promise(() => {});
    if (this.#executing) {
      return Promise.reject(new Error(`step "${base}" was asked for while step.run was running: steps cannot be nested`));
    }
    let id: string;
    let op: StepOp;
    try {
      id = this.#nextId(base);
      op = makeOp(id);
    } catch (e) {
      return Promise.reject(e);
    }
    const recorded = this.#steps[id];
    if (recorded !== undefined) {
      this.#unvisited--;
      if ("error" in recorded) return Promise.reject(new StepError(id, recorded.error));
      return Promise.resolve(kind === "sleep" ? undefined : recorded.data);
    }
    this.#unvisited = 0;
    return new Promise((resolve) => {
      this.#pending.push(fn ? { id, kind, op, fn, resolve } : { id, kind, op, resolve });
      this.#schedule();
    });
  }

  /** The step's id: `base`, or `base:N` for its N-th repeat in this run. */
  #nextId(base: string): string {
    if (typeof base !== "string" || base.length === 0 || /\p{Cc}/u.test(base) || utf8Length(base) > MAX_STEP_ID_BYTES) {
      throw new TypeError(`step id \`${String(base)}\`: 1 to ${MAX_STEP_ID_BYTES} bytes without control characters`);
    }
    let n = this.#counts.get(base) ?? 0;
    let id = n === 0 ? base : `${base}:${n}`;
    while (this.#used.has(id)) id = `${base}:${++n}`;
    this.#counts.set(base, n + 1);
    this.#used.add(id);
    return id;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#settled) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#decide().catch((e: unknown) => this.#finish(undefined, e));
    }, 0);
  }

  async #decide(): Promise<void> {
    if (this.#settled || this.#executing) return;
    const pending = this.#pending;
    if (pending.length === 0) {
      if (this.#returned) this.#end();
      return;
    }
    const runStep = this.#request.run_step;
    if (runStep !== undefined) {
      const target = pending.find((p) => p.id === runStep);
      if (!target || target.kind !== "run") {
        throw new Error(
          `this call is for parallel step \`${runStep}\`, but the code asked for ${pending.map((p) => `\`${p.id}\` (${p.kind})`).join(", ")}: ` +
            "the code must ask for the same steps on every call",
        );
      }
      this.#finish({ steps: [await this.#execute(target)] });
      return;
    }
    if (pending.length > 1 && pending.every((p) => p.kind === "run")) {
      this.#flush();
      this.#finish({ steps: [...this.#ran, ...pending.map((p): StepOp => ({ id: p.id, op: "plan_run" }))] });
      return;
    }
    const first = pending[0]!;
    if (first.kind !== "run") {
      this.#flush();
      this.#finish({ steps: [...this.#ran, first.op] });
      return;
    }
    if (this.#ran.length >= this.#maxRunSteps) {
      this.#finish({ steps: this.#ran });
      return;
    }
    pending.shift();
    this.#flush();
    const op = await this.#execute(first);
    if (this.#settled) return;
    this.#ran.push(op);
    if (op.op === "run" && op.error) {
      this.#finish({ steps: this.#ran });
      return;
    }
    this.#buffer = [];
    first.resolve(op.op === "run" && "data" in op ? op.data : null);
    this.#schedule();
  }

  /** Runs one `run` step and turns its end into the op that reports it. */
  async #execute(step: Pending): Promise<StepOp> {
    this.#executing = true;
    try {
      const value = await step.fn!();
      let data: unknown;
      try {
        data = value === undefined ? null : JSON.parse(JSON.stringify(value) ?? "null");
      } catch (e) {
        return { id: step.id, op: "run", error: { name: "SerializationError", message: `the step's result is not JSON: ${errorMessage(e)}`, retryable: false } };
      }
      return { id: step.id, op: "run", data };
    } catch (e) {
      return { id: step.id, op: "run", error: { name: errorName(e), message: errorMessage(e), retryable: !(e instanceof NonRetriableError) } };
    } finally {
      this.#executing = false;
    }
  }

  #onReturn(output: unknown): void {
    if (this.#settled) return;
    this.#returned = { output };
    if (this.#pending.length === 0 && !this.#executing && this.#timer === undefined) this.#end();
  }

  /** The code returned and nothing is pending. */
  #end(): void {
    if (this.#request.run_step !== undefined) {
      this.#finish(undefined, new Error(`this call is for parallel step \`${this.#request.run_step}\`, but the code returned without asking for it`));
    } else if (this.#ran.length > 0) {
      this.#finish({ steps: this.#ran });
    } else {
      let output: unknown;
      try {
        output = JSON.parse(JSON.stringify(this.#returned?.output) ?? "null");
      } catch (e) {
        this.#finish(undefined, new NonRetriableError(`the function's output is not JSON: ${errorMessage(e)}`, { cause: e }));
        return;
      }
      this.#finish({ done: true, output });
    }
  }

  #onThrow(thrown: unknown): void {
    if (this.#settled) return;
    const runStep = this.#request.run_step;
    // A parallel call only has to run its step: a sibling's recorded error rejecting `Promise.all` is not its business.
    if (runStep !== undefined && this.#pending.some((p) => p.id === runStep)) return;
    if (this.#ran.length > 0 && this.#request.run_step === undefined) {
      this.#finish({ steps: this.#ran });
    } else if (thrown instanceof StepError) {
      this.#finish(undefined, new NonRetriableError(`step \`${thrown.stepId}\` failed: ${thrown.name}: ${thrown.message}`, { cause: thrown }));
    } else {
      this.#finish(undefined, thrown);
    }
  }

  #finish(response: CallResponse | undefined, error?: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (response) this.#answer(response);
    else this.#fail(error);
  }

  #flush(): void {
    const lines = this.#buffer;
    this.#buffer = undefined;
    for (const [level, args] of lines ?? []) this.#write(level, args);
  }

  #write(level: keyof FunctionLogger, args: unknown[]): void {
    (this.#options.logger ?? console)[level](`[${this.#request.function_id} ${this.#request.run_id}]`, ...args);
  }

  #logger(): FunctionLogger {
    const write = (level: keyof FunctionLogger) => (...args: unknown[]) => {
      if (this.#unvisited > 0 || this.#settled) return;
      if (this.#buffer) this.#buffer.push([level, args]);
      else this.#write(level, args);
    };
    return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
  }
}

/** A time as RFC 3339 text. */
function timeText(until: Date | string | number): string {
  const date = until instanceof Date ? until : new Date(until);
  if (Number.isNaN(date.getTime())) throw new TypeError(`\`${String(until)}\` is not a time`);
  return date.toISOString();
}

/** A thrown value's name, as a step error reports it (1 to 256 bytes). */
function errorName(thrown: unknown): string {
  const name = thrown instanceof Error && thrown.name ? thrown.name : "Error";
  return utf8Length(name) > MAX_ERROR_NAME_BYTES ? name.slice(0, 64) : name;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
