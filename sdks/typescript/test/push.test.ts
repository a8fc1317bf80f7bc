/**
 * Push deliveries from the real server to real `node:http` servers, through each adapter: the Web-standard
 * handler (App Router, Hono, Bun, Deno, Workers), the Next.js Pages Router one, and Node `http` / Express
 * (with the stream, and with a raw body parser's Buffer). Each must verify the signature and answer so that
 * the server ends the job as the handler meant.
 */
import assert from "node:assert/strict";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";

import { NonRetriableError, Offload, RetryAfterError, serve, serveNextPages, serveNode, verify, type PushContext } from "../src/index.js";
import { generateSecret, signedRequest } from "../src/testing.js";
import { startServer, TEST_SECRET, type TestServer } from "../scripts/server.js";
import { eventually, fromWeb, listen, type HttpServer } from "./support/util.js";

let server: TestServer;
let client: Offload;

before(async () => {
  server = await startServer();
  client = new Offload({ baseUrl: server.url });
});
after(() => server.stop());

/** What the handler saw, per job id. */
const seen = new Map<string, PushContext<Record<string, unknown>>[]>();

/** One handler for every adapter: the payload says how to end. */
async function handler(delivery: PushContext<{ end: string }>): Promise<unknown> {
  const list = seen.get(delivery.jobId) ?? [];
  list.push(delivery as PushContext<Record<string, unknown>>);
  seen.set(delivery.jobId, list);
  switch (delivery.payload.end) {
    case "fatal":
      throw new NonRetriableError("no such user");
    case "later":
      if (delivery.attempt === 1) throw new RetryAfterError(1_000, "busy");
      return { second: true };
    case "throw":
      if (delivery.attempt === 1) throw new Error("boom");
      return undefined;
    default:
      return { sent: true, attempt: delivery.attempt };
  }
}

const adapters: [string, () => RequestListener][] = [
  ["web standard (App Router, Hono, Bun, Deno, Workers)", () => fromWeb(serve(handler, { secret: TEST_SECRET }))],
  ["Next.js Pages Router", () => serveNextPages(handler, { secret: TEST_SECRET }) as unknown as RequestListener],
  ["Node http / Express", () => serveNode(handler, { secret: TEST_SECRET }) as unknown as RequestListener],
  [
    "Express behind express.raw()",
    () => {
      const inner = serveNode(handler, { secret: TEST_SECRET });
      return (async (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        req.body = Buffer.concat(chunks);
        await inner(req as never, res);
      }) as RequestListener;
    },
  ],
];

async function finished(id: string) {
  return eventually(`job ${id} to finish`, async () => {
    const job = await client.jobs.get(id);
    return ["succeeded", "dead", "cancelled"].includes(job.state) ? job : undefined;
  });
}

for (const [name, make] of adapters) {
  describe(name, () => {
    let endpoint: HttpServer;
    before(async () => {
      endpoint = await listen(make());
    });
    after(() => endpoint.close());

    test("a returned value completes the job, kept as its result", async () => {
      const job = await client.publish(`${endpoint.url}/hook`, { end: "ok" }, { queue: "push", name: "welcome" });
      const done = await finished(job.id);
      assert.equal(done.state, "succeeded");
      assert.deepEqual(done.result, { status: 200, body: { sent: true, attempt: 1 } });
      const [delivery] = seen.get(job.id)!;
      assert.equal(delivery!.queue, "push");
      assert.equal(delivery!.name, "welcome");
      assert.equal(delivery!.maxAttempts, done.max_attempts);
    });

    test("NonRetriableError makes the job dead at once", async () => {
      const job = await client.publish(`${endpoint.url}/hook`, { end: "fatal" }, { max_attempts: 5 });
      const done = await finished(job.id);
      assert.equal(done.state, "dead");
      assert.equal(done.attempt, 1);
      assert.match(done.last_error ?? "", /422.*no such user/);
    });

    test("RetryAfterError retries after its delay; any other throw retries with backoff", async () => {
      const later = await client.publish(`${endpoint.url}/hook`, { end: "later" }, { backoff: { base: "1h", cap: "1h" } });
      const thrown = await client.publish(`${endpoint.url}/hook`, { end: "throw" }, { backoff: { base: "1s", cap: "1s", jitter: 0 } });
      const a = await finished(later.id);
      assert.equal(a.state, "succeeded");
      assert.equal(a.attempts?.[0]?.error, "HTTP 503: busy");
      const b = await finished(thrown.id);
      assert.equal(b.state, "succeeded");
      assert.equal(b.attempts?.[0]?.error, "HTTP 500: boom");
      assert.deepEqual(seen.get(thrown.id)!.map((d) => d.attempt), [1, 2]);
    });
  });
}

describe("verification", () => {
  test("a receiver with another secret refuses the delivery (401), so the job goes dead unhandled", async () => {
    const wrong = await listen(serveNode(handler, { secret: generateSecret() }) as unknown as RequestListener);
    try {
      const job = await client.publish(`${wrong.url}/hook`, { end: "ok" });
      const done = await finished(job.id);
      assert.equal(done.state, "dead");
      assert.match(done.last_error ?? "", /^HTTP 401/);
      assert.equal(seen.has(job.id), false);
    } finally {
      await wrong.close();
    }
  });

  test("verify() accepts a real delivery and refuses a tampered or stale one", async () => {
    let captured: Request | undefined;
    const capture = await listen(fromWeb(async (request) => {
      captured = request.clone();
      return new Response(null, { status: 204 });
    }));
    try {
      const job = await client.publish(`${capture.url}/hook`, { order: 7 }, { name: "ship" });
      await finished(job.id);
      const delivery = await verify<{ order: number }>(captured!.clone(), TEST_SECRET);
      assert.deepEqual(delivery.payload, { order: 7 });
      assert.equal(delivery.jobId, job.id);
      assert.equal(delivery.name, "ship");
      const tampered = new Request(captured!.url, { method: "POST", headers: captured!.headers, body: '{"order": 8}' });
      await assert.rejects(verify(tampered, TEST_SECRET), { name: "VerifyError" });
      const stale = await signedRequest("http://x/hook", { order: 7 }, { secret: TEST_SECRET, timestamp: Math.floor(Date.now() / 1000) - 301 });
      await assert.rejects(verify(stale, TEST_SECRET), (e: unknown) => (e as { reason?: string }).reason === "too_old");
      const fresh = await signedRequest("http://x/hook", { order: 9 }, { secret: TEST_SECRET });
      assert.deepEqual((await verify(fresh, TEST_SECRET)).payload, { order: 9 });
    } finally {
      await capture.close();
    }
  });

  test("a body already parsed by a JSON body parser is refused with a message saying how to fix it", async () => {
    const parsed = await listen((async (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => {
      for await (const _ of req) void _;
      req.body = { end: "ok" };
      await serveNode(handler, { secret: TEST_SECRET })(req as never, res);
    }) as RequestListener);
    try {
      const answer = await fetch(`${parsed.url}/hook`, { method: "POST", body: "{}" });
      assert.equal(answer.status, 500);
      assert.match(await answer.text(), /bodyParser: false/);
    } finally {
      await parsed.close();
    }
  });
});
