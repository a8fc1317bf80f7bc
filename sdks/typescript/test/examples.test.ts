/** The examples run against a real server as the guide says. (The worker example is covered by worker.test.) */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { packageRoot, startServer, TEST_SECRET, type TestServer } from "../scripts/server.js";

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server.stop());

test("the App Router example receives a signed delivery and the job succeeds", async () => {
  const child = spawn(process.execPath, [join(packageRoot, "dist/examples/app-router/dev.js")], {
    env: { ...process.env, OFFLOAD_URL: server.url, OFFLOAD_SIGNING_SECRET: TEST_SECRET },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  assert.equal(code, 0, out);
  assert.match(out, /welcome user 42/);
  assert.match(out, /: succeeded \{"status":200,"body":\{"welcomed":42\}\}/);
});

test("the durable functions example: synced, started by an event, its steps served by the App Router route", async () => {
  const child = spawn(process.execPath, [join(packageRoot, "dist/examples/app-router/dev-functions.js")], {
    env: { ...process.env, OFFLOAD_URL: server.url, OFFLOAD_SIGNING_SECRET: TEST_SECRET },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  assert.equal(code, 0, out);
  assert.match(out, /synced \{"created":\["onboarding","resize-all","send-receipt"\]/);
  assert.match(out, /: succeeded \{"order":42,"receipt":"Order 42: 30 EUR"\}/);
  assert.match(out, /step load-order \(run\): \{"data":\{"id":42,"total":30\}\}/);
  assert.match(out, /step email-receipt \(run\): \{"data":\{"sent":true\}\}/);
});
