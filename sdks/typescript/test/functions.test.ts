/**
 * The durable-function protocol without a server: a call request goes in, the call response comes out, as
 * `docs/functions-protocol.md` says. Plus the definition's registered form, durations, and the push adapter
 * answering calls.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  createFunction,
  durationToMs,
  executeCall,
  isCallRequest,
  NonRetriableError,
  Offload,
  serve,
  StepError,
  Worker,
  type CallRequest,
  type CallResponse,
  type FunctionContext,
  type StepResult,
} from "../src/index.js";
import { callFunction, generateSecret, runFunction, signedRequest } from "../src/testing.js";

const NOW = Date.parse("2026-12-03T10:00:00Z");
const EVENT = { name: "app/order.paid", data: { order_id: 42, user_id: "u1" }, id: "o-42", ts: "2026-12-03T09:59:00Z" };

function request(steps: Record<string, StepResult> = {}, extra: Partial<CallRequest> = {}): CallRequest {
  return { run_id: "0193aaaa-0000-7000-8000-000000000001", function_id: "f", attempt: 1, event: EVENT, events: [EVENT], steps, ...extra };
}

/** A function whose steps count how often each one's code ran. */
function counted(body: (ctx: FunctionContext, ran: (id: string) => void) => Promise<unknown>) {
  const runs = new Map<string, number>();
  const fn = createFunction({ id: "f", trigger: { event: "app/order.paid" } }, (ctx) =>
    body(ctx, (id) => runs.set(id, (runs.get(id) ?? 0) + 1)),
  );
  return { fn, runs };
}

const quiet = { logger: { debug() {}, info() {}, warn() {}, error() {} }, now: () => NOW };

function call(fn: Parameters<typeof executeCall>[0], req: CallRequest, options: Parameters<typeof executeCall>[2] = {}): Promise<CallResponse> {
  return executeCall(fn, req, { ...quiet, ...options });
}

const threeSteps = counted(async ({ step }, ran) => {
  const a = await step.run("a", () => {
    ran("a");
    return { n: 1 };
  });
  const b = await step.run("b", () => {
    ran("b");
    return a.n + 1;
  });
  const c = await step.run("c", () => {
    ran("c");
    return b + 1;
  });
  return { total: c };
});

describe("replay of sequential steps", () => {
  test("the first call runs the first step and answers it", async () => {
    threeSteps.runs.clear();
    assert.deepEqual(await call(threeSteps.fn, request()), { steps: [{ id: "a", op: "run", data: { n: 1 } }] });
    assert.deepEqual([...threeSteps.runs], [["a", 1]]);
  });

  test("recorded steps return their data without running; the next one runs", async () => {
    threeSteps.runs.clear();
    const answer = await call(threeSteps.fn, request({ a: { data: { n: 5 } } }));
    assert.deepEqual(answer, { steps: [{ id: "b", op: "run", data: 6 }] });
    assert.deepEqual([...threeSteps.runs], [["b", 1]]);
  });

  test("with every step recorded the run is done with the returned output", async () => {
    threeSteps.runs.clear();
    const answer = await call(threeSteps.fn, request({ a: { data: { n: 1 } }, b: { data: 2 }, c: { data: 3 } }));
    assert.deepEqual(answer, { done: true, output: { total: 3 } });
    assert.equal(threeSteps.runs.size, 0);
  });

  test("maxRunSteps runs several steps in one call, then answers them (not done) so they are recorded", async () => {
    threeSteps.runs.clear();
    const answer = await call(threeSteps.fn, request(), { maxRunSteps: 5 });
    assert.deepEqual(answer, {
      steps: [
        { id: "a", op: "run", data: { n: 1 } },
        { id: "b", op: "run", data: 2 },
        { id: "c", op: "run", data: 3 },
      ],
    });
  });

  test("maxRunSteps stops at the limit without running the next step", async () => {
    threeSteps.runs.clear();
    const answer = await call(threeSteps.fn, request(), { maxRunSteps: 2 });
    assert.deepEqual(answer, { steps: [{ id: "a", op: "run", data: { n: 1 } }, { id: "b", op: "run", data: 2 }] });
    assert.equal(threeSteps.runs.get("c"), undefined);
  });

  test("a step returning nothing is recorded as null, in this call and on replay", async () => {
    const seen: unknown[] = [];
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      seen.push(await step.run("noop", () => {}));
      return "ok";
    });
    const first = await call(fn, request());
    assert.deepEqual(first, { steps: [{ id: "noop", op: "run", data: null }] });
    assert.deepEqual(await call(fn, request({ noop: { data: null } })), { done: true, output: "ok" });
    assert.deepEqual(seen, [null, null]);
  });

  test("results are recorded as JSON: a Date becomes its text", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.run("when", () => new Date(NOW));
      await step.run("next", () => 1);
    });
    assert.deepEqual(await call(fn, request()), { steps: [{ id: "when", op: "run", data: "2026-12-03T10:00:00.000Z" }] });
  });

  test("a function returning nothing is done with output null", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async () => {});
    assert.deepEqual(await call(fn, request()), { done: true, output: null });
  });

  test("the context carries the event, events, run id, attempt and function id", async () => {
    let seen: FunctionContext | undefined;
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, (ctx) => {
      seen = ctx;
      return ctx.event.data;
    });
    const answer = await call(fn, request({}, { attempt: 3 }));
    assert.deepEqual(answer, { done: true, output: EVENT.data });
    assert.equal(seen!.runId, "0193aaaa-0000-7000-8000-000000000001");
    assert.equal(seen!.attempt, 3);
    assert.equal(seen!.functionId, "f");
    assert.deepEqual(seen!.events, [EVENT]);
  });
});

describe("repeated step ids", () => {
  const loop = counted(async ({ step }, ran) => {
    const out: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      out.push(
        await step.run("send", () => {
          ran(`send#${i}`);
          return i;
        }),
      );
    }
    return out;
  });

  test("are numbered send, send:1, send:2", async () => {
    assert.deepEqual(await call(loop.fn, request()), { steps: [{ id: "send", op: "run", data: 0 }] });
    assert.deepEqual(await call(loop.fn, request({ send: { data: 0 } })), { steps: [{ id: "send:1", op: "run", data: 1 }] });
    assert.deepEqual(await call(loop.fn, request({ send: { data: 0 }, "send:1": { data: 1 } })), {
      steps: [{ id: "send:2", op: "run", data: 2 }],
    });
    assert.deepEqual(await call(loop.fn, request({ send: { data: 0 }, "send:1": { data: 1 }, "send:2": { data: 2 } })), {
      done: true,
      output: [0, 1, 2],
    });
  });

  test("a numbered id the user took already is skipped", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.run("send:1", () => "mine");
      await step.run("send", () => 0);
      await step.run("send", () => 1);
    });
    const answer = await call(fn, request({ "send:1": { data: "mine" }, send: { data: 0 } }));
    assert.deepEqual(answer, { steps: [{ id: "send:2", op: "run", data: 1 }] });
  });

  test("an invalid step id fails the call", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.run("", () => 1));
    await assert.rejects(call(fn, request()), /step id/);
    const long = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.run("x".repeat(257), () => 1));
    await assert.rejects(call(long, request()), /256 bytes/);
    const control = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.run("a\nb", () => 1));
    await assert.rejects(call(control, request()), /control/);
  });
});

describe("parallel steps", () => {
  const pair = counted(async ({ step }, ran) => {
    const [a, b] = await Promise.all([
      step.run("a", () => {
        ran("a");
        return "A";
      }),
      step.run("b", () => {
        ran("b");
        return "B";
      }),
    ]);
    const c = await step.run("c", () => {
      ran("c");
      return a + b;
    });
    return c;
  });

  test("Promise.all over unrecorded steps plans them, running none", async () => {
    pair.runs.clear();
    assert.deepEqual(await call(pair.fn, request()), { steps: [{ id: "a", op: "plan_run" }, { id: "b", op: "plan_run" }] });
    assert.equal(pair.runs.size, 0);
  });

  test("a call with run_step runs only that step", async () => {
    pair.runs.clear();
    assert.deepEqual(await call(pair.fn, request({}, { run_step: "b" })), { steps: [{ id: "b", op: "run", data: "B" }] });
    assert.deepEqual([...pair.runs], [["b", 1]]);
  });

  test("a run_step call whose other parallel step is recorded runs only its own", async () => {
    pair.runs.clear();
    assert.deepEqual(await call(pair.fn, request({ b: { data: "B" } }, { run_step: "a" })), { steps: [{ id: "a", op: "run", data: "A" }] });
    assert.deepEqual([...pair.runs], [["a", 1]]);
  });

  test("once both are recorded the code continues past Promise.all", async () => {
    pair.runs.clear();
    assert.deepEqual(await call(pair.fn, request({ a: { data: "A" }, b: { data: "B" } })), { steps: [{ id: "c", op: "run", data: "AB" }] });
  });

  test("with one recorded, the other runs alone in an ordinary call", async () => {
    pair.runs.clear();
    assert.deepEqual(await call(pair.fn, request({ a: { data: "A" } })), { steps: [{ id: "b", op: "run", data: "B" }] });
  });

  test("a failing parallel step reports its error in its own call", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      Promise.all([step.run("ok", () => 1), step.run("bad", () => Promise.reject(new RangeError("nope")))]),
    );
    assert.deepEqual(await call(fn, request({}, { run_step: "bad" })), {
      steps: [{ id: "bad", op: "run", error: { name: "RangeError", message: "nope", retryable: true } }],
    });
  });

  test("async branches mapped over a list are planned together, after their recorded steps replay", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      Promise.all(
        [1, 2, 3].map(async (i) => {
          const got = await step.run(`fetch-${i}`, () => i);
          return step.run(`resize-${i}`, () => got * 10);
        }),
      ),
    );
    assert.deepEqual(await call(fn, request()), {
      steps: [
        { id: "fetch-1", op: "plan_run" },
        { id: "fetch-2", op: "plan_run" },
        { id: "fetch-3", op: "plan_run" },
      ],
    });
    const fetched = { "fetch-1": { data: 1 }, "fetch-2": { data: 2 }, "fetch-3": { data: 3 } };
    assert.deepEqual(await call(fn, request(fetched)), {
      steps: [
        { id: "resize-1", op: "plan_run" },
        { id: "resize-2", op: "plan_run" },
        { id: "resize-3", op: "plan_run" },
      ],
    });
    const all = { ...fetched, "resize-1": { data: 10 }, "resize-2": { data: 20 }, "resize-3": { data: 30 } };
    assert.deepEqual(await call(fn, request(all)), { done: true, output: [10, 20, 30] });
  });

  test("a parallel call runs its step even when a sibling's recorded error rejects Promise.all", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      Promise.all([step.run("a", () => 1), step.run("b", () => 2)]),
    );
    const answer = await call(fn, request({ a: { error: { name: "E", message: "m" } } }, { run_step: "b" }));
    assert.deepEqual(answer, { steps: [{ id: "b", op: "run", data: 2 }] });
    await assert.rejects(call(fn, request({ a: { error: { name: "E", message: "m" } }, b: { data: 2 } })), NonRetriableError);
  });

  test("a run_step call that never meets its step fails (the code is not deterministic)", async () => {
    await assert.rejects(call(pair.fn, request({}, { run_step: "zz" })), /parallel step `zz`/);
    const done = createFunction({ id: "f", trigger: { event: "x" } }, async () => 1);
    await assert.rejects(call(done, request({}, { run_step: "a" })), /returned without asking for it/);
  });

  test("a run and a sleep asked together: the run executes, then the sleep is planned", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await Promise.all([step.run("a", () => 1), step.sleep("nap", "1h")]);
    });
    assert.deepEqual(await call(fn, request()), {
      steps: [
        { id: "a", op: "run", data: 1 },
        { id: "nap", op: "sleep", until: "2026-12-03T11:00:00.000Z" },
      ],
    });
  });
});

describe("step errors", () => {
  test("a throwing step reports its error as retryable", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      step.run("charge", () => {
        throw new TypeError("card missing");
      }),
    );
    assert.deepEqual(await call(fn, request()), {
      steps: [{ id: "charge", op: "run", error: { name: "TypeError", message: "card missing", retryable: true } }],
    });
  });

  test("NonRetriableError in a step is reported with retryable: false", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      step.run("charge", () => {
        throw new NonRetriableError("card declined");
      }),
    );
    assert.deepEqual(await call(fn, request()), {
      steps: [{ id: "charge", op: "run", error: { name: "NonRetriableError", message: "card declined", retryable: false } }],
    });
  });

  test("nothing follows a failed step, even one run earlier in the same call", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.run("a", () => 1);
      await step.run("b", () => {
        throw new Error("boom");
      });
      await step.run("c", () => 3);
    });
    assert.deepEqual(await call(fn, request(), { maxRunSteps: 10 }), {
      steps: [
        { id: "a", op: "run", data: 1 },
        { id: "b", op: "run", error: { name: "Error", message: "boom", retryable: true } },
      ],
    });
  });

  test("a recorded error is thrown into the code as a StepError with its name, and can be caught", async () => {
    let caught: unknown;
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      try {
        await step.run("charge", () => 1);
      } catch (e) {
        caught = e;
        return step.run("refund", () => "refunded");
      }
    });
    const answer = await call(fn, request({ charge: { error: { name: "CardDeclined", message: "insufficient funds" } } }));
    assert.deepEqual(answer, { steps: [{ id: "refund", op: "run", data: "refunded" }] });
    assert.ok(caught instanceof StepError);
    assert.equal(caught.name, "CardDeclined");
    assert.equal(caught.message, "insufficient funds");
    assert.equal(caught.stepId, "charge");
  });

  test("a recorded error left uncaught fails the call for good", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.run("charge", () => 1));
    const failed = call(fn, request({ charge: { error: { name: "CardDeclined", message: "no" } } }));
    await assert.rejects(failed, (e: unknown) => e instanceof NonRetriableError && /charge.*CardDeclined: no/.test(e.message));
  });

  test("an error outside any step fails the call with that error", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async () => {
      throw new Error("config missing");
    });
    await assert.rejects(call(fn, request()), /config missing/);
    const sync = createFunction({ id: "f", trigger: { event: "x" } }, () => {
      throw new Error("sync throw");
    });
    await assert.rejects(call(sync, request()), /sync throw/);
  });

  test("an error outside steps after a step ran in this call answers that step, so its work is kept", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.run("a", () => 1);
      throw new Error("after a");
    });
    assert.deepEqual(await call(fn, request()), { steps: [{ id: "a", op: "run", data: 1 }] });
    await assert.rejects(call(fn, request({ a: { data: 1 } })), /after a/);
  });

  test("a step asked for inside step.run fails that step: steps cannot be nested", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      step.run("outer", () => step.run("inner", () => 1)),
    );
    const answer = await call(fn, request());
    assert.ok("steps" in answer);
    const op = answer.steps[0]!;
    assert.equal(op.id, "outer");
    assert.ok(op.op === "run" && op.error && /cannot be nested/.test(op.error.message));
  });
});

describe("sleep, wait, send, invoke", () => {
  test("sleep plans a sleep until now + the duration", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.sleep("nap", "2d");
      return "awake";
    });
    assert.deepEqual(await call(fn, request()), { steps: [{ id: "nap", op: "sleep", until: "2026-12-05T10:00:00.000Z" }] });
    assert.deepEqual(await call(fn, request({ nap: { data: null } })), { done: true, output: "awake" });
  });

  test("sleepUntil takes a Date, text or epoch milliseconds", async () => {
    for (const until of [new Date("2027-01-01T00:00:00Z"), "2027-01-01T00:00:00Z", Date.parse("2027-01-01T00:00:00Z")]) {
      const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.sleepUntil("ny", until));
      assert.deepEqual(await call(fn, request()), { steps: [{ id: "ny", op: "sleep", until: "2027-01-01T00:00:00.000Z" }] });
    }
    const bad = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.sleepUntil("ny", "not a time"));
    await assert.rejects(call(bad, request()), /not a time/);
  });

  test("a step ran before a sleep in the same call is answered with it", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.run("a", () => 1);
      await step.sleep("nap", 60_000);
    });
    assert.deepEqual(await call(fn, request()), {
      steps: [
        { id: "a", op: "run", data: 1 },
        { id: "nap", op: "sleep", until: "2026-12-03T10:01:00.000Z" },
      ],
    });
  });

  const waiting = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
    const upgrade = await step.waitForEvent("upgrade", { event: "app/user.upgraded", match: "data.user_id", timeout: "3d" });
    return upgrade ? upgrade.data : "timed out";
  });

  test("waitForEvent plans a wait with the match and the timeout in milliseconds", async () => {
    assert.deepEqual(await call(waiting, request()), {
      steps: [{ id: "upgrade", op: "wait_for_event", event: "app/user.upgraded", match: "data.user_id", timeout: 259_200_000 }],
    });
  });

  test("a resolved wait returns the event; a timed-out one returns null", async () => {
    const event = { name: "app/user.upgraded", data: { user_id: "u1", plan: "pro" } };
    assert.deepEqual(await call(waiting, request({ upgrade: { data: event } })), { done: true, output: { user_id: "u1", plan: "pro" } });
    assert.deepEqual(await call(waiting, request({ upgrade: { data: null } })), { done: true, output: "timed out" });
  });

  test("waitForEvent without match waits for any event of the name", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.waitForEvent("any", { event: "app/go", timeout: 1000 }));
    assert.deepEqual(await call(fn, request()), { steps: [{ id: "any", op: "wait_for_event", event: "app/go", timeout: 1000 }] });
  });

  test("an invalid event name or timeout fails the call", async () => {
    const badName = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.waitForEvent("w", { event: "/bad", timeout: "1h" }));
    await assert.rejects(call(badName, request()), /not an event name/);
    const badTimeout = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.waitForEvent("w", { event: "ok", timeout: "soon" }));
    await assert.rejects(call(badTimeout, request()), /not a duration/);
  });

  test("sendEvent plans the events in the server's shape and returns their ids once recorded", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      step.sendEvent("notify", [
        { name: "app/receipt.sent", data: { order_id: 42 }, id: "r-42" },
        { name: "app/audit", ts: new Date(NOW) },
      ]),
    );
    assert.deepEqual(await call(fn, request()), {
      steps: [
        {
          id: "notify",
          op: "send_event",
          events: [
            { name: "app/receipt.sent", data: { order_id: 42 }, id: "r-42" },
            { name: "app/audit", ts: "2026-12-03T10:00:00.000Z" },
          ],
        },
      ],
    });
    assert.deepEqual(await call(fn, request({ notify: { data: { ids: ["e1", "e2"] } } })), { done: true, output: { ids: ["e1", "e2"] } });
    const one = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.sendEvent("one", { name: "app/one" }));
    assert.deepEqual(await call(one, request()), { steps: [{ id: "one", op: "send_event", events: [{ name: "app/one" }] }] });
    const none = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.sendEvent("none", []));
    await assert.rejects(call(none, request()), /1 to 1000 events/);
  });

  const child = createFunction({ id: "child", trigger: { event: "app/child" } }, async ({ event }) => event.data);

  test("invoke plans the child function by object or id, with data and timeout", async () => {
    const byObject = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) =>
      step.invoke("kid", { function: child, data: { n: 1 }, timeout: "1h" }),
    );
    assert.deepEqual(await call(byObject, request()), {
      steps: [{ id: "kid", op: "invoke", function_id: "child", data: { n: 1 }, timeout: 3_600_000 }],
    });
    const byId = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.invoke("kid", { function: "child" }));
    assert.deepEqual(await call(byId, request()), { steps: [{ id: "kid", op: "invoke", function_id: "child" }] });
  });

  test("an invoke resolves to the child's output, or throws its error", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      try {
        return await step.invoke<{ n: number }>("kid", { function: child });
      } catch (e) {
        return (e as Error).name;
      }
    });
    assert.deepEqual(await call(fn, request({ kid: { data: { n: 2 } } })), { done: true, output: { n: 2 } });
    assert.deepEqual(await call(fn, request({ kid: { error: { name: "InvokeTimeout", message: "late" } } })), {
      done: true,
      output: "InvokeTimeout",
    });
  });
});

describe("calls with omitted steps, the logger, the testing helper", () => {
  test("steps_omitted fetches the recorded steps", async () => {
    let asked: string | undefined;
    const answer = await call(threeSteps.fn, request({}, { steps_omitted: true }), {
      fetchSteps: async (runId) => {
        asked = runId;
        return { a: { data: { n: 1 } }, b: { data: 2 } };
      },
    });
    assert.equal(asked, "0193aaaa-0000-7000-8000-000000000001");
    assert.deepEqual(answer, { steps: [{ id: "c", op: "run", data: 3 }] });
    await assert.rejects(executeCall(threeSteps.fn, request({}, { steps_omitted: true })), /omitted its steps/);
  });

  test("the logger writes each line once: not while recorded steps replay", async () => {
    const lines: string[] = [];
    const logger = { debug() {}, warn() {}, error() {}, info: (...args: unknown[]) => lines.push(args.slice(1).join(" ")) };
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step, logger }) => {
      logger.info("start");
      await step.run("a", () => 1);
      logger.info("after a");
      await step.run("b", () => 2);
      logger.info("after b");
    });
    await call(fn, request(), { logger });
    assert.deepEqual(lines, ["start"]);
    lines.length = 0;
    await call(fn, request({ a: { data: 1 } }), { logger });
    assert.deepEqual(lines, ["after a"]);
    lines.length = 0;
    await call(fn, request({ a: { data: 1 }, b: { data: 2 } }), { logger });
    assert.deepEqual(lines, ["after b"]);
  });

  test("lines logged between steps run in one call are written once the next step is answered too", async () => {
    const lines: string[] = [];
    const logger = { debug() {}, warn() {}, error() {}, info: (...args: unknown[]) => lines.push(args.slice(1).join(" ")) };
    const fn = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step, logger }) => {
      await step.run("a", () => 1);
      logger.info("after a");
      await step.run("b", () => 2);
      logger.info("after b");
      await step.sleep("nap", "1m");
      logger.info("after nap");
    });
    await call(fn, request(), { logger, maxRunSteps: 2 });
    assert.deepEqual(lines, ["after a", "after b"]);
    lines.length = 0;
    await call(fn, request({ a: { data: 1 }, b: { data: 2 }, nap: { data: null } }), { logger });
    assert.deepEqual(lines, ["after nap"]);
  });

  test("callFunction runs one call in memory with given steps", async () => {
    assert.deepEqual(await callFunction(threeSteps.fn, { steps: { a: { data: { n: 1 } } } }), { steps: [{ id: "b", op: "run", data: 2 }] });
    assert.deepEqual(await callFunction(threeSteps.fn, { runStep: "b", steps: { a: { data: { n: 1 } } } }), {
      steps: [{ id: "b", op: "run", data: 2 }],
    });
  });

  test("isCallRequest tells a call from an ordinary payload", () => {
    assert.ok(isCallRequest(request()));
    assert.ok(!isCallRequest({ user: 42 }));
    assert.ok(!isCallRequest(null));
    assert.ok(!isCallRequest({ run_id: "r", function_id: "f", attempt: 1, event: {} }));
  });
});

describe("definitions", () => {
  test("the registered form names triggers, retries, timeout in ms, cancel_on and the target", () => {
    const fn = createFunction(
      {
        id: "send-receipt",
        name: "Send receipt",
        trigger: [{ event: "app/order.paid", if: { "data.amount": { gte: 100 } } }, { cron: "0 9 * * *", timezone: "Europe/Paris" }],
        retries: 2,
        timeout: "2m",
        cancelOn: { event: "app/order.refunded", match: "data.order_id" },
        target: "https://app.example/api/offload",
      },
      async () => {},
    );
    assert.deepEqual(fn.spec(), {
      id: "send-receipt",
      name: "Send receipt",
      triggers: [
        { event: "app/order.paid", if: { "data.amount": { gte: 100 } } },
        { cron: "0 9 * * *", timezone: "Europe/Paris" },
      ],
      target: { url: "https://app.example/api/offload" },
      retries: 2,
      timeout: 120_000,
      cancel_on: [{ event: "app/order.refunded", match: "data.order_id" }],
    });
    assert.equal(fn.queue, "send-receipt");
    assert.ok(fn.pushed);
  });

  test("flow controls are registered under the API's names; a number is one concurrency limit", () => {
    const fn = createFunction(
      {
        id: "sync",
        trigger: { event: "app/account.changed" },
        concurrency: [{ limit: 10 }, { limit: 1, key: "data.account_id" }],
        throttle: { limit: 5, period: "1s", key: "data.account_id" },
        rateLimit: { limit: 100, period: "1h" },
        singleton: { key: "data.account_id", mode: "cancel" },
      },
      async () => {},
    );
    assert.deepEqual(fn.spec(), {
      id: "sync",
      triggers: [{ event: "app/account.changed" }],
      concurrency: [{ limit: 10 }, { limit: 1, key: "data.account_id" }],
      throttle: { limit: 5, period: "1s", key: "data.account_id" },
      rate_limit: { limit: 100, period: "1h" },
      singleton: { key: "data.account_id", mode: "cancel" },
    });
    const one = createFunction({ id: "one", trigger: { event: "x" }, concurrency: 3 }, async () => {});
    assert.deepEqual(one.spec().concurrency, [{ limit: 3 }]);
  });

  test("a pull function has a queue; a default target applies only without target and queue", () => {
    const pull = createFunction({ id: "p", trigger: { event: "x" }, queue: "fn-work" }, async () => {});
    assert.deepEqual(pull.spec({ target: "https://a.example" }), { id: "p", triggers: [{ event: "x" }], queue: "fn-work" });
    assert.equal(pull.queue, "fn-work");
    const plain = createFunction({ id: "q", trigger: { event: "x" } }, async () => {});
    assert.deepEqual(plain.spec({ target: "https://a.example/f" }), { id: "q", triggers: [{ event: "x" }], target: { url: "https://a.example/f" } });
    assert.deepEqual(plain.spec(), { id: "q", triggers: [{ event: "x" }] });
    assert.ok(!plain.pushed);
  });

  test("an invalid definition is refused where it is written", () => {
    const make = (config: Record<string, unknown>) => () => createFunction(config as never, async () => {});
    assert.throws(make({ id: "bad id", trigger: { event: "x" } }), /function id/);
    assert.throws(make({ id: "f" }), /give a trigger/);
    assert.throws(make({ id: "f", trigger: [] }), /give a trigger/);
    assert.throws(make({ id: "f", trigger: { event: "x", cron: "* * * * *" } }), /exactly one/);
    assert.throws(make({ id: "f", trigger: { event: "/x" } }), /not an event name/);
    assert.throws(make({ id: "f", trigger: { event: "x", timezone: "UTC" } }), /cron only/);
    assert.throws(make({ id: "f", trigger: [{ cron: "* * * * *" }, { cron: "0 * * * *" }] }), /one cron/);
    assert.throws(make({ id: "f", trigger: { event: "x" }, retries: 101 }), /retries/);
    assert.throws(make({ id: "f", trigger: { event: "x" }, retries: 1.5 }), /retries/);
    assert.throws(make({ id: "f", trigger: { event: "x" }, timeout: "later" }), /not a duration/);
    assert.throws(make({ id: "f", trigger: { event: "x" }, target: "https://a", queue: "q" }), /not both/);
    assert.throws(make({ id: "f", trigger: { event: "x" }, cancelOn: [{ event: "" }] }), /cancelOn\[0\]/);
  });

  test("offload.createFunction is the same definition", () => {
    const fn = new Offload({ baseUrl: "http://127.0.0.1:1" }).createFunction({ id: "f", trigger: { event: "x" } }, async () => 1);
    assert.deepEqual(fn.spec(), { id: "f", triggers: [{ event: "x" }] });
  });
});

describe("durations", () => {
  test("text and milliseconds", () => {
    const cases: [string | number, number][] = [
      [1500, 1500],
      ["250ms", 250],
      ["30s", 30_000],
      ["5m", 300_000],
      ["1h30m", 5_400_000],
      ["2d", 172_800_000],
      ["1w", 604_800_000],
      ["1 hour", 3_600_000],
      ["2 days 3 hours", 183_600_000],
      ["PT5M", 300_000],
      ["P1DT1H", 90_000_000],
      ["1.5s", 1500],
      ["600", 600],
    ];
    for (const [input, ms] of cases) assert.equal(durationToMs(input), ms, String(input));
  });
  test("anything else is refused", () => {
    for (const bad of ["", "soon", "5 parsecs", "1h 2x", "P", -1, Number.NaN]) assert.throws(() => durationToMs(bad), TypeError, String(bad));
  });
});

describe("serve({ functions }) answers calls over push", () => {
  const secret = generateSecret();
  const route = serve({ functions: [threeSteps.fn], secret, logger: quiet.logger });

  test("a signed call is run and its call response returned with 200", async () => {
    const response = await route(await signedRequest("http://app/api/offload", request({ a: { data: { n: 1 } } }), { secret, name: "f" }));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.deepEqual(await response.json(), { steps: [{ id: "b", op: "run", data: 2 }] });
  });

  test("an unsigned call is refused with 401 and runs nothing", async () => {
    threeSteps.runs.clear();
    const body = JSON.stringify(request());
    const response = await route(new Request("http://app/api/offload", { method: "POST", body, headers: { "content-type": "application/json" } }));
    assert.equal(response.status, 401);
    assert.equal(threeSteps.runs.size, 0);
  });

  test("a call for a function not served here is refused for good (422)", async () => {
    const response = await route(await signedRequest("http://app/api/offload", request({}, { function_id: "other" }), { secret }));
    assert.equal(response.status, 422);
    assert.match(await response.text(), /no function `other`/);
  });

  test("an error outside steps answers 500 (the call is retried); a recorded error left uncaught 422", async () => {
    const failing = createFunction({ id: "f", trigger: { event: "x" } }, async () => {
      throw new Error("down");
    });
    const r1 = await serve({ functions: [failing], secret })(await signedRequest("http://app/x", request(), { secret }));
    assert.equal(r1.status, 500);
    const uncaught = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => step.run("a", () => 1));
    const r2 = await serve({ functions: [uncaught], secret })(
      await signedRequest("http://app/x", request({ a: { error: { name: "E", message: "m" } } }), { secret }),
    );
    assert.equal(r2.status, 422);
  });

  test("ordinary jobs go to the handler beside the functions, or are refused without one", async () => {
    const both = serve({ functions: [threeSteps.fn], handler: ({ payload }) => ({ echoed: payload }), secret });
    const ok = await both(await signedRequest("http://app/x", { user: 1 }, { secret }));
    assert.deepEqual(await ok.json(), { echoed: { user: 1 } });
    const refused = await route(await signedRequest("http://app/x", { user: 1 }, { secret }));
    assert.equal(refused.status, 422);
  });

  test("a step result too large for a push answer is recorded as a non-retryable StepOutputTooLarge", async () => {
    const big = createFunction({ id: "f", trigger: { event: "x" } }, async ({ step }) => {
      await step.run("small", () => "ok");
      await step.run("huge", () => "x".repeat(70 * 1024));
    });
    const pushed = serve({ functions: [big], secret, logger: quiet.logger, maxRunSteps: 2 });
    const response = await pushed(await signedRequest("http://app/x", request(), { secret }));
    assert.equal(response.status, 200);
    const body = (await response.json()) as { steps: { id: string; data?: unknown; error?: { name: string; retryable: boolean } }[] };
    assert.deepEqual(body.steps[0], { id: "small", op: "run", data: "ok" });
    assert.equal(body.steps[1]!.error!.name, "StepOutputTooLarge");
    assert.equal(body.steps[1]!.error!.retryable, false);
    const output = createFunction({ id: "f", trigger: { event: "x" } }, async () => "y".repeat(70 * 1024));
    const refused = await serve({ functions: [output], secret })(await signedRequest("http://app/x", request(), { secret }));
    assert.equal(refused.status, 422);
  });

  test("two functions with one id are refused", () => {
    assert.throws(() => serve({ functions: [threeSteps.fn, threeSteps.fn], secret }), /two functions/);
  });
});

describe("Worker({ functions })", () => {
  const client = new Offload({ baseUrl: "http://127.0.0.1:1" });
  const pull = createFunction({ id: "pull-fn", trigger: { event: "x" } }, async () => 1);

  test("needs no queues or handlers beside the functions", () => {
    assert.ok(new Worker({ client, functions: [pull] }));
    assert.ok(new Worker({ client, functions: [pull], queues: { emails: 2 }, handlers: { welcome: () => 1 } }));
  });

  test("refuses a pushed function, a handler named like a function, and two functions with one id", () => {
    const pushed = createFunction({ id: "pushed", trigger: { event: "x" }, target: "https://app.example/api/offload" }, async () => 1);
    assert.throws(() => new Worker({ client, functions: [pushed] }), /push target/);
    assert.throws(() => new Worker({ client, functions: [pull], handlers: { "pull-fn": () => 1 } }), /both named/);
    assert.throws(() => new Worker({ client, functions: [pull, pull] }), /two functions/);
  });
});

describe("runFunction: a whole run in memory", () => {
  test("runs every call to the output, each step once", async () => {
    threeSteps.runs.clear();
    const run = await runFunction(threeSteps.fn, { ...quiet, event: EVENT });
    assert.deepEqual(run.output, { total: 3 });
    assert.deepEqual(run.steps, { a: { data: { n: 1 } }, b: { data: 2 }, c: { data: 3 } });
    assert.equal(run.calls, 4);
    assert.deepEqual([...threeSteps.runs], [["a", 1], ["b", 1], ["c", 1]]);
  });

  test("retries a failing step on its own count with the call's attempt, then records the error", async () => {
    const attempts: number[] = [];
    const fn = createFunction({ id: "f", trigger: { event: "x" }, retries: 2 }, async ({ step, attempt }) => {
      try {
        await step.run("flaky", () => {
          attempts.push(attempt);
          throw new Error("down");
        });
      } catch (e) {
        return `gave up: ${(e as Error).message}`;
      }
    });
    const run = await runFunction(fn, quiet);
    assert.equal(run.output, "gave up: down");
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.deepEqual(run.failures, { flaky: 2 });
  });

  test("plans parallel steps and runs one call each; answers waits, invokes and sends", async () => {
    const fn = createFunction<{ ids: number[] }>({ id: "f", trigger: { event: "x" } }, async ({ event, step }) => {
      const squares = await Promise.all(event.data.ids.map((i) => step.run(`sq-${i}`, () => i * i)));
      await step.sleep("nap", "1d");
      const ok = await step.waitForEvent("ok", { event: "app/ok", timeout: "1h" });
      const child = await step.invoke<number>("child", { function: "other", data: { n: 2 } });
      await step.sendEvent("tell", { name: "app/told", data: { child } });
      return { squares, ok: ok?.data, child };
    });
    const run = await runFunction(fn, {
      ...quiet,
      event: { name: "x", data: { ids: [2, 3] } },
      onWait: () => ({ name: "app/ok", data: { yes: true } }),
      onInvoke: (op) => (op.data as { n: number }).n * 10,
    });
    assert.deepEqual(run.output, { squares: [4, 9], ok: { yes: true }, child: 20 });
    assert.deepEqual(run.sent, [{ name: "app/told", data: { child: 20 } }]);
  });

  test("rejects as the run would fail", async () => {
    const fn = createFunction({ id: "f", trigger: { event: "x" }, retries: 0 }, async ({ step }) => step.run("a", () => Promise.reject(new Error("no"))));
    await assert.rejects(runFunction(fn, quiet), (e: unknown) => e instanceof NonRetriableError && /step `a` failed: Error: no/.test(e.message));
  });
});
