/**
 * `@offload/sdk`: a client of an Offload server, receivers for its signed push deliveries, the pull
 * worker, and durable functions (`createFunction`, served by `serve({ functions })` or a `Worker`). No runtime dependencies: global `fetch` and Web Crypto.
 */
export { Offload, DEFAULT_BASE_URL, DEFAULT_PUBLISH_QUEUE, Jobs, Queues, Schedules, Workers } from "./client.js";
export type { OffloadOptions, PublishOptions, CompleteItem, FailItem } from "./client.js";
export { OffloadError, NonRetriableError, RetryAfterError, StepError, CONNECTION_FAILED } from "./errors.js";
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
export {
  DEFAULT_MAX_BODY_BYTES,
  type PushContext,
  type PushHandler,
  type ServeFunctionsOptions,
  type ServeOptions,
} from "./push/handler.js";
export { serve, serveNextPages, serveNode, type NodeRequest, type NodeResponse } from "./push/serve.js";
export * from "./worker/index.js";
export {
  createFunction,
  OffloadFunction,
  MAX_RETRIES,
  type CancelOn,
  type FunctionConfig,
  type FunctionConcurrency,
  type FunctionRateLimit,
  type FunctionSingleton,
  type FunctionThrottle,
  type FunctionContext,
  type FunctionHandler,
  type FunctionLogger,
  type FunctionTrigger,
  type InvokeOptions,
  type Step,
  type WaitForEventOptions,
} from "./functions/define.js";
export { executeCall, MAX_STEP_ID_BYTES, type ExecuteOptions } from "./functions/execute.js";
export { durationToMs, type DurationInput } from "./functions/duration.js";
export {
  isCallRequest,
  type CallRequest,
  type CallResponse,
  type EventInput,
  type FunctionEvent,
  type StepOp,
  type StepResult,
  type WireEvent,
} from "./functions/protocol.js";
export { Events, Functions, Runs, type RegisterOptions } from "./functions/client.js";
export type {
  AppSynced,
  CancelOnSpec,
  EventFilter,
  EventPage,
  EventsSent,
  EventView,
  FunctionFilter,
  FunctionPage,
  FunctionSpec,
  FunctionView,
  RunFilter,
  RunPage,
  RunState,
  RunView,
  StepKind,
  StepView,
  TriggerSpec,
} from "./functions/api.js";
export type { components, paths, operations } from "./api.gen.js";
