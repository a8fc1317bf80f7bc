/**
 * The HTTP API's durable-function types (functions, apps, events, runs), named for users: each is the
 * generated wire type (`api.gen.ts`, from the server's `/openapi.json`), with the fields the document types
 * loosely (JSON values, states and kinds as plain strings) narrowed to what the server sends.
 *
 * Invariant: field names are the API's own (snake_case), so a value passes between the API and these types
 * unchanged, and a change of the API shows here when the types are regenerated.
 */
import type { components } from "../api.gen.js";
import type { FunctionEvent, StepResult } from "./protocol.js";

type Schemas = components["schemas"];

/** One trigger: `{ event, if? }` or `{ cron, timezone? }`. */
export type TriggerSpec = Omit<Schemas["TriggerSpec"], "if"> & {
  /** A filter the event must pass, e.g. `{ "data.plan": "pro", "data.amount": { gte: 100 } }`. */
  if?: Record<string, unknown> | null;
};

/** Cancels a run when an event named `event` arrives whose `match` field equals the run's event's. */
export type CancelOnSpec = Schemas["CancelOnSpec"];

/** A function definition as `PUT /v1/functions/{id}` and `PUT /v1/apps/{app}` take it. */
export type FunctionSpec = Omit<Schemas["FunctionSpec"], "triggers"> & { triggers: TriggerSpec[] };

/** A registered function: its definition with every default resolved (`queue`, `retries`, `timeout`, ...). */
export type FunctionView = Omit<Schemas["FunctionView"], "triggers"> & { triggers: TriggerSpec[] };

/** The answer of an app sync: function ids by what happened to them. */
export type AppSynced = Schemas["AppSyncView"];

/** The answer of `POST /v1/events`: the events' ids and, per event, the runs it started. */
export type EventsSent = Schemas["EventsSent"];

/** A stored event. */
export type EventView = Omit<Schemas["EventView"], "data"> & { data: Record<string, unknown> };

/** Where a run is in its life. */
export type RunState = "queued" | "running" | "sleeping" | "waiting" | "succeeded" | "failed" | "cancelled";

/** A run, its output typed `O`. */
export type RunView<O = unknown> = Omit<Schemas["RunView"], "state" | "event" | "output"> & {
  state: RunState;
  /** The event that started it. */
  event: FunctionEvent;
  output?: O | null;
};

/** The kinds of steps in a run's history. */
export type StepKind = "run" | "sleep" | "wait_for_event" | "send_event" | "invoke";

/** One step of a run's history; `result` is absent while the step is pending (a wait, an invoke, a planned step). */
export type StepView = Omit<Schemas["StepView"], "kind" | "result"> & { kind: StepKind; result?: StepResult | null };

/** A page of runs, newest first. */
export type RunPage = Omit<Schemas["RunList"], "runs"> & { runs: RunView[] };

/** A page of events, newest first. */
export type EventPage = Omit<Schemas["EventList"], "events"> & { events: EventView[] };

/** A page of functions, by id. */
export type FunctionPage = Omit<Schemas["FunctionList"], "functions"> & { functions: FunctionView[] };

/** Filters of `functions.list`. */
export interface FunctionFilter {
  /** Only functions synced by this app. */
  app?: string;
  /** The `next_cursor` of the previous page. */
  cursor?: string;
  /** Page size (default 100). */
  limit?: number;
}

/** Filters of `runs.list`. */
export interface RunFilter {
  /** Only runs of this function. */
  function?: string;
  state?: RunState;
  /** Only runs this event (id) started. */
  event?: string;
  /** Runs older than this run id (the `next_cursor` of the previous page). */
  before?: string;
  /** Page size (default 50). */
  limit?: number;
}

/** Filters of `events.list`. */
export interface EventFilter {
  /** Only events of this name. */
  name?: string;
  /** Events older than this event id (the `next_cursor` of the previous page). */
  before?: string;
  /** Page size (default 50). */
  limit?: number;
}
