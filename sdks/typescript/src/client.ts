/**
 * `Offload`: one method per API call, grouped as the API is (`jobs`, `queues`, `schedules`, `functions`,
 * `events`, `runs`, and the pull worker's calls under `workers`), plus `enqueue`, `enqueueMany`, `publish` and
 * `createFunction` at the top.
 *
 * Which calls are retried is decided here, per call, by whether sending it twice is harmless: reads, `PUT`,
 * `DELETE`, pause/resume, heartbeats, and an enqueue that carries an idempotency key. Creating calls without
 * a key (enqueue, trigger, claim) and state changes whose repeat is refused (cancel, retry) are sent once.
 */
import type { components } from "./api.gen.js";
import { readEnv } from "./env.js";
import type { RetryPolicy } from "./backoff.js";
import { Transport } from "./transport.js";
import { Events, Functions, Runs } from "./functions/client.js";
import { createFunction, type FunctionConfig, type FunctionHandler, type OffloadFunction } from "./functions/define.js";
import type {
  ClaimedJob,
  Enqueued,
  EnqueuedJob,
  FinishResult,
  HeartbeatResponse,
  JobRecord,
  JobFilter,
  JobInput,
  JobPage,
  JobState,
  QueueInfo,
  QueueLimitsPatch,
  ScheduleInfo,
  SchedulePage,
  ScheduleSpec,
  Target,
  Triggered,
} from "./types.js";

type Schemas = components["schemas"];

/** Where the server is and how to talk to it. */
export interface OffloadOptions {
  /** Base URL of the server (default: `OFFLOAD_URL`, else `http://127.0.0.1:7070`). */
  baseUrl?: string;
  /** API token (default: `OFFLOAD_TOKEN`; none when unset). */
  token?: string;
  /** The fetch to use (default: the global `fetch`). */
  fetch?: typeof fetch;
  /** Retries of idempotent calls after a network error or a 503 (default: 4 tries, 200 ms to 5 s apart). */
  retry?: Partial<RetryPolicy>;
}

/** The server's address when neither the options nor `OFFLOAD_URL` give one. */
export const DEFAULT_BASE_URL = "http://127.0.0.1:7070";

/** Options of `publish` beside the URL and body: the job's options and the target's (`headers`, `method`, ...). */
export type PublishOptions = Omit<JobInput, "queue" | "payload" | "target"> & {
  /** Queue the push job goes on (default `default`). */
  queue?: string;
  /** Target fields beside `url`: `headers`, `method`, `timeout`, `callback_url`, `failure_callback_url`. */
  target?: Omit<Target, "url">;
};

/** The queue `publish` uses when none is given. */
export const DEFAULT_PUBLISH_QUEUE = "default";

/** A client of one Offload server. Safe to share; it holds no connection state of its own. */
export class Offload {
  /** The transport, for calls this class has no method for. */
  readonly transport: Transport;
  /** Jobs: read, list, cancel, retry, delete. */
  readonly jobs: Jobs;
  /** Queues: list with counts, pause, resume. */
  readonly queues: Queues;
  /** Cron schedules. */
  readonly schedules: Schedules;
  /** The pull worker's calls (claim, heartbeat, report); the `Worker` class uses them. */
  readonly workers: Workers;
  /** Durable functions: register (one by one, or an app's set with `sync`), read, remove. */
  readonly functions: Functions;
  /** Events: send (starting runs, resolving waits), read. */
  readonly events: Events;
  /** Runs of durable functions: read, list, steps, cancel, retry. */
  readonly runs: Runs;

  constructor(options: OffloadOptions = {}) {
    this.transport = new Transport({
      baseUrl: options.baseUrl ?? readEnv("OFFLOAD_URL") ?? DEFAULT_BASE_URL,
      token: options.token ?? readEnv("OFFLOAD_TOKEN"),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
    });
    this.jobs = new Jobs(this.transport);
    this.queues = new Queues(this.transport);
    this.schedules = new Schedules(this.transport);
    this.workers = new Workers(this.transport);
    this.functions = new Functions(this.transport);
    this.events = new Events(this.transport);
    this.runs = new Runs(this.transport);
  }

  /**
   * Defines a durable function (the same as the exported `createFunction`): serve it with
   * `serve({ functions })` or a `Worker`, register it with `offload.functions.sync(app, [...])`.
   */
  createFunction<D = Record<string, unknown>, O = unknown>(config: FunctionConfig, handler: FunctionHandler<D, O>): OffloadFunction<D, O> {
    return createFunction<D, O>(config, handler);
  }

  /**
   * Enqueues one job (`POST /v1/jobs`). With an `idempotency_key` already used by the same request, returns
   * the existing job with `replayed: true`; used by a different request, throws `idempotency_conflict`. With a
   * `debounce` whose key has a job waiting to start, that job takes this payload and start and is returned
   * with `debounced: true`.
   */
  async enqueue<P = unknown>(job: JobInput<P>): Promise<Enqueued<P>> {
    const answer = await this.transport.send<JobRecord<P> & { debounced?: boolean }>({
      method: "POST",
      path: ["v1", "jobs"],
      body: wireJob(job),
      idempotent: Boolean(job.idempotency_key),
    });
    const debounced = answer.body.debounced === true;
    return { ...answer.body, debounced, replayed: answer.status === 200 && !debounced };
  }

  /** Enqueues 1 to 10,000 jobs in one transaction, all or nothing (`POST /v1/jobs/batch`). */
  async enqueueMany<P = unknown>(jobs: JobInput<P>[]): Promise<EnqueuedJob[]> {
    const answer = await this.transport.send<Schemas["EnqueueBatchResponse"]>({
      method: "POST",
      path: ["v1", "jobs", "batch"],
      body: { jobs: jobs.map(wireJob) },
      idempotent: jobs.length > 0 && jobs.every((j) => Boolean(j.idempotency_key)),
    });
    return answer.body.jobs;
  }

  /**
   * Has the server deliver `body` to `url` (a push job): signed, retried until a 2xx, in one call. Options
   * are the job's (`delay`, `max_attempts`, `idempotency_key`, ...) and, under `target`, the delivery's.
   */
  async publish<P = unknown>(url: string, body: P, options: PublishOptions = {}): Promise<Enqueued<P>> {
    const { queue, target, ...job } = options;
    return this.enqueue<P>({ ...job, queue: queue ?? DEFAULT_PUBLISH_QUEUE, payload: body, target: { ...target, url } });
  }
}

/** A job as the API takes it: `run_at` as RFC 3339 text. */
function wireJob<P>(job: JobInput<P>): Schemas["EnqueueRequest"] {
  const { run_at, ...rest } = job;
  return run_at instanceof Date ? { ...rest, run_at: run_at.toISOString() } : { ...rest, run_at };
}

/** `/v1/jobs/...`. */
export class Jobs {
  constructor(private readonly transport: Transport) {}

  /** The job with its attempt history; throws `not_found` for an unknown id. */
  async get<P = unknown, R = unknown>(id: string): Promise<JobRecord<P, R>> {
    return (await this.transport.send<JobRecord<P, R>>({ method: "GET", path: ["v1", "jobs", id], idempotent: true })).body;
  }

  /** One page of jobs, newest first. */
  async list<P = unknown>(filter: JobFilter = {}): Promise<JobPage<P>> {
    const { tag, ...rest } = filter;
    const query = { ...rest, tag: typeof tag === "object" ? Object.entries(tag).map(([k, v]) => `${k}:${v}`)[0] : tag };
    return (await this.transport.send<JobPage<P>>({ method: "GET", path: ["v1", "jobs"], query, idempotent: true }))
      .body;
  }

  /** Every job matching `filter`, page after page. */
  async *iterate<P = unknown>(filter: JobFilter = {}): AsyncGenerator<JobRecord<P>> {
    let cursor = filter.cursor;
    do {
      const page: JobPage<P> = await this.list<P>({ ...filter, cursor });
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /** Cancels: at once when not running, by request (seen at the worker's next heartbeat) when running. */
  async cancel(id: string): Promise<JobRecord> {
    return (await this.transport.send<JobRecord>({ method: "POST", path: ["v1", "jobs", id, "cancel"], idempotent: false }))
      .body;
  }

  /** A page of the job's log lines, oldest first (`after`: the `next_after` of the previous page). */
  async logs(id: string, page: { after?: number; limit?: number } = {}): Promise<Schemas["LogPage"]> {
    return (await this.transport.send<Schemas["LogPage"]>({ method: "GET", path: ["v1", "jobs", id, "logs"], query: { ...page }, idempotent: true }))
      .body;
  }

  /** Makes a dead or cancelled job available again. */
  async retry(id: string): Promise<JobRecord> {
    return (await this.transport.send<JobRecord>({ method: "POST", path: ["v1", "jobs", id, "retry"], idempotent: false }))
      .body;
  }

  /** Deletes a job (not while it runs). */
  async delete(id: string): Promise<void> {
    await this.transport.send({ method: "DELETE", path: ["v1", "jobs", id], idempotent: true });
  }
}

/** `/v1/queues/...`. */
export class Queues {
  constructor(private readonly transport: Transport) {}

  /** Every queue with its counts by state. */
  async list(): Promise<QueueInfo[]> {
    const answer = await this.transport.send<Schemas["QueueList"]>({ method: "GET", path: ["v1", "queues"], idempotent: true });
    return answer.body.queues;
  }

  /** A queue's counts, limits and live usage (running jobs, groups, throttle, the groups with most waiting jobs). */
  async get(queue: string): Promise<QueueInfo> {
    return (await this.transport.send<QueueInfo>({ method: "GET", path: ["v1", "queues", queue], idempotent: true })).body;
  }

  /**
   * Changes a queue's flow-control limits (`PATCH /v1/queues/{queue}`): a field left out keeps its value, `null`
   * clears it. A lowered limit lets running jobs finish. Answers the queue with its live usage.
   */
  async setLimits(queue: string, limits: QueueLimitsPatch): Promise<QueueInfo> {
    return (
      await this.transport.send<QueueInfo>({ method: "PATCH", path: ["v1", "queues", queue], body: limits, idempotent: true })
    ).body;
  }

  /** Pauses a queue: claims hand out none of its jobs; enqueueing still works. */
  async pause(queue: string): Promise<QueueInfo> {
    return (await this.transport.send<QueueInfo>({ method: "POST", path: ["v1", "queues", queue, "pause"], idempotent: true }))
      .body;
  }

  /** Resumes a paused queue. */
  async resume(queue: string): Promise<QueueInfo> {
    return (await this.transport.send<QueueInfo>({ method: "POST", path: ["v1", "queues", queue, "resume"], idempotent: true }))
      .body;
  }
}

/** `/v1/schedules/...`. */
export class Schedules {
  constructor(private readonly transport: Transport) {}

  /** Creates or replaces the schedule `name`. */
  async put(name: string, spec: ScheduleSpec): Promise<ScheduleInfo> {
    return (
      await this.transport.send<ScheduleInfo>({ method: "PUT", path: ["v1", "schedules", name], body: spec, idempotent: true })
    ).body;
  }

  /** One page of schedules, in name order. */
  async list(page: { cursor?: string; limit?: number } = {}): Promise<SchedulePage> {
    return (await this.transport.send<SchedulePage>({ method: "GET", path: ["v1", "schedules"], query: page, idempotent: true }))
      .body;
  }

  /** The schedule with its next fire times and recent ticks. */
  async get(name: string): Promise<ScheduleInfo> {
    return (await this.transport.send<ScheduleInfo>({ method: "GET", path: ["v1", "schedules", name], idempotent: true }))
      .body;
  }

  /** Deletes the schedule; its jobs stay. */
  async delete(name: string): Promise<void> {
    await this.transport.send({ method: "DELETE", path: ["v1", "schedules", name], idempotent: true });
  }

  /** Pauses the schedule: it fires nothing until resumed. */
  async pause(name: string): Promise<ScheduleInfo> {
    return (
      await this.transport.send<ScheduleInfo>({ method: "POST", path: ["v1", "schedules", name, "pause"], idempotent: true })
    ).body;
  }

  /** Resumes the schedule. */
  async resume(name: string): Promise<ScheduleInfo> {
    return (
      await this.transport.send<ScheduleInfo>({ method: "POST", path: ["v1", "schedules", name, "resume"], idempotent: true })
    ).body;
  }

  /** Creates the schedule's job now, whatever its overlap policy and pause. */
  async trigger(name: string): Promise<Triggered> {
    return (
      await this.transport.send<Triggered>({ method: "POST", path: ["v1", "schedules", name, "trigger"], idempotent: false })
    ).body;
  }
}

/** A completion within a batch. */
export type CompleteItem = Schemas["CompleteItem"];
/** A failure within a batch. */
export type FailItem = Schemas["FailItem"];

/** The pull worker's calls. Most users run a `Worker` instead of calling these. */
export class Workers {
  constructor(private readonly transport: Transport) {}

  /** Claims up to `max_jobs` jobs of `queue`, long-polling up to `wait` when none is available. */
  async claim<P = unknown>(queue: string, request: Schemas["ClaimRequest"], signal?: AbortSignal): Promise<ClaimedJob<P>[]> {
    const answer = await this.transport.send<{ jobs: ClaimedJob<P>[] }>({
      method: "POST",
      path: ["v1", "queues", queue, "claim"],
      body: request,
      idempotent: false,
      signal,
    });
    return answer.body.jobs;
  }

  /** Extends the lease and records progress; says whether a cancel was requested. */
  async heartbeat(id: string, request: Schemas["HeartbeatRequest"]): Promise<HeartbeatResponse> {
    return (
      await this.transport.send<HeartbeatResponse>({
        method: "POST",
        path: ["v1", "jobs", id, "heartbeat"],
        body: request,
        idempotent: true,
      })
    ).body;
  }

  /** Appends 1 to 100 log lines to a job; with the lease token they record the attempt. Sent once (a repeat would add the lines again). */
  async log(id: string, request: Schemas["LogAppendRequest"]): Promise<Schemas["LogAppended"]> {
    return (
      await this.transport.send<Schemas["LogAppended"]>({ method: "POST", path: ["v1", "jobs", id, "logs"], body: request, idempotent: false })
    ).body;
  }

  /** Many completions in one request and one commit, answered per item. */
  async completeMany(jobs: CompleteItem[]): Promise<FinishResult[]> {
    const body = { jobs };
    return (await this.transport.send<Schemas["FinishBatchResponse"]>({ method: "POST", path: ["v1", "jobs", "complete"], body, idempotent: false }))
      .body.jobs;
  }

  /** Many failures in one request and one commit, answered per item. */
  async failMany(jobs: FailItem[]): Promise<FinishResult[]> {
    const body = { jobs };
    return (await this.transport.send<Schemas["FinishBatchResponse"]>({ method: "POST", path: ["v1", "jobs", "fail"], body, idempotent: false }))
      .body.jobs;
  }

  /** Runs the job again after `delay` without using up an attempt. */
  async snooze(id: string, request: Schemas["SnoozeRequest"]): Promise<JobState> {
    return (await this.#finish(id, "snooze", request)).state;
  }

  /** Ends the job cancelled, whatever attempts are left. */
  async abort(id: string, request: Schemas["AbortRequest"]): Promise<JobState> {
    return (await this.#finish(id, "abort", request)).state;
  }

  async #finish(id: string, what: string, body: unknown): Promise<Schemas["FinishedJob"]> {
    return (await this.transport.send<Schemas["FinishedJob"]>({ method: "POST", path: ["v1", "jobs", id, what], body, idempotent: false }))
      .body;
  }
}
