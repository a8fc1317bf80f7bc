/** The client against the real server: every call, errors mapped from problem documents, and retries. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Offload, OffloadError } from "../src/index.js";
import { startServer, type TestServer } from "../scripts/server.js";
import { freePort, listen, type HttpServer } from "./support/util.js";

interface Welcome {
  user: number;
}

let server: TestServer;
let client: Offload;

before(async () => {
  server = await startServer();
  client = new Offload({ baseUrl: server.url });
});
after(() => server.stop());

describe("jobs", () => {
  test("enqueue with every option and read it back, typed", async () => {
    const job = await client.enqueue<Welcome>({
      queue: "emails",
      name: "welcome",
      payload: { user: 42 },
      priority: 5,
      run_at: new Date(Date.now() + 3_600_000),
      max_attempts: 7,
      backoff: { base: "2s", cap: "1m", jitter: 0.1 },
      timeout: "45s",
      tags: { tenant: "acme" },
    });
    assert.equal(job.replayed, false);
    assert.equal(job.state, "scheduled");
    const read = await client.jobs.get<Welcome>(job.id);
    assert.equal(read.payload.user, 42);
    assert.equal(read.name, "welcome");
    assert.equal(read.priority, 5);
    assert.equal(read.max_attempts, 7);
    assert.equal(read.timeout, 45_000);
    assert.deepEqual(read.tags, { tenant: "acme" });
    assert.deepEqual(read.attempts, []);
    const page = await client.jobs.list<Welcome>({ queue: "emails", tag: { tenant: "acme" } });
    assert.deepEqual(page.items.map((j) => j.id), [job.id]);
  });

  test("an idempotency key returns the first job; another body with it is a conflict", async () => {
    const first = await client.enqueue({ queue: "emails", payload: { n: 1 }, idempotency_key: "k-1" });
    const again = await client.enqueue({ queue: "emails", payload: { n: 1 }, idempotency_key: "k-1" });
    assert.equal(again.id, first.id);
    assert.equal(again.replayed, true);
    await assert.rejects(client.enqueue({ queue: "emails", payload: { n: 2 }, idempotency_key: "k-1" }), (e: unknown) => {
      assert.ok(e instanceof OffloadError);
      assert.equal(e.status, 409);
      assert.equal(e.code, "idempotency_conflict");
      return true;
    });
  });

  test("enqueueMany stores all or nothing", async () => {
    const many = await client.enqueueMany([{ queue: "batch", payload: 1 }, { queue: "batch", payload: 2, delay: "1h" }]);
    assert.deepEqual(many.map((j) => j.state), ["available", "scheduled"]);
    await assert.rejects(client.enqueueMany([{ queue: "batch", payload: 3 }, { queue: "bad queue!" }]), (e: unknown) => {
      assert.ok(e instanceof OffloadError);
      assert.equal(e.code, "invalid_field");
      assert.equal(e.field, "jobs[1].queue");
      return true;
    });
    const all = [];
    for await (const j of client.jobs.iterate({ queue: "batch", limit: 1 })) all.push(j.payload);
    assert.deepEqual(all.sort(), [1, 2]);
  });

  test("cancel, retry and delete", async () => {
    const job = await client.enqueue({ queue: "manage", payload: {} });
    assert.equal((await client.jobs.cancel(job.id)).state, "cancelled");
    assert.equal((await client.jobs.retry(job.id)).state, "available");
    await client.jobs.delete(job.id);
    await assert.rejects(client.jobs.get(job.id), (e: unknown) => e instanceof OffloadError && e.status === 404 && e.code === "not_found");
  });

  test("publish makes a push job in one call", async () => {
    const job = await client.publish("http://127.0.0.1:9/hook", { hello: "world" }, {
      delay: "1h",
      target: { headers: { authorization: "Bearer app" }, timeout: "10s" },
    });
    const read = await client.jobs.get(job.id);
    assert.equal(read.queue, "default");
    assert.equal(read.target?.url, "http://127.0.0.1:9/hook");
    assert.deepEqual(read.target?.headers, { authorization: "Bearer app" });
    assert.deepEqual(read.payload, { hello: "world" });
  });

  test("a refused field is an OffloadError naming it", async () => {
    await assert.rejects(client.enqueue({ queue: "emails", delay: "-5s" }), (e: unknown) => {
      assert.ok(e instanceof OffloadError);
      assert.equal(e.status, 422);
      assert.equal(e.code, "invalid_field");
      assert.equal(e.field, "delay");
      assert.match(e.detail, /delay/);
      return true;
    });
  });
});

describe("queues and schedules", () => {
  test("pause, resume and list queues", async () => {
    await client.enqueue({ queue: "pausable", payload: {} });
    assert.equal((await client.queues.pause("pausable")).paused, true);
    const listed = (await client.queues.list()).find((q) => q.name === "pausable");
    assert.equal(listed?.paused, true);
    assert.equal(listed?.counts.available, 1);
    assert.equal((await client.queues.resume("pausable")).paused, false);
  });

  test("set a queue's limits, read its usage, and see why a job waits", async () => {
    const set = await client.queues.setLimits("tenants", { concurrency: 5, group_concurrency: 1, fair: true });
    assert.equal(set.limits?.concurrency, 5);
    assert.equal(set.limits?.group_concurrency, 1);
    const a = await client.enqueue({ queue: "tenants", group: "acme", payload: { n: 1 } });
    const b = await client.enqueue({ queue: "tenants", group: "acme", payload: { n: 2 } });
    const claimed = await client.workers.claim("tenants", { worker_id: "w1", max_jobs: 10 });
    assert.deepEqual(claimed.map((j) => j.id), [a.id]);
    const held = await client.jobs.get(b.id);
    assert.equal(held.group, "acme");
    assert.equal(held.waiting_for?.reason, "group_concurrency");
    const read = await client.queues.get("tenants");
    assert.equal(read.usage?.running, 1);
    const page = await client.jobs.list({ queue: "tenants", group: "acme" });
    assert.deepEqual(page.items.map((j) => j.id).sort(), [a.id, b.id].sort());
    const cleared = await client.queues.setLimits("tenants", { group_concurrency: null });
    assert.equal(cleared.limits?.group_concurrency ?? null, null);
    assert.equal(cleared.limits?.concurrency, 5);
    await assert.rejects(client.queues.setLimits("tenants", { concurrency: 0 }), (e: unknown) => {
      assert.ok(e instanceof OffloadError);
      assert.equal(e.status, 422);
      assert.equal(e.field, "concurrency");
      return true;
    });
  });

  test("a debounced enqueue returns the waiting job, marked debounced and not replayed", async () => {
    const debounce = { key: "reindex", period: "1h" };
    const first = await client.enqueue({ queue: "search", payload: { n: 1 }, debounce });
    assert.equal(first.debounced, false);
    const second = await client.enqueue({ queue: "search", payload: { n: 2 }, debounce });
    assert.equal(second.id, first.id);
    assert.equal(second.debounced, true);
    assert.equal(second.replayed, false);
    assert.deepEqual((await client.jobs.get(first.id)).payload, { n: 2 });
  });

  test("put, list, get, pause, resume, trigger and delete a schedule", async () => {
    const created = await client.schedules.put("nightly", { cron: "0 3 * * *", timezone: "Europe/Paris", job: { queue: "reports", payload: { kind: "daily" } } });
    assert.equal(created.timezone, "Europe/Paris");
    assert.deepEqual((await client.schedules.list()).schedules.map((s) => s.name), ["nightly"]);
    assert.equal((await client.schedules.pause("nightly")).paused, true);
    assert.equal((await client.schedules.resume("nightly")).paused, false);
    const fired = await client.schedules.trigger("nightly");
    assert.deepEqual((await client.jobs.get(fired.job_id)).payload, { kind: "daily" });
    assert.ok((await client.schedules.get("nightly")).next_fire_times!.length > 0);
    await client.schedules.delete("nightly");
    await assert.rejects(client.schedules.get("nightly"), (e: unknown) => e instanceof OffloadError && e.code === "not_found");
  });
});

describe("retries", () => {
  test("an idempotent call is retried after connection errors until the server is up", async () => {
    const port = await freePort();
    const late = new Offload({ baseUrl: `http://127.0.0.1:${port}`, retry: { attempts: 50, minDelayMs: 50, maxDelayMs: 200 } });
    const listing = late.queues.list();
    const started = await startServer({ listen: `127.0.0.1:${port}` });
    try {
      assert.deepEqual(await listing, []);
    } finally {
      await started.stop();
    }
  });

  test("a non-idempotent call is sent once: a connection error is thrown at once", async () => {
    const port = await freePort();
    const nowhere = new Offload({ baseUrl: `http://127.0.0.1:${port}`, retry: { attempts: 50, minDelayMs: 1_000 } });
    const started = Date.now();
    await assert.rejects(nowhere.enqueue({ queue: "q" }), (e: unknown) => {
      assert.ok(e instanceof OffloadError);
      assert.equal(e.status, 0);
      assert.equal(e.code, "connection_failed");
      return true;
    });
    assert.ok(Date.now() - started < 1_000, "no retry pause was taken");
  });

  describe("behind a proxy answering 503 twice", () => {
    let proxy: HttpServer;
    let hits = 0;
    before(async () => {
      proxy = await listen(async (req, res) => {
        hits++;
        if (hits <= 2) {
          res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "0" });
          res.end(JSON.stringify({ type: "urn:offload:problem:unavailable", title: "Unavailable", status: 503, code: "unavailable", detail: "try later" }));
          return;
        }
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const answer = await fetch(server.url + req.url, { method: req.method, headers: { "content-type": "application/json" }, body: chunks.length ? Buffer.concat(chunks) : null });
        res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" });
        res.end(Buffer.from(await answer.arrayBuffer()));
      });
    });
    after(() => proxy.close());

    test("idempotent calls go through after the 503s; others get the 503 as an OffloadError", async () => {
      const proxied = new Offload({ baseUrl: proxy.url, retry: { minDelayMs: 10 } });
      hits = 0;
      const job = await proxied.enqueue({ queue: "via-proxy", payload: 1, idempotency_key: "proxy-1" });
      assert.equal(hits, 3);
      assert.equal((await client.jobs.get(job.id)).queue, "via-proxy");
      hits = 0;
      await assert.rejects(proxied.enqueue({ queue: "via-proxy", payload: 2 }), (e: unknown) => {
        assert.ok(e instanceof OffloadError);
        assert.equal(e.status, 503);
        assert.equal(e.code, "unavailable");
        return true;
      });
      assert.equal(hits, 1);
    });
  });
});
