/**
 * Durable functions against the real server: registered with an app sync, started by events, their calls
 * pushed to a real `node:http` server through `serve({ functions })` or claimed by a `Worker`, with steps that
 * fail and retry, sleep, wait for an event and run in parallel; the run and its steps read back.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createFunction, NonRetriableError, Offload, OffloadError, serve, Worker, type RunView } from "../src/index.js";
import { startServer, TEST_SECRET, type TestServer } from "../scripts/server.js";
import { eventually, fromWeb, listen, type HttpServer } from "./support/util.js";

let server: TestServer;
let client: Offload;

before(async () => {
  server = await startServer();
  client = new Offload({ baseUrl: server.url });
});
after(() => server.stop());

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const fastBackoff = { base: "100ms", cap: "200ms", jitter: 0 };

/** Waits until the run has ended and returns it. */
function ended(id: string): Promise<RunView> {
  return eventually(
    `run ${id} to end`,
    async () => {
      const run = await client.runs.get(id);
      return ["succeeded", "failed", "cancelled"].includes(run.state) ? run : undefined;
    },
    30_000,
  );
}

/** A three-step function; `tag` keeps the ids of the push and pull variants apart. */
function threeSteps(id: string, event: string, where: { queue?: string }) {
  const executed: string[] = [];
  const fn = createFunction<{ n: number }>({ id, trigger: { event }, backoff: fastBackoff, ...where }, async ({ event, step }) => {
    const a = await step.run("a", () => {
      executed.push("a");
      return event.data.n + 1;
    });
    const b = await step.run("b", () => {
      executed.push("b");
      return a * 2;
    });
    const c = await step.run("c", () => {
      executed.push("c");
      return { total: b + 1 };
    });
    return c;
  });
  return { fn, executed };
}

async function checkThreeSteps(runId: string, executed: string[]) {
  const run = await ended(runId);
  assert.equal(run.state, "succeeded", JSON.stringify(run.error));
  assert.deepEqual(run.output, { total: 13 });
  const steps = await client.runs.steps(runId);
  assert.deepEqual(
    steps.map((s) => [s.id, s.kind, s.result]),
    [
      ["a", "run", { data: 6 }],
      ["b", "run", { data: 12 }],
      ["c", "run", { data: { total: 13 } }],
    ],
  );
  assert.deepEqual(executed, ["a", "b", "c"], "each step ran exactly once");
}

describe("over push: serve({ functions }) behind node:http", () => {
  let endpoint: HttpServer;
  let route: string;
  const three = threeSteps("push-three", "test/push.three", {});
  let approvals = 0;
  const flaky = createFunction(
    { id: "push-flaky", trigger: { event: "test/push.flaky" }, retries: 3, backoff: fastBackoff },
    async ({ step }) => {
      const charged = await step.run("charge", () => {
        approvals++;
        if (approvals < 3) throw new Error(`declined ${approvals}`);
        return "charged";
      });
      try {
        await step.run("refund", () => {
          throw new NonRetriableError("not refundable");
        });
      } catch (e) {
        return { charged, refund: (e as Error).name };
      }
    },
  );
  const waiter = createFunction<{ order: string }>({ id: "push-waiter", trigger: { event: "test/push.order" } }, async ({ step }) => {
    await step.sleep("nap", "1s");
    const approved = await step.waitForEvent<{ order: string; by: string }>("approval", {
      event: "test/push.approved",
      match: "data.order",
      timeout: "1m",
    });
    return approved?.data.by ?? "nobody";
  });

  before(async () => {
    endpoint = await listen(fromWeb(serve({ functions: [three.fn, flaky, waiter], secret: TEST_SECRET, logger: quiet })));
    route = `${endpoint.url}/api/offload`;
    const synced = await client.functions.sync("ts-push", [three.fn, flaky, waiter], { target: route });
    assert.deepEqual([...synced.created].sort(), ["push-flaky", "push-three", "push-waiter"]);
  });
  after(() => endpoint.close());

  test("events.send starts a run; three steps each run once; runs.get and runs.steps show them", async () => {
    const sent = await client.events.send({ name: "test/push.three", data: { n: 5 } });
    assert.equal(sent.ids.length, 1);
    assert.equal(sent.runs[0]!.length, 1);
    await checkThreeSteps(sent.runs[0]![0]!, three.executed);
    const event = await client.events.get(sent.ids[0]!);
    assert.equal(event.name, "test/push.three");
    assert.deepEqual(event.runs, sent.runs[0]);
  });

  test("a failing step is retried on its own count; a NonRetriableError is recorded at once and caught", async () => {
    const sent = await client.events.send({ name: "test/push.flaky" });
    const run = await ended(sent.runs[0]![0]!);
    assert.equal(run.state, "succeeded", JSON.stringify(run.error));
    assert.deepEqual(run.output, { charged: "charged", refund: "NonRetriableError" });
    const steps = await client.runs.steps(run.id);
    const charge = steps.find((s) => s.id === "charge")!;
    assert.deepEqual(charge.result, { data: "charged" });
    assert.deepEqual(
      charge.failed_attempts.map((a) => [a.attempt, a.error.message]),
      [
        [1, "declined 1"],
        [2, "declined 2"],
      ],
    );
    const refund = steps.find((s) => s.id === "refund")!;
    assert.deepEqual(refund.result, { error: { name: "NonRetriableError", message: "not refundable" } });
  });

  test("a run sleeps, then waits for its matching event, which resolves the step", async () => {
    const sent = await client.events.send({ name: "test/push.order", data: { order: "o-1" } });
    const runId = sent.runs[0]![0]!;
    await eventually("the run to wait for its event", async () => (await client.runs.get(runId)).state === "waiting", 30_000);
    await client.events.send({ name: "test/push.approved", data: { order: "o-2", by: "someone else" } });
    await client.events.send({ name: "test/push.approved", data: { order: "o-1", by: "alice" } });
    const run = await ended(runId);
    assert.equal(run.state, "succeeded", JSON.stringify(run.error));
    assert.equal(run.output, "alice");
    const kinds = (await client.runs.steps(runId)).map((s) => [s.id, s.kind]);
    assert.deepEqual(kinds, [
      ["nap", "sleep"],
      ["approval", "wait_for_event"],
    ]);
  });

  test("functions are listed, read and removed", async () => {
    const ids = (await client.functions.list()).functions.map((f) => f.id);
    for (const id of ["push-three", "push-flaky", "push-waiter"]) assert.ok(ids.includes(id), id);
    const read = await client.functions.get("push-three");
    assert.equal(read.target?.url, route);
    assert.equal(read.queue, "push-three");
    assert.equal(read.app, "ts-push");
    const again = await client.functions.sync("ts-push", [three.fn, flaky, waiter], { target: route });
    assert.deepEqual([...again.unchanged].sort(), ["push-flaky", "push-three", "push-waiter"]);
    const fewer = await client.functions.sync("ts-push", [three.fn, flaky], { target: route });
    assert.deepEqual(fewer.removed, ["push-waiter"]);
    await assert.rejects(client.functions.get("push-waiter"), (e: unknown) => e instanceof OffloadError && e.code === "not_found");
    await client.functions.delete("push-flaky");
    const left = (await client.functions.list({ app: "ts-push" })).functions.map((f) => f.id);
    assert.deepEqual(left, ["push-three"]);
  });
});

describe("over pull: a Worker runs the calls", () => {
  const three = threeSteps("pull-three", "test/pull.three", {});
  const parallel = createFunction<{ items: number[] }>({ id: "pull-parallel", trigger: { event: "test/pull.parallel" } }, async ({ event, step }) => {
    const squares = await Promise.all(event.data.items.map((i) => step.run(`square-${i}`, () => i * i)));
    const sum = await step.run("sum", () => squares.reduce((x, y) => x + y, 0));
    return { squares, sum };
  });
  let worker: Worker;

  before(async () => {
    await client.functions.sync("ts-pull", [three.fn, parallel]);
    worker = new Worker({ client, functions: [three.fn, parallel], claimWaitMs: 1_000, callOptions: { logger: quiet } });
    worker.start();
  });
  after(() => worker.stop(1_000));

  test("events.send starts a run; three steps each run once; runs.get and runs.steps show them", async () => {
    const sent = await client.events.send({ name: "test/pull.three", data: { n: 5 }, id: "pull-three-1" });
    await checkThreeSteps(sent.runs[0]![0]!, three.executed);
    const again = await client.events.send({ name: "test/pull.three", data: { n: 5 }, id: "pull-three-1" });
    assert.deepEqual(again.ids, sent.ids, "a repeated event id is the same event");
    assert.equal((await client.runs.list({ function: "pull-three" })).runs.length, 1, "and starts no second run");
  });

  test("Promise.all over steps runs them as parallel calls, then goes on", async () => {
    const sent = await client.events.send({ name: "test/pull.parallel", data: { items: [1, 2, 3, 4] } });
    const run = await ended(sent.runs[0]![0]!);
    assert.equal(run.state, "succeeded", JSON.stringify(run.error));
    assert.deepEqual(run.output, { squares: [1, 4, 9, 16], sum: 30 });
    const ids = (await client.runs.steps(run.id)).map((s) => s.id).sort();
    assert.deepEqual(ids, ["square-1", "square-2", "square-3", "square-4", "sum"]);
  });

  test("step.invoke runs another function and gets its output; a wait past its timeout resolves to null", async () => {
    const child = createFunction<{ n: number }>({ id: "pull-child", trigger: { event: "test/pull.child" } }, async ({ event, step }) =>
      step.run("double", () => event.data.n * 2),
    );
    const parent = createFunction({ id: "pull-parent", trigger: { event: "test/pull.parent" } }, async ({ step }) => {
      const doubled = await step.invoke<number>("child", { function: child, data: { n: 21 }, timeout: "1m" });
      const nothing = await step.waitForEvent("late", { event: "test/pull.never", timeout: "1s" });
      let missing: string | undefined;
      try {
        await step.invoke("ghost", { function: "no-such-function" });
      } catch (e) {
        missing = (e as Error).name;
      }
      return { doubled, nothing, missing };
    });
    await client.functions.sync("ts-pull-invoke", [child, parent]);
    const side = new Worker({ client, functions: [child, parent], claimWaitMs: 1_000, callOptions: { logger: quiet } });
    side.start();
    try {
      const sent = await client.events.send({ name: "test/pull.parent" });
      const run = await ended(sent.runs[0]![0]!);
      assert.equal(run.state, "succeeded", JSON.stringify(run.error));
      assert.deepEqual(run.output, { doubled: 42, nothing: null, missing: "FunctionNotFound" });
      const children = (await client.runs.list({ function: "pull-child" })).runs;
      assert.equal(children.length, 1);
      assert.deepEqual(children[0]!.parent, { run_id: run.id, step: "child" });
    } finally {
      await side.stop(1_000);
    }
  });

  test("a pull worker records steps within its call's lease, then completes the call", async () => {
    const manual = createFunction({ id: "pull-manual", trigger: { event: "test/pull.manual" }, queue: "pull-manual-q" }, async () => null);
    await client.functions.put(manual);
    const sent = await client.events.send({ name: "test/pull.manual" });
    const runId = sent.runs[0]![0]!;
    const [job] = await client.workers.claim("pull-manual-q", { worker_id: "e2e", max_jobs: 1, wait: 5_000 });
    assert.ok(job, "the call job was claimed");
    assert.equal(job.name, "pull-manual");
    assert.equal((job.payload as { run_id: string }).run_id, runId);
    const run = await client.runs.recordSteps(runId, { job_id: job.id, lease_token: job.lease_token, steps: [{ id: "early", op: "run", data: { n: 1 } }] });
    assert.equal(run.steps, 1);
    await assert.rejects(
      client.runs.recordSteps(runId, { job_id: job.id, lease_token: "00000000-0000-0000-0000-000000000000", steps: [{ id: "x", op: "run", data: 1 }] }),
      (e: unknown) => e instanceof OffloadError && e.status === 409,
    );
    const [done] = await client.workers.completeMany([{ id: job.id, lease_token: job.lease_token, result: { done: true, output: "manual" } }]);
    assert.ok(done);
    const finished = await ended(runId);
    assert.equal(finished.state, "succeeded");
    assert.equal(finished.output, "manual");
    assert.deepEqual((await client.runs.steps(runId)).map((s) => [s.id, s.result]), [["early", { data: { n: 1 } }]]);
  });

  test("a waiting run is cancelled, and retried", async () => {
    const waiting = createFunction({ id: "pull-cancel", trigger: { event: "test/pull.cancel" } }, async ({ step }) =>
      step.waitForEvent("never", { event: "test/pull.never", timeout: "1h" }),
    );
    await client.functions.put(waiting);
    const sent = await client.events.send({ name: "test/pull.cancel" });
    const runId = sent.runs[0]![0]!;
    const side = new Worker({ client, functions: [waiting], claimWaitMs: 1_000, callOptions: { logger: quiet } });
    side.start();
    try {
      await eventually("the run to wait", async () => (await client.runs.get(runId)).state === "waiting", 30_000);
      const cancelled = await client.runs.cancel(runId);
      assert.equal(cancelled.state, "cancelled");
      const retried = await client.runs.retry(runId);
      assert.ok(["queued", "running", "waiting"].includes(retried.state), retried.state);
    } finally {
      await side.stop(1_000);
      await client.functions.delete("pull-cancel");
    }
  });
});

describe("flow controls of a function", () => {
  test("concurrency and throttle become the queue's limits; a rate limit skips events and says so", async () => {
    const fn = createFunction(
      {
        id: "ts-flow",
        trigger: { event: "test/flow.changed" },
        concurrency: [{ limit: 4 }, { limit: 1, key: "data.account" }],
        rateLimit: { limit: 1, period: "1h", key: "data.account" },
      },
      async () => {},
    );
    await client.functions.sync("ts-flow", [fn]);
    const queue = await client.queues.get("ts-flow");
    assert.equal(queue.limits?.concurrency, 4);
    assert.equal(queue.limits?.group_concurrency, 1);
    const first = await client.events.send({ name: "test/flow.changed", data: { account: "a" } });
    assert.equal(first.runs[0]!.length, 1);
    const second = await client.events.send({ name: "test/flow.changed", data: { account: "a" } });
    assert.equal(second.runs[0]!.length, 0, "beyond the rate limit no run starts");
    const event = await client.events.get(second.ids[0]!);
    assert.deepEqual(event.skipped, [{ function_id: "ts-flow", reason: "rate_limit" }]);
    const other = await client.events.send({ name: "test/flow.changed", data: { account: "b" } });
    assert.equal(other.runs[0]!.length, 1, "another key has its own limit");
    await assert.rejects(
      client.functions.put({ id: "ts-flow-bad", triggers: [{ event: "x" }], concurrency: [{ limit: 0 }] }),
      (e: unknown) => e instanceof OffloadError && e.status === 422 && e.field === "concurrency[0].limit",
    );
  });
});
