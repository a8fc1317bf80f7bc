/**
 * The client's durable-function calls: `functions` (register, read, remove, sync an app's set), `events`
 * (send, read) and `runs` (read, list, steps, cancel, retry).
 *
 * Retries follow the client's rule (`client.ts`): reads, `PUT` and `DELETE` are retried; sending events is
 * retried only when every event carries a de-duplication `id` (the server then starts nothing twice); cancel
 * and retry of a run are sent once.
 */
import type { components } from "../api.gen.js";
import type { Target } from "../types.js";
import type { Transport } from "../transport.js";
import type {
  AppSynced,
  EventFilter,
  EventPage,
  EventsSent,
  EventView,
  FunctionFilter,
  FunctionPage,
  FunctionSpec,
  FunctionView,
  RunFilter,
  RunPage,
  RunView,
  StepView,
} from "./api.js";
import { OffloadFunction } from "./define.js";
import { wireEvent, type EventInput, type StepResult } from "./protocol.js";

type Schemas = components["schemas"];

/** Options of `functions.sync` and `functions.put`. */
export interface RegisterOptions {
  /** Push target for functions that name neither a target nor a queue: the URL `serve({ functions })` answers at. */
  target?: string | Target;
}

/** `/v1/functions/...` and `/v1/apps/...`. */
export class Functions {
  constructor(private readonly transport: Transport) {}

  /**
   * Registers the app's whole set of functions in one call (`PUT /v1/apps/{app}`): new ones are created,
   * changed ones replaced, and the app's functions missing from the set removed (their runs in flight go on).
   */
  async sync(app: string, functions: (OffloadFunction<any, any> | FunctionSpec)[], options: RegisterOptions = {}): Promise<AppSynced> {
    const specs = functions.map((f) => specOf(f, options));
    return (await this.transport.send<AppSynced>({ method: "PUT", path: ["v1", "apps", app], body: { functions: specs }, idempotent: true }))
      .body;
  }

  /** Creates or replaces one function (`PUT /v1/functions/{id}`). */
  async put(fn: OffloadFunction<any, any> | (FunctionSpec & { id: string }), options: RegisterOptions = {}): Promise<FunctionView> {
    const spec = specOf(fn, options);
    const id = spec.id;
    if (!id) throw new TypeError("functions.put: the function has no id");
    return (await this.transport.send<FunctionView>({ method: "PUT", path: ["v1", "functions", id], body: spec, idempotent: true })).body;
  }

  /** A registered function; throws `not_found` for an unknown (or removed) id. */
  async get(id: string): Promise<FunctionView> {
    return (await this.transport.send<FunctionView>({ method: "GET", path: ["v1", "functions", id], idempotent: true })).body;
  }

  /** One page of registered functions, by id. */
  async list(filter: FunctionFilter = {}): Promise<FunctionPage> {
    return (await this.transport.send<FunctionPage>({ method: "GET", path: ["v1", "functions"], query: { ...filter }, idempotent: true })).body;
  }

  /** Every registered function matching `filter`, page after page. */
  async *iterate(filter: FunctionFilter = {}): AsyncGenerator<FunctionView> {
    let cursor = filter.cursor;
    do {
      const page: FunctionPage = await this.list({ ...filter, cursor });
      yield* page.functions;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /** Removes a function: it starts no more runs; its runs in flight go on. */
  async delete(id: string): Promise<void> {
    await this.transport.send({ method: "DELETE", path: ["v1", "functions", id], idempotent: true });
  }
}

function specOf(fn: OffloadFunction<any, any> | FunctionSpec, options: RegisterOptions): FunctionSpec {
  if (fn instanceof OffloadFunction) return fn.spec(options.target === undefined ? {} : { target: options.target });
  if (options.target !== undefined && fn.target == null && fn.queue == null) {
    return { ...fn, target: typeof options.target === "string" ? { url: options.target } : options.target };
  }
  return fn;
}

/** `/v1/events/...`. */
export class Events {
  constructor(private readonly transport: Transport) {}

  /**
   * Sends events (1 to 1,000, all or nothing): each starts a run of every function it triggers, resolves the
   * waits it matches and cancels the runs it cancels. Answers the events' ids and, per event, the runs started.
   * An event whose `id` was seen within the retention starts nothing again.
   */
  async send<D = Record<string, unknown>>(events: EventInput<D> | EventInput<D>[]): Promise<EventsSent> {
    const list = Array.isArray(events) ? events : [events];
    return (
      await this.transport.send<EventsSent>({
        method: "POST",
        path: ["v1", "events"],
        body: { events: list.map(wireEvent) },
        idempotent: list.length > 0 && list.every((e) => typeof e.id === "string" && e.id.length > 0),
      })
    ).body;
  }

  /** A stored event with the runs it started. */
  async get(id: string): Promise<EventView> {
    return (await this.transport.send<EventView>({ method: "GET", path: ["v1", "events", id], idempotent: true })).body;
  }

  /** One page of stored events, newest first. */
  async list(filter: EventFilter = {}): Promise<EventPage> {
    return (await this.transport.send<EventPage>({ method: "GET", path: ["v1", "events"], query: { ...filter }, idempotent: true })).body;
  }

  /** Every stored event matching `filter`, page after page. */
  async *iterate(filter: EventFilter = {}): AsyncGenerator<EventView> {
    let before = filter.before;
    do {
      const page: EventPage = await this.list({ ...filter, before });
      yield* page.events;
      before = page.next_cursor ?? undefined;
    } while (before);
  }
}

/** `/v1/runs/...`. */
export class Runs {
  constructor(private readonly transport: Transport) {}

  /** A run: its state, event, output or error. */
  async get<O = unknown>(id: string): Promise<RunView<O>> {
    return (await this.transport.send<RunView<O>>({ method: "GET", path: ["v1", "runs", id], idempotent: true })).body;
  }

  /** One page of runs, newest first, filtered by function, state or event. */
  async list(filter: RunFilter = {}): Promise<RunPage> {
    return (await this.transport.send<RunPage>({ method: "GET", path: ["v1", "runs"], query: { ...filter }, idempotent: true })).body;
  }

  /** Every run matching `filter`, page after page. */
  async *iterate(filter: RunFilter = {}): AsyncGenerator<RunView> {
    let before = filter.before;
    do {
      const page: RunPage = await this.list({ ...filter, before });
      yield* page.runs;
      before = page.next_cursor ?? undefined;
    } while (before);
  }

  /** Appends 1 to 100 log lines to a run. Sent once (a repeat would add the lines again). */
  async log(id: string, lines: Schemas["LogLineRequest"][]): Promise<Schemas["LogAppended"]> {
    return (
      await this.transport.send<Schemas["LogAppended"]>({ method: "POST", path: ["v1", "runs", id, "logs"], body: { lines }, idempotent: false })
    ).body;
  }

  /** A page of the run's log lines, oldest first (`after`: the `next_after` of the previous page). */
  async logs(id: string, page: { after?: number; limit?: number } = {}): Promise<Schemas["LogPage"]> {
    return (await this.transport.send<Schemas["LogPage"]>({ method: "GET", path: ["v1", "runs", id, "logs"], query: { ...page }, idempotent: true })).body;
  }

  /** The run's steps with their results and failed attempts. */
  async steps(id: string): Promise<StepView[]> {
    return (await this.transport.send<{ steps: StepView[] }>({ method: "GET", path: ["v1", "runs", id, "steps"], idempotent: true })).body.steps;
  }

  /** The recorded steps as a call request carries them (for calls whose steps did not fit in the request). */
  async recordedSteps(id: string): Promise<Record<string, StepResult>> {
    const out: Record<string, StepResult> = {};
    for (const step of await this.steps(id)) if (step.result) out[step.id] = step.result;
    return out;
  }

  /**
   * Records `run` steps a pull worker ran within its call's lease, before the call ends (`data`, or an `error`
   * with `retryable: false`; a retryable error ends the call instead). The first record of a step wins.
   */
  async recordSteps<O = unknown>(id: string, request: Schemas["RecordStepsRequest"]): Promise<RunView<O>> {
    return (await this.transport.send<RunView<O>>({ method: "POST", path: ["v1", "runs", id, "steps"], body: request, idempotent: true })).body;
  }

  /** Cancels a run that has not ended: pending calls are cancelled, a running one asked to stop. */
  async cancel<O = unknown>(id: string): Promise<RunView<O>> {
    return (await this.transport.send<RunView<O>>({ method: "POST", path: ["v1", "runs", id, "cancel"], idempotent: false })).body;
  }

  /** Runs a failed or cancelled run again from its failed step (every other recorded step is kept). */
  async retry<O = unknown>(id: string): Promise<RunView<O>> {
    return (await this.transport.send<RunView<O>>({ method: "POST", path: ["v1", "runs", id, "retry"], idempotent: false })).body;
  }
}
