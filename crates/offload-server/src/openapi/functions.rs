//! Schemas of the durable-function request bodies, for the document only: the server parses the bodies into
//! `offload_core::function` types, whose fields these mirror one for one (unknown fields are refused there as
//! here), and [`super::constraints`] adds the bounds from the same constants.

#![allow(dead_code)] // the fields exist to be described

use offload_core::push::Target;
use offload_core::{Backoff, DurationSpec};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A function definition (`PUT /v1/functions/{id}`, one entry of `PUT /v1/apps/{app}`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionSpec {
    /// Stable id (required in an app sync; in `PUT /v1/functions/{id}` absent or equal to the path's).
    id: Option<String>,
    /// Human name shown in the dashboard.
    name: Option<String>,
    /// What starts a run: events by name (with an optional filter) or a cron schedule. At least one.
    triggers: Vec<TriggerSpec>,
    /// Push: the endpoint each call is delivered to, signed like every delivery. Without it, pull workers
    /// claim the calls from `queue`.
    target: Option<Target>,
    /// Queue of the calls (default: the function id).
    queue: Option<String>,
    /// Retries of a failed step, and of a call that failed outside any step (default 4).
    retries: Option<u32>,
    /// Delay between retries.
    backoff: Option<Backoff>,
    /// Lease of one call (default 5 minutes).
    timeout: Option<DurationSpec>,
    /// Events that cancel a running, sleeping or waiting run.
    cancel_on: Option<Vec<CancelOnSpec>>,
    /// Most running calls: up to two limits, at most one without `key` (the queue's `concurrency`) and at most
    /// one with (the queue's `group_concurrency`, per value of the key in the run's event). Registering the
    /// function writes them, with `throttle`, as its queue's limits; functions sharing a queue share them.
    concurrency: Option<Vec<FunctionConcurrency>>,
    /// Most call starts per period (the queue's throttle; one per key value when keyed).
    throttle: Option<FunctionThrottle>,
    /// Most runs started per period: an event beyond it starts no run of the function and lists it in the
    /// event's `skipped` with reason `rate_limit`.
    rate_limit: Option<FunctionRateLimit>,
    /// At most one live run per key value: `skip` the new one (listed in the event's `skipped` with reason
    /// `singleton`) or `cancel` the live one.
    singleton: Option<FunctionSingleton>,
}

/// One concurrency limit of a function.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionConcurrency {
    /// Most running calls (at least 1).
    limit: u32,
    /// A field path into the event, e.g. `data.account_id`: the limit holds per value of it. An event without
    /// the field gives calls that only the limit without a key counts.
    key: Option<String>,
}

/// A function's throttle: at most `limit` call starts per `period`, `burst` at once after a quiet spell.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionThrottle {
    /// Starts per period (at least 1).
    limit: u32,
    /// The period (at least 1 ms).
    period: DurationSpec,
    /// Starts allowed at once (default 1).
    burst: Option<u32>,
    /// A field path into the event: one throttle per value. Must equal the keyed concurrency's key, if any
    /// (a call has one group).
    key: Option<String>,
}

/// A function's rate limit: at most `limit` runs started in a quiet `period`, then one per `period / limit`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionRateLimit {
    /// Runs per period (at least 1).
    limit: u32,
    /// The period (at least 1 ms).
    period: DurationSpec,
    /// A field path into the event: one limit per value. An event without the field is not limited.
    key: Option<String>,
}

/// What a singleton does with a new run while one of its key is live.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SingletonMode {
    /// The new event starts no run.
    Skip,
    /// The live run is cancelled and the new one starts.
    Cancel,
}

/// A function's singleton: at most one live (not succeeded, failed or cancelled) run per key value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionSingleton {
    /// A field path into the event: one live run per value (without: one for the function). An event without
    /// the field starts a run that is no singleton.
    key: Option<String>,
    /// `skip` or `cancel`.
    mode: SingletonMode,
}

/// One trigger: exactly one of `event` or `cron`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerSpec {
    /// An event name that starts a run.
    event: Option<String>,
    /// A filter the event must pass: an object of field paths (`data.plan`) to values or comparisons.
    #[serde(rename = "if")]
    filter: Option<Value>,
    /// A cron expression that starts a run on every tick (at most one cron trigger). Each run's event is
    /// `offload/cron.tick` with data `{function_id, cron, timezone, scheduled_at}`; after downtime one run
    /// starts, for the most recent tick.
    cron: Option<String>,
    /// IANA time zone of `cron` (default UTC).
    timezone: Option<String>,
}

/// Cancels a run when an event named `event` arrives whose `match` field equals the run's event's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelOnSpec {
    /// The cancelling event's name.
    event: String,
    /// A field path compared between the two events, e.g. `data.user_id`; without it every run of the
    /// function is cancelled.
    #[serde(rename = "match")]
    match_path: Option<String>,
}

/// `PUT /v1/apps/{app}`: the app's whole set of functions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppSyncRequest {
    /// Every function of the app, each with its `id`.
    functions: Vec<FunctionSpec>,
}

/// One event.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventRequest {
    /// The event's name, e.g. `app/user.signup`.
    name: String,
    /// A JSON object (default `{}`).
    data: Option<serde_json::Map<String, Value>>,
    /// De-duplication key: an event whose id was seen within retention starts nothing again.
    id: Option<String>,
    /// When it happened (default: when the server received it).
    #[schema(value_type = Option<String>, format = DateTime)]
    ts: Option<String>,
}

/// Several events, all or nothing.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBatch {
    /// The events.
    events: Vec<EventRequest>,
}

/// `POST /v1/events`: one event, or `{"events": [...]}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum EventsRequest {
    /// One event.
    One(EventRequest),
    /// Several events.
    Batch(EventBatch),
}

/// `POST /v1/runs/{id}/steps`: `run` steps ran within the call's lease.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordStepsRequest {
    /// The call job the worker holds.
    job_id: uuid::Uuid,
    /// Its lease token.
    lease_token: uuid::Uuid,
    /// The steps, each `{"id", "op": "run", "data"}` or `{"id", "op": "run", "error": {"name", "message",
    /// "retryable": false}}`.
    steps: Vec<RecordedStep>,
}

/// A `run` step's outcome.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordedStep {
    /// The step's id.
    id: String,
    /// Always `run`: only executed steps are recorded within a lease.
    op: RecordedOp,
    /// Its JSON result.
    data: Option<Value>,
    /// Its final error.
    error: Option<RecordedError>,
}

/// The one kind of step a worker records within its lease.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordedOp {
    /// Code that ran.
    Run,
}

/// A step's final error.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordedError {
    /// The error's class.
    name: String,
    /// What went wrong.
    message: String,
    /// Must be `false` here: a retryable error ends the call instead.
    retryable: bool,
}
