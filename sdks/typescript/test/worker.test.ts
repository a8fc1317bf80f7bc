/**
 * The pull worker against the real server: draining a queue, each typed outcome, a throw retried, progress,
 * the abort signal on a user's cancel, graceful stop (in process and on SIGTERM) and handing jobs back.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Offload, Worker, cancel, fatal, snooze, type Job, type JobRecord } from "../src/index.js";
import { packageRoot, startServer, type TestServer } from "../scripts/server.js";
import { eventually } from "./support/util.js";

let server: TestServer;
let client: Offload;

before(async () => {
  server = await startServer();
  client = new Offload({ baseUrl: server.url });
});
after(() => server.stop());

async function state(id: string, wanted: JobRecord["state"]): Promise<JobRecord> {
  return eventually(`job ${id} to be ${wanted}`, async () => {
    const job = await client.jobs.get(id);
    return job.state === wanted ? job : undefined;
  });
}

test("a worker drains a queue, results kept, concurrency respected", async () => {
  let running = 0;
  let most = 0;
  const worker = new Worker({
    client,
    queues: { drain: 4 },
    claimWaitMs: 1_000,
    handlers: {
      add: async (job: Job<{ a: number; b: number }>) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setImmediate(r));
        running--;
        return job.payload.a + job.payload.b;
      },
    },
  });
  const jobs = await client.enqueueMany(Array.from({ length: 50 }, (_, i) => ({ queue: "drain", name: "add", payload: { a: i, b: 1 } })));
  worker.start();
  const stats = await worker.waitUntil((s) => s.succeeded === 50);
  await worker.stop();
  assert.equal(stats.failed, 0);
  assert.ok(most <= 4, `at most 4 at once, saw ${most}`);
  const last = await client.jobs.get(jobs[49]!.id);
  assert.equal(last.state, "succeeded");
  assert.equal(last.result, 50);
  assert.equal(last.worker_id, worker.id);
});

test("typed outcomes: fatal is dead, snooze reschedules, cancel ends cancelled, a throw is retried", async () => {
  const worker = new Worker({
    client,
    queues: { outcomes: 5 },
    claimWaitMs: 1_000,
    handlers: {
      fatal: async () => {
        throw fatal("no such user");
      },
      snooze: async () => {
        throw snooze(3_600_000);
      },
      cancel: async () => {
        throw cancel("user deleted");
      },
      flaky: async (job: Job) => {
        if (job.attempt === 1) throw new Error("boom");
        return "second time";
      },
    },
  });
  worker.start();
  const opts = { queue: "outcomes", max_attempts: 5, backoff: { base: "1s", cap: "1s", jitter: 0 } };
  const [f, s, c, r] = await Promise.all(["fatal", "snooze", "cancel", "flaky"].map((name) => client.enqueue({ ...opts, name })));
  assert.equal((await state(f!.id, "dead")).last_error, "no such user");
  const snoozed = await state(s!.id, "scheduled");
  assert.ok(Date.parse(snoozed.run_at) > Date.now() + 3_000_000);
  assert.equal(snoozed.max_attempts, 6, "a snooze does not use up an attempt");
  assert.equal((await state(c!.id, "cancelled")).attempt, 1);
  const retried = await state(r!.id, "succeeded");
  assert.equal(retried.result, "second time");
  assert.deepEqual(retried.attempts?.map((a) => a.error ?? null), ["boom", null]);
  await worker.stop();
});

test("progress is recorded, and a user's cancel aborts job.signal", async () => {
  let started!: () => void;
  const isRunning = new Promise<void>((r) => (started = r));
  const worker = new Worker({
    client,
    queues: { long: 1 },
    claimWaitMs: 1_000,
    handlers: {
      long: async (job: Job) => {
        await job.progress(30, "a third");
        started();
        await new Promise((_, fail) => job.signal.addEventListener("abort", () => fail(new Error(`stopped: ${job.abortReason}`))));
      },
    },
  });
  worker.start();
  const job = await client.enqueue({ queue: "long", name: "long", timeout: "1s" });
  await isRunning;
  assert.deepEqual((await client.jobs.get(job.id)).progress, { percent: 30, message: "a third" });
  await client.jobs.cancel(job.id);
  const done = await state(job.id, "cancelled");
  assert.match(done.attempts?.[0]?.error ?? "", /stopped: cancelled/);
  await worker.stop();
});

test("stop lets running jobs finish within the grace period, and hands back the rest", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let begun = 0;
  let allBegun!: () => void;
  const bothRunning = new Promise<void>((r) => (allBegun = r));
  const worker = new Worker({
    client,
    queues: { graceful: 2 },
    claimWaitMs: 1_000,
    handlers: {
      finishes: async () => {
        if (++begun === 2) allBegun();
        await released;
        return "done";
      },
      hangs: async (job: Job) => {
        if (++begun === 2) allBegun();
        await new Promise((r) => job.signal.addEventListener("abort", r));
        return "too late";
      },
    },
  });
  const a = await client.enqueue({ queue: "graceful", name: "finishes" });
  const b = await client.enqueue({ queue: "graceful", name: "hangs", max_attempts: 3 });
  worker.start();
  await bothRunning;
  const stopping = worker.stop(300);
  release();
  const stats = await stopping;
  assert.equal(stats.succeeded, 1);
  assert.equal(stats.released, 1);
  assert.equal((await client.jobs.get(a.id)).state, "succeeded");
  const handedBack = await client.jobs.get(b.id);
  assert.equal(handedBack.state, "available");
  assert.equal(handedBack.max_attempts, 4, "handing back uses up no attempt");
});

test("the example worker stops gracefully on SIGTERM", async () => {
  const child = spawn(process.execPath, [join(packageRoot, "dist/examples/worker/worker.js")], {
    env: { ...process.env, OFFLOAD_URL: server.url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const job = await client.enqueue({ queue: "emails", name: "welcome", payload: { user: 42 } });
  assert.deepEqual((await state(job.id, "succeeded")).result, { welcomed: 42 });
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
  assert.match(out, /stopped: 1 succeeded, 0 failed/);
});

test("job.log attaches lines to the job, recorded with the attempt, in order", async () => {
  const worker = new Worker({
    client,
    queues: { logged: 1 },
    claimWaitMs: 1_000,
    handlers: {
      chatty: async (job: Job) => {
        await job.log("starting");
        await job.log("a\u0000b", "warn");
        await job.log("x".repeat(5_000), "error");
        return "ok";
      },
    },
  });
  const [job] = await client.enqueueMany([{ queue: "logged", name: "chatty", payload: {} }]);
  worker.start();
  await worker.waitUntil((s) => s.succeeded === 1);
  await worker.stop();
  const page = await client.jobs.logs(job!.id);
  assert.deepEqual(
    page.lines.map((l) => [l.seq, l.level, l.message.length, l.attempt]),
    [
      [1, "info", 8, 1],
      [2, "warn", 3, 1],
      [3, "error", 4_096, 1],
    ],
  );
  assert.equal(page.lines[1]!.message, "a\uFFFDb");
  await assert.rejects(client.jobs.logs(crypto.randomUUID()), /not found|404/i);
});
