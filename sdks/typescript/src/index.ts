/**
 * `@offload/sdk`: a client of an Offload server, receivers for its signed push deliveries, and the pull
 * worker. No runtime dependencies: global `fetch` and Web Crypto.
 */
export { Offload, DEFAULT_BASE_URL, DEFAULT_PUBLISH_QUEUE, Jobs, Queues, Schedules, Workers } from "./client.js";
export type { OffloadOptions, PublishOptions, CompleteItem, FailItem } from "./client.js";
export { OffloadError, NonRetriableError, RetryAfterError, CONNECTION_FAILED } from "./errors.js";
export type { RetryPolicy } from "./backoff.js";
export { DEFAULT_RETRY } from "./backoff.js";
export { Transport, type Call, type TransportOptions } from "./transport.js";
export * from "./types.js";
export {
  DEFAULT_TOLERANCE_SECONDS,
  HEADER_ID,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  VerifyError,
  verifyParts,
  type Secrets,
  type Verified,
  type VerifyFailure,
  type VerifyOptions,
} from "./push/verify.js";
export { verify, type Delivery } from "./push/receive.js";
export { DEFAULT_MAX_BODY_BYTES, type PushContext, type PushHandler, type ServeOptions } from "./push/handler.js";
export { serve, serveNextPages, serveNode, type NodeRequest, type NodeResponse } from "./push/serve.js";
export * from "./worker/index.js";
export type { components, paths, operations } from "./api.gen.js";
