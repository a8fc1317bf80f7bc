/**
 * The public types of the API, named for users: each is the generated wire type (`api.gen.ts`), with the JSON
 * payload typed by a generic where a job carries one. Field names are the HTTP API's own (snake_case), so that
 * every option the server accepts is here as soon as the types are regenerated.
 */
import type { components } from "./api.gen.js";

type Schemas = components["schemas"];

/** A duration: text such as `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, or integer milliseconds. */
export type Duration = Schemas["DurationSpec"];
/** Where a job is in its life. */
export type JobState = Schemas["JobState"];
/** A job's retry delay policy. */
export type Backoff = Schemas["Backoff"];
/** Where a push job is delivered. */
export type Target = Schemas["Target"];
/** One attempt in a job's history. */
export type Attempt = Schemas["Attempt"];
/** A queue with its counts by state, and its limits and live usage when read alone. */
export type QueueInfo = Schemas["QueueInfo"];
/** A queue's flow-control limits. */
export type QueueLimits = Schemas["QueueLimits"];
/** A change to a queue's limits: a field left out keeps its value, `null` clears it. */
export type QueueLimitsPatch = Schemas["QueueLimitsPatch"];
/** A schedule as the server shows it. */
export type ScheduleInfo = Schemas["ScheduleInfo"];
/** A schedule as `schedules.put` takes it. */
export type ScheduleSpec = Schemas["ScheduleSpec"];
/** The answer of `schedules.trigger`: the job created now. */
export type Triggered = Schemas["Triggered"];
/** One entry of a batch enqueue's answer. */
export type EnqueuedJob = Schemas["EnqueuedJob"];
/** A job handed to a pull worker, as the server sends it. */
export type ClaimedJob<P = unknown> = Omit<Schemas["ClaimedJob"], "payload"> & { payload: P };
/** The answer of a heartbeat. */
export type HeartbeatResponse = Schemas["HeartbeatResponse"];
/** Per-job answer of a batch completion or failure. */
export type FinishResult = Schemas["FinishResult"];
/** The server's error body (`application/problem+json`). */
export type Problem = Schemas["Problem"];

/** A stored job, with its payload typed `P` and its result `R`. */
export type JobRecord<P = unknown, R = unknown> = Omit<Schemas["Job"], "payload" | "result"> & {
  payload: P;
  result?: R;
};

/**
 * A job to enqueue: every field `POST /v1/jobs` accepts, with the payload typed `P`. `run_at` also takes a
 * `Date`.
 */
export type JobInput<P = unknown> = Omit<Schemas["EnqueueRequest"], "payload" | "run_at"> & {
  payload?: P;
  run_at?: string | Date | null;
};

/** A job just enqueued: the stored job and whether an idempotency key returned an existing one. */
export type Enqueued<P = unknown> = JobRecord<P> & {
  /** True when the idempotency key matched an existing job (HTTP 200) and nothing new was stored. */
  replayed: boolean;
  /** True when a debounced enqueue matched the waiting job of its key, which took this payload and start. */
  debounced: boolean;
};

/** Filters of `jobs.list`. */
export interface JobFilter {
  /** Only this queue. */
  queue?: string;
  /** Only this state. */
  state?: JobState;
  /** Only this job name. */
  name?: string;
  /** Only jobs of this group. */
  group?: string;
  /** Only jobs carrying this tag, `key:value` (or `{key: value}`). */
  tag?: string | Record<string, string>;
  /** Page size, 1 to 500 (default 50). */
  limit?: number;
  /** Continue after this cursor (a previous page's `next_cursor`). */
  cursor?: string;
}

/** A page of jobs, newest first. */
export interface JobPage<P = unknown> {
  /** The jobs. */
  items: JobRecord<P>[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  next_cursor?: string | null;
}

/** A page of schedules, in name order. */
export interface SchedulePage {
  /** The schedules. */
  schedules: ScheduleInfo[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  next_cursor?: string | null;
}
