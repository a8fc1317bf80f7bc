/**
 * The Next.js App Router endpoint of the example app's durable functions: the server pushes each call here,
 * signed; `serve` verifies it (OFFLOAD_SIGNING_SECRET), replays the function and answers the call response.
 */
import { serve } from "@offload/sdk";
import { functions } from "../../../functions.js";

export const POST = serve({ functions });
