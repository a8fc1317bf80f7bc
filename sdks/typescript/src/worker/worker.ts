/**
 * The pull worker: claims jobs of its queues over HTTP, runs the handler registered for each job's name, keeps
 * leases alive with heartbeats and reports how each attempt ended.
 *
 * Guarantees:
 * - A queue never holds more than its concurrency of jobs (running, or waiting for their report's answer):
 *   a claim asks for at most the free slots, and a slot frees when the report is answered.
 * - Each claimed job gets exactly one report, except when its lease was lost (the job belongs to another
 *   worker then) or the report could not be sent (the server retries it when the lease expires).
 * - Stopping has two stages: stop claiming at once; let running jobs finish for the grace period; then abort
 *   the rest (`job.signal`, reason `shutdown`) and hand them back (snoozed with no delay: they run again at
 *   once elsewhere without using up an attempt).
 */
import type { Offload } from "../client.js";
import { readEnv } from "../env.js";
import { sleep } from "../transport.js";
import type { ClaimedJob } from "../types.js";
import { Job } from "./job.js";
import { NonRetriableError } from "../errors.js";
import { completed, outcomeOf, type Outcome } from "./outcomes.js";
import { leaseLost, Reporter, type Settlement } from "./reporter.js";
import type { OffloadFunction } from "../functions/define.js";
import { byId, runCall, type CallOptions } from "../functions/serve.js";

/** A handler: gets the job, returns its result (kept on the job) or throws to end the attempt otherwise. */
export type JobHandler<P = any, R = unknown> = (job: Job<P>) => R | Promise<R>;

/** Configuration of a `Worker`. */
export interface WorkerOptions {
  /** The client to talk to the server through. */
  client: Offload;
  /** Queues to work, each with its concurrency: `{ emails: 10 }`. */
  queues?: Record<string, number>;
  /** Handlers by job name. */
  handlers?: Record<string, JobHandler>;
  /**
   * Durable functions whose calls this worker runs: it works each function's queue (with
   * `functionConcurrency`, unless `queues` names it) and runs the calls (job name = function id).
   */
  functions?: readonly OffloadFunction<any, any>[];
  /** Concurrency of a function's queue not named in `queues` (default 10). */
  functionConcurrency?: number;
  /** How calls are run (`maxRunSteps`, `logger`). */
  callOptions?: Omit<CallOptions, "fetchSteps">;
  /** Runs jobs no named handler takes (nameless jobs too). Without it such jobs fail and are retried. */
  fallback?: JobHandler;
  /** Recorded on every attempt (default `HOSTNAME-PID`). */
  workerId?: string;
  /** Long-poll wait of a claim, ms (default 30,000; at most 60,000). */
  claimWaitMs?: number;
  /** Most jobs per claim (default and maximum 1000; never more than the free slots). */
  claimBatch?: number;
  /** Heartbeat every this fraction of a job's timeout (default 1/3). */
  heartbeatFraction?: number;
  /** Most reports per request (default 1000). */
  reportBatch?: number;
  /** Report requests in flight at once (default 4). */
  reportsInFlight?: number;
  /** How long `run()`'s stop on SIGTERM/SIGINT lets running jobs finish, ms (default 30,000). */
  shutdownGraceMs?: number;
  /** Where warnings go (default `console.warn`). */
  onWarning?: (message: string) => void;
}

/** What a worker did so far. */
export interface WorkerStats {
  claimed: number;
  running: number;
  succeeded: number;
  failed: number;
  snoozed: number;
  cancelled: number;
  /** Handed back at a shutdown. */
  released: number;
  /** Reports the server refused because the lease was lost (the job was rescued). */
  refused: number;
  /** Reports given up after their tries (their jobs are retried when the leases expire). */
  unreported: number;
}

/** Shortest heartbeat interval, whatever the job's timeout. */
const MIN_HEARTBEAT_MS = 100;
/** An empty claim answered faster than this is followed by a pause this long (a server that does not long-poll). */
const MIN_CLAIM_CYCLE_MS = 500;
const MAX_CLAIM_JOBS = 1000;
const MAX_CLAIM_WAIT_MS = 60_000;
/** Claims of one queue in flight at once, at most. */
const MAX_CLAIMS_IN_FLIGHT = 4;

/** A queue's concurrency slots: held by claimed jobs until their report is answered, reserved by claims in flight. */
interface Slots {
  concurrency: number;
  held: number;
  reserved: number;
  /** Claim loops waiting for a slot to free. */
  waiters: Set<() => void>;
}

/** Runs handlers for the jobs of some queues. */
export class Worker {
  /** The id recorded on attempts. */
  readonly id: string;
  readonly #options: WorkerOptions & { queues: Record<string, number> };
  readonly #reporter: Reporter;
  readonly #stats: WorkerStats = {
    claimed: 0, running: 0, succeeded: 0, failed: 0, snoozed: 0, cancelled: 0, released: 0, refused: 0, unreported: 0,
  };
  readonly #watchers = new Set<() => void>();
  /** Aborts in-flight claims when stopping. */
  readonly #fetch = new AbortController();
  /** Fires when the grace period ends. */
  readonly #kill = new AbortController();
  readonly #running = new Set<Promise<void>>();
  /** Ends the wait of each running job when the grace period ends (one entry per running job, no listeners). */
  readonly #killers = new Set<() => void>();
  #loops: Promise<void>[] = [];
  #started = false;
  #stopping: Promise<WorkerStats> | undefined;

  constructor(given: WorkerOptions) {
    const options = withFunctions(given);
    const queues = Object.entries(options.queues);
    if (queues.length === 0) throw new TypeError("no queue to work: give queues, e.g. { emails: 10 }");
    for (const [queue, n] of queues) {
      if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(queue)) throw new TypeError(`queue \`${queue}\`: 1 to 128 ASCII letters, digits and -_.:`);
      if (!Number.isInteger(n) || n < 1) throw new TypeError(`queue \`${queue}\`: concurrency must be a whole number >= 1`);
    }
    if (Object.keys(options.handlers ?? {}).length === 0 && !options.fallback) {
      throw new TypeError("no handler: give handlers by job name, or a fallback");
    }
    const fraction = options.heartbeatFraction ?? 1 / 3;
    if (!(fraction > 0 && fraction < 1)) throw new TypeError("heartbeatFraction must be between 0 and 1 exclusive");
    if ((options.claimWaitMs ?? 0) > MAX_CLAIM_WAIT_MS) throw new TypeError(`claimWaitMs must be at most ${MAX_CLAIM_WAIT_MS}`);
    this.#options = options;
    this.id = options.workerId ?? defaultWorkerId();
    const warn = options.onWarning ?? ((m: string) => console.warn(`offload worker: ${m}`));
    this.#reporter = new Reporter(options.client.workers, options.reportBatch ?? 1000, options.reportsInFlight ?? 4, warn);
  }

  /** A copy of the counters. */
  stats(): WorkerStats {
    return { ...this.#stats };
  }

  /** Resolves with the counters once `done` holds for them (checked after every change). For tests and benches. */
  waitUntil(done: (stats: WorkerStats) => boolean): Promise<WorkerStats> {
    return new Promise((resolve) => {
      const check = () => {
        if (done(this.#stats)) {
          this.#watchers.delete(check);
          resolve(this.stats());
        }
      };
      this.#watchers.add(check);
      check();
    });
  }

  #changed(): void {
    for (const w of [...this.#watchers]) w();
  }

  /** Starts claiming and running jobs; returns at once. Stop with `stop`. */
  start(): void {
    if (this.#started) throw new Error("the worker was started already");
    this.#started = true;
    this.#loops = Object.entries(this.#options.queues).map(([queue, n]) => this.#claimLoop(queue, n));
  }

  /**
   * Starts, and stops gracefully on the first SIGTERM or SIGINT (a second one stops at once); resolves with
   * the final counters once stopped. Node, Bun and Deno's Node compatibility only.
   */
  async run(): Promise<WorkerStats> {
    const proc = (globalThis as { process?: NodeJS.Process }).process;
    if (!proc) throw new Error("run() needs process signals; call start() and stop() instead");
    this.start();
    let signals = 0;
    const onSignal = () => {
      signals++;
      void this.stop(signals > 1 ? 0 : this.#options.shutdownGraceMs ?? 30_000);
      if (signals > 1) this.#killAll();
    };
    proc.on("SIGTERM", onSignal);
    proc.on("SIGINT", onSignal);
    try {
      await new Promise<void>((done) => this.#fetch.signal.addEventListener("abort", () => done(), { once: true }));
      return await this.#stopping!;
    } finally {
      proc.off("SIGTERM", onSignal);
      proc.off("SIGINT", onSignal);
    }
  }

  /**
   * Stops: no more claims; running jobs get `graceMs` to finish and be reported; the rest are aborted and handed
   * back. Resolves with the final counters once every report was answered. Calling it again returns the same.
   */
  stop(graceMs = this.#options.shutdownGraceMs ?? 30_000): Promise<WorkerStats> {
    this.#stopping ??= (async () => {
      this.#fetch.abort();
      await Promise.all(this.#loops);
      const all = Promise.all([...this.#running]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((done) => (timer = setTimeout(done, graceMs)));
      await Promise.race([all, expired, new Promise<void>((d) => this.#kill.signal.addEventListener("abort", () => d()))]);
      clearTimeout(timer);
      this.#killAll();
      await all;
      await this.#reporter.drained();
      return this.stats();
    })();
    return this.#stopping;
  }

  /** Ends the grace period: running handlers are abandoned and their jobs handed back. */
  #killAll(): void {
    this.#kill.abort();
    for (const kill of [...this.#killers]) kill();
  }

  /**
   * The claim loops of one queue: up to 4 claims in flight at once (one per `claimBatch` of concurrency), so the
   * next jobs are on their way while earlier claims are parsed and run. They share the queue's slots: a claim
   * reserves the slots it asks for, so together they never ask for more than are free.
   */
  #claimLoop(queue: string, concurrency: number): Promise<void> {
    const most = Math.min(this.#options.claimBatch ?? MAX_CLAIM_JOBS, MAX_CLAIM_JOBS);
    const slots: Slots = { concurrency, held: 0, reserved: 0, waiters: new Set() };
    const loops = Math.min(MAX_CLAIMS_IN_FLIGHT, Math.ceil(concurrency / most));
    return Promise.all(Array.from({ length: loops }, () => this.#claimer(queue, slots, most))).then(() => undefined);
  }

  async #claimer(queue: string, slots: Slots, most: number): Promise<void> {
    const wait = this.#options.claimWaitMs ?? 30_000;
    const release = () => {
      slots.held--;
      for (const wake of slots.waiters) wake();
    };
    let failures = 0;
    const signal = this.#fetch.signal;
    while (!signal.aborted) {
      const free = slots.concurrency - slots.held - slots.reserved;
      if (free <= 0) {
        await new Promise<void>((done) => {
          const wake = () => {
            slots.waiters.delete(wake);
            signal.removeEventListener("abort", wake);
            done();
          };
          slots.waiters.add(wake);
          signal.addEventListener("abort", wake, { once: true });
        });
        continue;
      }
      const asked = Math.min(free, most);
      const started = Date.now();
      let jobs: ClaimedJob[];
      slots.reserved += asked;
      try {
        jobs = await this.#claim(queue, asked, wait);
        failures = 0;
      } catch (e) {
        if (signal.aborted) return;
        failures++;
        const delay = Math.min(500 * 2 ** Math.min(failures - 1, 10), 30_000) * (1 - 0.2 * Math.random());
        (this.#options.onWarning ?? console.warn)(`cannot claim from queue ${queue}: ${(e as Error).message}; again in ${Math.round(delay)} ms`);
        await sleep(delay, signal);
        continue;
      } finally {
        slots.reserved -= asked;
      }
      if (jobs.length === 0) {
        if (Date.now() - started < MIN_CLAIM_CYCLE_MS) await sleep(MIN_CLAIM_CYCLE_MS, signal);
        continue;
      }
      this.#stats.claimed += jobs.length;
      slots.held += jobs.length;
      this.#changed();
      for (const claimed of jobs) {
        const running = this.#runJob(claimed, release);
        this.#running.add(running);
        void running.finally(() => this.#running.delete(running));
      }
    }
  }

  /**
   * One claim, abortable by `stop`. Each claim gets a signal of its own: fetch implementations keep their
   * listener on a signal until it is collected, so reusing the worker's signal would pile listeners up.
   */
  async #claim(queue: string, maxJobs: number, wait: number): Promise<ClaimedJob[]> {
    const claim = new AbortController();
    const stop = () => claim.abort();
    this.#fetch.signal.addEventListener("abort", stop, { once: true });
    try {
      return await this.#options.client.workers.claim(queue, { worker_id: this.id, max_jobs: maxJobs, wait }, claim.signal);
    } finally {
      this.#fetch.signal.removeEventListener("abort", stop);
    }
  }

  /** Runs one job to its report; `release` frees its slot once the report is answered. */
  async #runJob(claimed: ClaimedJob, release: () => void): Promise<void> {
    const workers = this.#options.client.workers;
    const token = claimed.lease_token;
    const timeoutMs = durationMs(claimed.timeout);
    const job = new Job(
      {
        id: claimed.id,
        queue: claimed.queue,
        name: claimed.name ?? undefined,
        payload: claimed.payload,
        attempt: claimed.attempt,
        maxAttempts: claimed.max_attempts,
        tags: claimed.tags ?? {},
        createdAt: claimed.created_at,
        timeoutMs,
      },
      {
        heartbeat: async (progress) => {
          try {
            const body = progress ? { lease_token: token, progress: progress.percent, message: progress.message ?? null } : { lease_token: token };
            return await workers.heartbeat(claimed.id, body);
          } catch (e) {
            if (leaseLost(e)) job.abort("lease_lost");
            throw e;
          }
        },
        log: async (lines) => {
          try {
            await workers.log(claimed.id, { lease_token: token, lines });
          } catch (e) {
            if (leaseLost(e)) job.abort("lease_lost");
            throw e;
          }
        },
      },
    );
    const handler = (claimed.name !== null && claimed.name !== undefined ? this.#options.handlers?.[claimed.name] : undefined) ??
      this.#options.fallback;
    const period = Math.max(timeoutMs * (this.#options.heartbeatFraction ?? 1 / 3), MIN_HEARTBEAT_MS);
    const beat = setInterval(() => {
      if (job.abortReason === "lease_lost") return;
      job.heartbeat().catch((e: unknown) => {
        if (!leaseLost(e)) (this.#options.onWarning ?? console.warn)(`job ${claimed.id}: heartbeat failed: ${(e as Error).message}`);
      });
    }, period);
    this.#stats.running++;
    let outcome: Outcome | "killed";
    try {
      const work = (async () => {
        if (!handler) throw new Error(`no handler for job name \`${claimed.name ?? ""}\` on queue ${claimed.queue}`);
        return completed(await handler(job));
      })().catch(outcomeOf);
      let onKill: (() => void) | undefined;
      const killed = new Promise<"killed">((done) => {
        onKill = () => done("killed");
        if (this.#kill.signal.aborted) onKill();
        else this.#killers.add(onKill);
      });
      outcome = await Promise.race([work, killed]);
      this.#killers.delete(onKill!);
      if (outcome === "killed") job.abort("shutdown");
    } finally {
      clearInterval(beat);
      this.#stats.running--;
    }
    if (job.abortReason === "lease_lost") {
      this.#stats.refused++;
      release();
      this.#changed();
      return;
    }
    const released = outcome === "killed";
    const report: Outcome = released ? { kind: "snooze", delayMs: 0 } : (outcome as Outcome);
    await new Promise<void>((done) =>
      this.#reporter.push({
        id: claimed.id,
        leaseToken: token,
        outcome: report,
        settled: (how: Settlement) => {
          this.#count(report, how, released);
          release();
          this.#changed();
          done();
        },
      }),
    );
  }

  #count(outcome: Outcome, how: Settlement, released: boolean): void {
    if (how !== "accepted") {
      this.#stats[how]++;
      return;
    }
    const key = released
      ? "released"
      : ({ complete: "succeeded", fail: "failed", snooze: "snoozed", abort: "cancelled" } as const)[outcome.kind];
    this.#stats[key]++;
  }
}

/** The options with each function's queue added and a handler per function id that runs its calls. */
function withFunctions(options: WorkerOptions): WorkerOptions & { queues: Record<string, number> } {
  const queues = { ...options.queues };
  const functions = options.functions ?? [];
  if (functions.length === 0) return { ...options, queues };
  const served = byId(functions);
  const handlers: Record<string, JobHandler> = { ...options.handlers };
  const concurrency = options.functionConcurrency ?? 10;
  const call: CallOptions = { ...options.callOptions, fetchSteps: (runId) => options.client.runs.recordedSteps(runId) };
  for (const fn of functions) {
    if (fn.pushed) throw new TypeError(`function ${fn.id} has a push target: serve it with serve({ functions }), not a Worker`);
    if (handlers[fn.id]) throw new TypeError(`a handler and a function are both named \`${fn.id}\``);
    queues[fn.queue] ??= concurrency;
    handlers[fn.id] = async (job: Job) => {
      const response = await runCall(served, job.payload, call);
      if (response === undefined) throw new NonRetriableError(`job ${job.id} is named after function ${fn.id} but is not a call request`);
      return response;
    };
  }
  return { ...options, queues, handlers };
}

/** A duration as the server sends it (integer milliseconds) or as text, in milliseconds. */
export function durationMs(value: number | string): number {
  if (typeof value === "number") return value;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  for (const [, n, unit] of value.matchAll(re)) total += Number(n) * units[unit!]!;
  return total;
}

/** `HOSTNAME-PID`: unique per process on a machine, and readable in the attempt history. */
function defaultWorkerId(): string {
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid ?? Math.floor(Math.random() * 1e6);
  return `${readEnv("HOSTNAME") ?? "worker"}-${pid}`;
}

