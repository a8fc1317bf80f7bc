/**
 * Runs the App Router route above on a plain `node:http` server (as `next dev` would) and publishes one job to
 * it through a local Offload server, then waits for the job to finish:
 *
 *   offload serve                               # in another terminal
 *   export OFFLOAD_SIGNING_SECRET=$(offload push secret | head -n 1)
 *   npm run build && node dist/examples/app-router/dev.js
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

import { Offload } from "@offload/sdk";
import { POST } from "./app/api/jobs/welcome/route.js";

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
  const response = await POST(new Request(`http://localhost${req.url}`, { method: "POST", headers, body: Buffer.concat(chunks) }));
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
});
await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/jobs/welcome`;

const offload = new Offload(); // OFFLOAD_URL, default http://127.0.0.1:7070
const job = await offload.publish(url, { user: 42 }, { queue: "emails", name: "welcome" });
console.log(`published job ${job.id} to ${url}`);
const deadline = Date.now() + 30_000;
let state = job.state;
while (!["succeeded", "dead"].includes(state) && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
  state = (await offload.jobs.get(job.id)).state;
}
const done = await offload.jobs.get(job.id);
console.log(`job ${done.id}: ${done.state}`, JSON.stringify(done.result));
server.close();
process.exitCode = done.state === "succeeded" ? 0 : 1;
