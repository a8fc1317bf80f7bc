/**
 * `npm run bench`: the Node worker drains N no-op jobs from a real server, as the Rust SDK's drain phase of
 * `offload bench` does: the queue is filled first (not timed), then one worker holding `workers * claim batch`
 * jobs (4 x 500 by default) runs a no-op handler until every completion is acknowledged.
 *
 *   OFFLOAD_BIN=../../target/release/offload npm run bench -- [jobs (default 100000)]
 *
 * Compare the figure with the `drain:` line of `offload bench` on the same machine.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";

import { Offload, Worker } from "@offload/sdk";
import { packageRoot, startServer } from "../scripts/server.js";

const jobs = Number(process.argv[2] ?? 100_000);
const workers = Number(process.env.BENCH_WORKERS ?? 4);
const claimBatch = Number(process.env.BENCH_CLAIM_BATCH ?? 500);
const release = resolve(packageRoot, "../../target/release/offload");
const bin = process.env.OFFLOAD_BIN ?? (existsSync(release) ? release : undefined);

const server = await startServer(bin ? { bin } : {});
try {
  const client = new Offload({ baseUrl: server.url });
  const fillStart = performance.now();
  for (let n = 0; n < jobs; n += 1_000) {
    const size = Math.min(1_000, jobs - n);
    await client.enqueueMany(Array.from({ length: size }, (_, i) => ({ queue: "bench-ts", payload: { to: "a@example.com", n: n + i } })));
  }
  const filled = performance.now() - fillStart;
  const worker = new Worker({
    client,
    queues: { "bench-ts": workers * claimBatch },
    claimBatch,
    workerId: "bench-ts",
    fallback: (job) => {
      void (job.payload as { to: string }).to;
    },
    onWarning: (m) => console.error(m),
  });
  const started = performance.now();
  const cpu = process.cpuUsage();
  worker.start();
  const stats = await worker.waitUntil((s) => s.succeeded + s.failed + s.refused + s.unreported >= jobs);
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  await worker.stop(10_000);
  if (stats.succeeded !== jobs) throw new Error(`the drain ended with ${JSON.stringify(stats)} for ${jobs} jobs`);
  console.log(`filled ${jobs} jobs in ${(filled / 1000).toFixed(1)} s`);
  console.log(`Node worker drain: ${Math.round(jobs / elapsed)} jobs/s (${jobs} jobs in ${elapsed.toFixed(2)} s, concurrency ${workers * claimBatch}, ${claimBatch} per claim)`);
  console.log(`Node process CPU during the drain: ${Math.round((used.user + used.system) / 10_000 / elapsed)} % of one core`);
  console.log(`RESULT ts_worker_drain_per_s=${Math.round(jobs / elapsed)}`);
} finally {
  await server.stop();
}
