/**
 * Sends ended attempts to the server: completions batched into one request, failures into another, snoozes
 * and aborts one by one.
 *
 * Invariant: each report is sent until the server answers it (accepted or refused) or its tries run out, and
 * only then is its `settled` callback called, which frees the job's concurrency slot; so a worker never holds
 * more jobs than its limit while reports are pending. Batching is natural: what queued up while earlier
 * requests were in flight goes out together.
 */
import { OffloadError } from "../errors.js";
import type { Workers } from "../client.js";
import { sleep } from "../transport.js";
import type { FinishResult } from "../types.js";
import type { Outcome } from "./outcomes.js";

/** Tries of one request before its reports are given up (the server retries those jobs when their leases expire). */
const TRIES = 5;
/** Pause before the second try, doubled before each further one. */
const FIRST_PAUSE_MS = 250;

/** How a report ended, for the worker's counters. */
export type Settlement = "accepted" | "refused" | "unreported";

/** One ended attempt to report. */
export interface Report {
  id: string;
  leaseToken: string;
  outcome: Outcome;
  /** Called once the server answered (or the report was given up). */
  settled(how: Settlement): void;
}

/** A refusal of the request as a whole (a result over the size limit, a retry delay over the maximum). */
function refusedRequest(e: unknown): boolean {
  return e instanceof OffloadError && [400, 413, 422].includes(e.status);
}

/** Lease lost: the job was rescued and belongs to someone else now. */
export function leaseLost(e: unknown): boolean {
  return e instanceof OffloadError && (e.code === "lease_mismatch" || e.code === "not_found");
}

/** Calls `send` until it succeeds, up to `TRIES` times while the failure may pass by itself. */
async function withRetries<T>(send: () => Promise<T>): Promise<T> {
  let pause = FIRST_PAUSE_MS;
  for (let tries = 1; ; tries++) {
    try {
      return await send();
    } catch (e) {
      const passing = e instanceof OffloadError && (e.status === 0 || e.status === 429 || e.status >= 500);
      if (!passing || tries >= TRIES) throw e;
      await sleep(pause);
      pause *= 2;
    }
  }
}

/** The queue of reports and the requests carrying them. */
export class Reporter {
  readonly #queue: Report[] = [];
  #inFlight = 0;
  #scheduled = false;
  #idle: (() => void)[] = [];

  constructor(
    private readonly workers: Workers,
    private readonly batch: number,
    private readonly maxInFlight: number,
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Queues a report; it is sent once the current turn of the event loop is over (so every job that ended in
   * this turn goes in the same request) and a request slot is free.
   */
  push(report: Report): void {
    this.#queue.push(report);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setTimeout(() => {
        this.#scheduled = false;
        this.#pump();
      }, 0);
    }
  }

  /** Resolves once every queued report was answered or given up. */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0 && !this.#scheduled) return Promise.resolve();
    return new Promise((done) => this.#idle.push(done));
  }

  #pump(): void {
    while (this.#inFlight < this.maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.batch);
      this.#inFlight++;
      void this.#send(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#queue.length === 0 && this.#inFlight === 0) for (const done of this.#idle.splice(0)) done();
      });
    }
  }

  async #send(batch: Report[]): Promise<void> {
    const completes = batch.filter((r) => r.outcome.kind === "complete");
    const fails = batch.filter((r) => r.outcome.kind === "fail");
    const singles = batch.filter((r) => r.outcome.kind === "snooze" || r.outcome.kind === "abort");
    await Promise.all([
      this.#many(completes, () =>
        this.workers.completeMany(completes.map((r) => ({ id: r.id, lease_token: r.leaseToken, ...resultOf(r.outcome) }))),
      ),
      this.#many(fails, () => this.workers.failMany(fails.map((r) => failItem(r)))),
      (async () => {
        for (const r of singles) await this.#single(r);
      })(),
    ]);
  }

  /** Sends a batch; a batch refused as a whole goes again item by item, so one bad item costs only itself. */
  async #many(reports: Report[], send: () => Promise<FinishResult[]>): Promise<void> {
    if (reports.length === 0) return;
    try {
      const answers = await withRetries(send);
      answers.forEach((a, i) => {
        const r = reports[i]!;
        if (!a.ok) this.warn(`job ${a.id}: report refused (${a.code ?? "unknown"}): the lease was lost`);
        r.settled(a.ok ? "accepted" : "refused");
      });
    } catch (e) {
      if (refusedRequest(e) && reports.length > 1) {
        for (const r of reports) await this.#single(r);
        return;
      }
      if (refusedRequest(e)) return this.#single(reports[0]!);
      this.warn(`cannot report ${reports.length} attempts: ${(e as Error).message}; their leases will expire`);
      for (const r of reports) r.settled("unreported");
    }
  }

  /** One report on its own; a refused result or retry delay is dropped and the report sent without it. */
  async #single(r: Report): Promise<void> {
    const o = r.outcome;
    const send = (bare: boolean): Promise<unknown> => {
      switch (o.kind) {
        case "complete":
          return this.workers.completeMany([{ id: r.id, lease_token: r.leaseToken, ...(bare ? {} : resultOf(o)) }]).then(check);
        case "fail":
          return this.workers.failMany([failItem(r, bare)]).then(check);
        case "snooze":
          return this.workers.snooze(r.id, { lease_token: r.leaseToken, delay: Math.round(o.delayMs) });
        case "abort":
          return this.workers.abort(r.id, { lease_token: r.leaseToken, reason: o.reason });
      }
    };
    try {
      try {
        await withRetries(() => send(false));
      } catch (e) {
        if (!refusedRequest(e) || o.kind === "snooze" || o.kind === "abort") throw e;
        this.warn(`job ${r.id}: the server refused the report (${(e as Error).message}); sending it without result or delay`);
        await withRetries(() => send(true));
      }
      r.settled("accepted");
    } catch (e) {
      if (leaseLost(e)) {
        this.warn(`job ${r.id}: report refused: the lease was lost`);
        r.settled("refused");
      } else {
        this.warn(`job ${r.id}: cannot report: ${(e as Error).message}; its lease will expire`);
        r.settled("unreported");
      }
    }
  }
}

/** Throws the per-item refusal of a one-item batch, so single reports see `lease_mismatch` as an error. */
function check(answers: FinishResult[]): void {
  const a = answers[0];
  if (a && !a.ok) throw new OffloadError(409, a.code ?? "lease_mismatch", `job ${a.id}: report refused`);
}

function resultOf(o: Outcome): { result?: unknown } {
  return o.kind === "complete" && o.result !== undefined ? { result: o.result } : {};
}

function failItem(r: Report, bare = false) {
  const o = r.outcome as Extract<Outcome, { kind: "fail" }>;
  return {
    id: r.id,
    lease_token: r.leaseToken,
    error: o.error,
    retryable: o.retryable,
    ...(o.retryAfterMs !== undefined && !bare ? { retry_after: Math.round(o.retryAfterMs) } : {}),
  };
}
