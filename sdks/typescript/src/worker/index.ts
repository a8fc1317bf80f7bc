/**
 * `@offload/sdk/worker`: the pull worker, its job type and the typed ways a handler ends an attempt.
 */
export { Worker, type JobHandler, type WorkerOptions, type WorkerStats } from "./worker.js";
export { Job, type AbortReason, type JobBackend, type JobFacts, type LogLevel, type LogLineInput } from "./job.js";
export { CancelError, SnoozeError, cancel, fatal, retryAfter, snooze, outcomeOf, completed, type Outcome } from "./outcomes.js";
export { NonRetriableError, RetryAfterError } from "../errors.js";
