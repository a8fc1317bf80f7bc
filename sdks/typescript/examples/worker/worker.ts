/**
 * A Node pull worker: works the `emails` queue, ten jobs at a time, until SIGTERM or Ctrl-C.
 *
 *   offload serve                                   # in another terminal
 *   npm run build && node dist/examples/worker/worker.js
 *   offload job enqueue emails --name welcome --payload '{"user": 42}'
 */
import { Offload, Worker, fatal, snooze, type Job } from "@offload/sdk";

interface Welcome {
  user: number;
}

async function welcome(job: Job<Welcome>) {
  if (job.payload.user === 0) throw fatal("no such user"); // dead, no retry
  if (job.payload.user < 0) throw snooze(60_000); // again in a minute, no attempt used up
  await job.progress(50, "rendering");
  job.signal.throwIfAborted(); // stops when the job is cancelled or the worker is stopping for good
  return { welcomed: job.payload.user }; // kept as the job's result
}

const worker = new Worker({
  client: new Offload(), // OFFLOAD_URL / OFFLOAD_TOKEN, default http://127.0.0.1:7070
  queues: { emails: 10 },
  handlers: { welcome },
});
console.log(`worker ${worker.id} working queue emails`);
const stats = await worker.run(); // until SIGTERM / SIGINT, then finishes running jobs
console.log(`stopped: ${stats.succeeded} succeeded, ${stats.failed} failed`);
