/**
 * A Next.js App Router route handler receiving Offload push deliveries (the same `POST` export works in Hono,
 * Bun, Deno and Cloudflare Workers). The server signs every delivery; `serve` verifies it with
 * OFFLOAD_SIGNING_SECRET (`offload push secret` prints it) before the handler runs.
 */
import { NonRetriableError, RetryAfterError, serve } from "@offload/sdk";

interface Welcome {
  user: number;
}

export const POST = serve<Welcome>(async ({ payload, jobId, attempt }) => {
  if (payload.user === 0) throw new NonRetriableError("no such user"); // dead at once
  if (attempt === 1 && payload.user < 0) throw new RetryAfterError(2_000, "busy"); // again in 2 s
  console.log(`welcome user ${payload.user} (job ${jobId}, attempt ${attempt})`);
  return { welcomed: payload.user }; // 200: the job succeeded, this is kept as its result
});
