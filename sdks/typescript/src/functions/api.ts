/**
 * The HTTP API's durable-function types (functions, apps, events, runs), written by hand from the shared
 * design until the server's `/openapi.json` describes these routes; then they become aliases of the generated
 * types, like those in `types.ts`.
 *
 * Invariant: field names are the API's own (snake_case), so a value passes between the API and these types
 * unchanged.
 */
import type { Backoff, Duration, Target } from "../types.js";
import type { FunctionEvent, StepResult } from "./protocol.js";

/** One trigger: `{ event, if? }` or `{ cron, timezone? }`. */
export interface TriggerSpec {
  event?: string;
  /** A filter the event must pass, e.g. `{ "data.plan": "pro", "data.amount": { gte: 100 } }`. */
  if?: Record<string, unknown>;
  cron?: string;
  /** IANA time zone of `cron` (default UTC). */
  timezone?: string;
}

/** Cancels a run when an event named `event` arrives whose `match` field equals the run's event's. */
export interface CancelOnSpec {
  event: string;
  match?: string;
}

/** A function definition as `PUT /v1/functions/{id}` and `PUT /v1/apps/{app}` take it. */
export interface FunctionSpec {
  id?: string;
  name?: string;
  triggers: TriggerSpec[];
  /** Push: the endpoint each call is delivered to. Without it, pull workers claim calls from `queue`. */
  target?: Target;
  /** Queue of the calls (default: the function id). */
  queue?: string;
  /** Retries of a failed step, and of a call that failed outside any step (default 4). */
  retries?: number;
  backoff?: Backoff;
  /** Lease of one call (default 5 minutes). */
  timeout?: Duration;
  cancel_on?: CancelOnSpec[];
}

/** A registered function. */
export interface FunctionView extends FunctionSpec {
  id: string;
  /** The queue its calls go on (resolved: the given queue, else the id). */
  queue: string;
  /** The app that synced it, if any. */
  app?: string | null;
  created_at: string;
  updated_at: string;
}

/** The answer of an app sync: function ids by what happened to them. */
export interface AppSynced {
  created: string[];
  updated: string[];
  unchanged: string[];
  removed: string[];
}

/** The answer of `POST /v1/events`: the events' ids and, per event, the runs it started. */
export interface EventsSent {
  ids: string[];
  runs: string[][];
}

/** A stored event. */
export interface EventView {
  id: string;
  name: string;
  data: Record<string, unknown>;
  /** The sender's de-duplication id. */
  user_id?: string | null;
  ts: string;
  received_at: string;
  /** The runs it started. */
  runs: string[];
}

/** Where a run is in its life. */
export type RunState = "queued" | "running" | "sleeping" | "waiting" | "succeeded" | "failed" | "cancelled";

/** A run. */
export interface RunView<O = unknown> {
  id: string;
  function_id: string;
  state: RunState;
  event_id: string;
  event: FunctionEvent;
  output?: O | null;
  error?: { name: string; message: string } | null;
  /** The run and step that invoked this run. */
  parent?: { run_id: string; step: string } | null;
  /** Steps recorded so far. */
  steps: number;
  created_at: string;
  started_at?: string | null;
  ended_at?: string | null;
  updated_at: string;
  /** When a sleeping or waiting run continues at the latest. */
  wake_at?: string | null;
}

/** The kinds of steps in a run's history. */
export type StepKind = "run" | "sleep" | "wait_for_event" | "send_event" | "invoke";

/** One step of a run's history. */
export interface StepView {
  id: string;
  kind: StepKind;
  /** Absent while the step is pending (a wait, an invoke, a planned parallel step). */
  result?: StepResult | null;
  failed_attempts: { attempt: number; error: { name: string; message: string }; at: string }[];
  started_at: string;
  recorded_at?: string | null;
  until?: string | null;
}

/** A page of runs, newest first. */
export interface RunPage {
  runs: RunView[];
  /** Pass as `before` for the next page; absent on the last page. */
  next_cursor?: string | null;
}

/** A page of events, newest first. */
export interface EventPage {
  events: EventView[];
  /** Pass as `before` for the next page; absent on the last page. */
  next_cursor?: string | null;
}

/** A page of functions, by id. */
export interface FunctionPage {
  functions: FunctionView[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  next_cursor?: string | null;
}

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
  function?: string;
  state?: RunState;
  event?: string;
  /** Runs older than this run id (the `next_cursor` of the previous page). */
  before?: string;
  /** Page size (default 50). */
  limit?: number;
}

/** Filters of `events.list`. */
export interface EventFilter {
  name?: string;
  /** Events older than this event id (the `next_cursor` of the previous page). */
  before?: string;
  /** Page size. */
  limit?: number;
}
