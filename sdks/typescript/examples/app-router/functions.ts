/**
 * Durable functions of the example app: a three-step order flow that sleeps and waits for an event, and a
 * parallel image resize. Served over push by `app/api/offload/route.ts`, registered by `dev-functions.ts`.
 */
import { createFunction, NonRetriableError } from "@offload/sdk";

interface OrderPaid {
  order_id: number;
  user_id: string;
  amount: number;
}

export const sendReceipt = createFunction<OrderPaid>(
  {
    id: "send-receipt",
    trigger: { event: "app/order.paid", if: { "data.amount": { gt: 0 } } },
    retries: 3,
    cancelOn: { event: "app/order.refunded", match: "data.order_id" },
  },
  async ({ event, step, logger }) => {
    const order = await step.run("load-order", async () => ({ id: event.data.order_id, total: event.data.amount }));
    const receipt = await step.run("render-receipt", () => {
      if (order.total < 0) throw new NonRetriableError("negative total"); // recorded at once, no retries
      return { text: `Order ${order.id}: ${order.total} EUR` };
    });
    await step.run("email-receipt", () => {
      logger.info(`emailing ${event.data.user_id}: ${receipt.text}`); // written once, not on every replay
      return { sent: true };
    });
    return { order: order.id, receipt: receipt.text };
  },
);

export const onboarding = createFunction<{ user_id: string }>(
  { id: "onboarding", trigger: { event: "app/user.signup" } },
  async ({ event, step }) => {
    await step.run("welcome-email", () => ({ to: event.data.user_id }));
    await step.sleep("wait-a-day", "1d");
    const upgraded = await step.waitForEvent("upgrade", { event: "app/user.upgraded", match: "data.user_id", timeout: "7d" });
    if (!upgraded) await step.run("nudge-email", () => ({ to: event.data.user_id }));
    return { upgraded: upgraded !== null };
  },
);

export const resizeAll = createFunction<{ images: string[] }>(
  { id: "resize-all", trigger: { event: "app/images.uploaded" } },
  async ({ event, step }) => {
    // One call per image, in parallel; the run goes on when all are recorded.
    const sizes = await Promise.all(event.data.images.map((image) => step.run(`resize-${image}`, () => image.length * 100)));
    await step.sendEvent("done", { name: "app/images.resized", data: { count: sizes.length } });
    return { sizes };
  },
);

export const functions = [sendReceipt, onboarding, resizeAll];
