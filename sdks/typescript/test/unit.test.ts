/** Pure parts, without a server: backoff, Retry-After, signatures, outcomes, and the testing helpers. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { retryDelay, parseRetryAfter, DEFAULT_RETRY } from "../src/backoff.js";
import { NonRetriableError, RetryAfterError, cancel, fatal, snooze, outcomeOf, verifyParts, VerifyError } from "../src/index.js";
import { sign } from "../src/push/verify.js";
import { durationMs } from "../src/worker/worker.js";
import { cut, MAX_PROGRESS_MESSAGE_BYTES } from "../src/worker/job.js";
import { deliver, generateSecret, perform } from "../src/testing.js";

const SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_BODY = new TextEncoder().encode('{"test": 2432232314}');
const SPEC_PARTS = { id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body: SPEC_BODY };

describe("retry delays", () => {
  test("grow exponentially to the cap, minus at most 20 %", () => {
    assert.equal(retryDelay(DEFAULT_RETRY, 1, 0), 200);
    assert.equal(retryDelay(DEFAULT_RETRY, 3, 0), 800);
    assert.equal(retryDelay(DEFAULT_RETRY, 30, 0), 5_000);
    assert.equal(retryDelay(DEFAULT_RETRY, 1, 0.999_999), 200 * (1 - 0.2 * 0.999_999));
  });
  test("a longer Retry-After wins, within the cap", () => {
    assert.equal(retryDelay(DEFAULT_RETRY, 1, 0, 2_000), 2_000);
    assert.equal(retryDelay(DEFAULT_RETRY, 1, 0, 60_000), 5_000);
    assert.equal(retryDelay(DEFAULT_RETRY, 3, 0, 10), 800);
  });
  test("Retry-After reads seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("3"), 3_000);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", now), 10_000);
  });
});

describe("signatures", () => {
  test("the Standard Webhooks example verifies, and signing reproduces it", async () => {
    const ok = await verifyParts(SPEC_PARTS, SPEC_SECRET, { now: 1614265330 });
    assert.deepEqual(ok, { id: SPEC_PARTS.id, timestamp: 1614265330 });
    assert.equal(await sign(SPEC_PARTS.id, 1614265330, SPEC_BODY, SPEC_SECRET), SPEC_PARTS.signature);
  });
  test("an altered body, id or timestamp, or another secret, is refused", async () => {
    const refused = async (parts: typeof SPEC_PARTS, secret = SPEC_SECRET) =>
      assert.rejects(verifyParts(parts, secret, { now: 1614265330 }), (e: unknown) => e instanceof VerifyError && e.reason === "bad_signature");
    await refused({ ...SPEC_PARTS, body: new TextEncoder().encode('{"test": 2432232315}') });
    await refused({ ...SPEC_PARTS, id: "msg_other" });
    await refused({ ...SPEC_PARTS, timestamp: "1614265331" });
    await refused(SPEC_PARTS, generateSecret());
    await refused({ ...SPEC_PARTS, signature: "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" });
  });
  test("any of several signatures and any of several secrets is accepted (rotation)", async () => {
    const other = generateSecret();
    const both = await sign(SPEC_PARTS.id, 1614265330, SPEC_BODY, [other, SPEC_SECRET]);
    assert.equal(both.split(" ").length, 2);
    await verifyParts({ ...SPEC_PARTS, signature: both }, SPEC_SECRET, { now: 1614265330 });
    await verifyParts(SPEC_PARTS, [other, SPEC_SECRET], { now: 1614265330 });
  });
  test("timestamps older or newer than five minutes are refused", async () => {
    const reason = (r: string) => (e: unknown) => e instanceof VerifyError && e.reason === r;
    await verifyParts(SPEC_PARTS, SPEC_SECRET, { now: 1614265330 + 300 });
    await assert.rejects(verifyParts(SPEC_PARTS, SPEC_SECRET, { now: 1614265330 + 301 }), reason("too_old"));
    await assert.rejects(verifyParts(SPEC_PARTS, SPEC_SECRET, { now: 1614265330 - 301 }), reason("too_new"));
    await assert.rejects(verifyParts({ ...SPEC_PARTS, timestamp: "x" }, SPEC_SECRET), reason("invalid_header"));
    await assert.rejects(verifyParts({ ...SPEC_PARTS, signature: null }, SPEC_SECRET), reason("missing_header"));
  });
});

describe("worker outcomes", () => {
  test("each thrown kind maps to its report", () => {
    assert.deepEqual(outcomeOf(fatal("no user")), { kind: "fail", error: "no user", retryable: false });
    assert.deepEqual(outcomeOf(new NonRetriableError("x")), { kind: "fail", error: "x", retryable: false });
    assert.deepEqual(outcomeOf(new RetryAfterError(5_000, "slow down")), { kind: "fail", error: "slow down", retryable: true, retryAfterMs: 5_000 });
    assert.deepEqual(outcomeOf(snooze(60_000)), { kind: "snooze", delayMs: 60_000 });
    assert.deepEqual(outcomeOf(cancel("gone")), { kind: "abort", reason: "gone" });
    assert.deepEqual(outcomeOf(new Error("boom")), { kind: "fail", error: "boom", retryable: true });
    assert.deepEqual(outcomeOf("text"), { kind: "fail", error: "text", retryable: true });
  });
  test("durations and progress messages", () => {
    assert.equal(durationMs(30_000), 30_000);
    assert.equal(durationMs("1h30m"), 5_400_000);
    assert.equal(durationMs("250ms"), 250);
    const long = "é".repeat(600);
    const c = cut(long);
    assert.ok(new TextEncoder().encode(c).length <= MAX_PROGRESS_MESSAGE_BYTES && c.length === 512);
  });
});

describe("testing helpers", () => {
  test("perform runs a worker handler in memory", async () => {
    const handler = async (job: import("../src/index.js").Job<{ cents: number }>) => {
      if (job.payload.cents === 0) throw fatal("nothing to charge");
      await job.progress(50, "authorized");
      return { charged: job.payload.cents };
    };
    const done = await perform(handler, { cents: 250 });
    assert.deepEqual(done.outcome, { kind: "complete", result: { charged: 250 } });
    assert.deepEqual(done.progress, [{ percent: 50, message: "authorized" }]);
    assert.equal(done.state, "succeeded");
    assert.equal((await perform(handler, { cents: 0 })).state, "dead");
    assert.equal((await perform(async () => { throw new Error("x"); }, null, { attempt: 25, maxAttempts: 25 })).state, "dead");
    assert.equal((await perform(async () => { throw new Error("x"); }, null)).state, "retrying");
  });
  test("deliver runs a push handler without a signature and reads the answer as the server does", async () => {
    const ok = await deliver(async ({ payload, attempt }) => ({ got: payload, attempt }), { a: 1 }, { attempt: 2 });
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { got: { a: 1 }, attempt: 2 });
    assert.equal((await deliver(() => undefined, {})).status, 204);
    const dead = await deliver(() => { throw new NonRetriableError("bad"); }, {});
    assert.equal(dead.status, 422);
    assert.equal(dead.outcome, "dead");
    const later = await deliver(() => { throw new RetryAfterError(1_500); }, {});
    assert.equal(later.status, 503);
    assert.equal(later.headers["retry-after"], "2");
    assert.equal(later.outcome, "retry");
    assert.equal((await deliver(() => { throw new Error("boom"); }, {})).outcome, "retry");
  });
});

describe("runtimes", () => {
  test("the package imports no Node built-in, so it loads on edge runtimes", async () => {
    const { readdir, readFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { packageRoot } = await import("../scripts/server.js");
    const root = join(packageRoot, "dist", "src");
    const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith(".js"));
    assert.ok(files.length > 10);
    for (const file of files) {
      const text = await readFile(join(root, file), "utf8");
      assert.doesNotMatch(text, /from\s+["'](node:|fs|http|crypto|os|path|child_process)/, file);
    }
  });
});

describe("test server plumbing", () => {
  test("the server's address is read from complete lines only, never from a line still arriving", async () => {
    const { announcedUrl } = await import("../scripts/server.js");
    const line = "offload listening on http://127.0.0.1:41397 (database /tmp/x/offload.db, node n)\n";
    // The server writes the line in pieces; every prefix cut inside it announces nothing yet.
    for (let cut = 0; cut < line.length; cut++) assert.equal(announcedUrl(line.slice(0, cut)), undefined, line.slice(0, cut));
    assert.equal(announcedUrl(line), "http://127.0.0.1:41397");
    assert.equal(announcedUrl(`2026-12-03T16:12:43Z WARN something\n${line}push deliveries are signed`), "http://127.0.0.1:41397");
  });
});
