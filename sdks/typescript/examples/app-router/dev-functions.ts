/**
 * Runs the functions' App Router route on a plain `node:http` server (as `next dev` would), registers the
 * functions with a local Offload server as the app `example` (push to that route), sends an `app/order.paid`
 * event and waits for the run it started, then prints its steps:
 *
 *   offload serve                               # in another terminal
 *   export OFFLOAD_SIGNING_SECRET=$(offload push secret | head -n 1)
 *   npm run build && node dist/examples/app-router/dev-functions.js
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

import { Offload } from "@offload/sdk";
import { POST } from "./app/api/offload/route.js";
import { functions } from "./functions.js";

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
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/offload`;

const offload = new Offload(); // OFFLOAD_URL, default http://127.0.0.1:7070
console.log("synced", JSON.stringify(await offload.functions.sync("example", functions, { target: url })));
const sent = await offload.events.send({ name: "app/order.paid", data: { order_id: 42, user_id: "u1", amount: 30 } });
const runId = sent.runs[0]![0]!;
console.log(`event ${sent.ids[0]} started run ${runId}`);
const deadline = Date.now() + 30_000;
let run = await offload.runs.get(runId);
while (!["succeeded", "failed", "cancelled"].includes(run.state) && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
  run = await offload.runs.get(runId);
}
console.log(`run ${run.id}: ${run.state}`, JSON.stringify(run.output ?? run.error));
for (const step of await offload.runs.steps(runId)) console.log(`  step ${step.id} (${step.kind}):`, JSON.stringify(step.result));
server.close();
process.exitCode = run.state === "succeeded" ? 0 : 1;
