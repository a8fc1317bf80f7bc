//! The store's side of durable functions: what the function, event and run operations of [`Store`] take and
//! return.
//!
//! The rules come from `offload_core::function` (validation, trigger filters, the step record decision); a store
//! reads the facts those rules need and writes the plan they return, in one transaction per operation. A call of
//! a run is an ordinary job: its `name` is the function id, its tag `offload.run` the run id, its payload the
//! call request, its result the call response. The end of a call job (`job_finish`, the rescuer's lease expiry,
//! a cancel) applies the call's answer to the run in the transaction that ends the job.
//!
//! Invariant: every operation here is atomic, and with several servers on one database exactly one of them
//! applies each decision (a run's row is locked while its step records and next call are written).
//!
//! [`Store`]: crate::Store

use std::time::Duration;

use jiff::Timestamp;
use offload_core::JobId;
use offload_core::LeaseToken;
use offload_core::function::definition::Function;
use offload_core::function::event::{EventId, NewEvent};
use offload_core::function::protocol::{Json, RanStep, StepError, StepResult};
use offload_core::function::record::{RecordLimits, StepKind};
use offload_core::function::run::{RunId, RunState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The tag key every call job carries, naming its run.
pub const RUN_TAG: &str = "offload.run";

/// A registered function, as stored.
#[derive(Debug, Clone)]
pub struct FunctionRecord {
    /// The validated definition.
    pub function: Function,
    /// The definition exactly as registered (the API answers with it).
    pub spec: Value,
    /// The app that registered it through a sync, if any.
    pub app: Option<String>,
    /// First registration.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// `function_put`: registers or replaces one function.
#[derive(Debug, Clone)]
pub struct FunctionPutParams {
    /// The validated definition.
    pub function: Function,
    /// The definition as registered.
    pub spec: Value,
    /// The owning app, if registered by a sync.
    pub app: Option<String>,
}

/// What `function_put` did.
#[derive(Debug, Clone)]
pub struct FunctionPut {
    /// The stored function.
    pub record: FunctionRecord,
    /// True when the id was new.
    pub created: bool,
}

/// `function_list`: a page of registered functions, by id.
#[derive(Debug, Clone, Default)]
pub struct FunctionListParams {
    /// Only this app's functions.
    pub app: Option<String>,
    /// Ids after this one.
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// `app_sync`: an app's whole set of functions, in one transaction.
#[derive(Debug, Clone)]
pub struct AppSyncParams {
    /// The app.
    pub app: String,
    /// Its functions: each validated definition with its registered form.
    pub functions: Vec<(Function, Value)>,
}

/// What `app_sync` did, by function id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSynced {
    /// Ids registered for the first time.
    pub created: Vec<String>,
    /// Ids whose definition changed.
    pub updated: Vec<String>,
    /// Ids left as they were.
    pub unchanged: Vec<String>,
    /// Ids of the app missing from the set, now removed (their runs keep going).
    pub removed: Vec<String>,
}

/// `event_send`: stores events and, in the same transaction, fans each one out: a run (with its first call
/// job) per function whose trigger matches, every waiting step whose wait matches resolved, every run whose
/// `cancel_on` matches cancelled. All or nothing.
#[derive(Debug, Clone)]
pub struct EventSendParams {
    /// The validated events, in request order.
    pub events: Vec<NewEvent>,
    /// Limits on what the resolved waits record.
    pub limits: RecordLimits,
}

/// What `event_send` did.
#[derive(Debug, Clone, Default)]
pub struct EventSendReport {
    /// One entry per event, in request order.
    pub events: Vec<EventSent>,
    /// Queues in which call jobs became available (the engine wakes their claimers).
    pub woken: Vec<String>,
}

/// One event's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSent {
    /// The stored event's id (for a duplicate: the first event's id).
    pub id: EventId,
    /// True when the event's `id` was seen within retention: nothing was fanned out again.
    pub duplicate: bool,
    /// Runs the event started (for a duplicate: the runs the first event started).
    pub runs: Vec<RunId>,
    /// The function of each run this event started now, in the order of `runs` (empty for a duplicate, which
    /// started nothing): what the engine counts runs started by.
    pub started: Vec<String>,
    /// Waiting steps it resolved.
    pub resolved_waits: u32,
    /// Runs it cancelled through `cancel_on`.
    pub cancelled_runs: u32,
    /// Functions it triggered but started no run of (empty for a duplicate).
    pub skipped: Vec<Skipped>,
}

/// A function an event triggered but started no run of, and why; kept with the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The function.
    pub function_id: String,
    /// `rate_limit` or `singleton`.
    pub reason: crate::fanout::SkipReason,
}

/// The `skipped` list as stored with an event (`None` when empty).
pub fn skipped_to_db(skipped: &[Skipped]) -> Option<String> {
    (!skipped.is_empty()).then(|| serde_json::to_string(skipped).unwrap_or_else(|_| "[]".into()))
}

/// A stored `skipped` list.
pub fn skipped_from_db(text: Option<&str>) -> crate::Result<Vec<Skipped>> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| crate::StoreError::corrupt(format!("event skipped {t:?}: {e}"))),
    }
}

/// What the end of a call job did to its run, reported with the job's end so the engine can count runs ended
/// and steps recorded without reading the run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunChange {
    /// The run.
    pub run_id: RunId,
    /// Its function.
    pub function_id: String,
    /// Set when the run ended in this transaction.
    pub ended: Option<RunEnded>,
    /// Steps the call's answer recorded.
    pub steps: StepCounts,
}

/// A run's end, as a [`RunChange`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnded {
    /// `succeeded`, `failed` or `cancelled`.
    pub state: RunState,
    /// From the run's creation to its end (zero if the clock went back).
    pub duration: Duration,
}

/// Steps a call's answer recorded, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Steps recorded with data.
    pub data: u32,
    /// Steps recorded with an error.
    pub error: u32,
    /// Failed attempts of steps that will be retried.
    pub retry: u32,
    /// Parallel steps planned (each gets its own call).
    pub planned: u32,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The server's id for it.
    pub id: EventId,
    /// Its name.
    pub name: String,
    /// Its data (a JSON object).
    pub data: Json,
    /// The sender's de-duplication id, if any.
    pub user_id: Option<String>,
    /// The event's time (the sender's `ts`, else when it was received).
    pub ts: Timestamp,
    /// When the server stored it.
    pub received_at: Timestamp,
    /// Runs it started.
    pub runs: Vec<RunId>,
    /// Functions it triggered but started no run of.
    pub skipped: Vec<Skipped>,
}

impl EventRecord {
    /// The event as the code sees it: `{"name", "data", "id", "ts"}` (`id` is the sender's id, else the
    /// server's).
    pub fn as_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "data": serde_json::from_str::<Value>(self.data.get()).unwrap_or(Value::Null),
            "id": self.user_id.clone().unwrap_or_else(|| self.id.to_string()),
            "ts": self.ts.to_string(),
        })
    }
}

/// `event_list`: a page of events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventListParams {
    /// Only events of this name.
    pub name: Option<String>,
    /// Events older than this one.
    pub before: Option<EventId>,
    /// Page size.
    pub limit: u32,
}

/// A run, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// The function it runs.
    pub function_id: String,
    /// Its state.
    pub state: RunState,
    /// The event that started it.
    pub event_id: EventId,
    /// That event as the code sees it (`{"name", "data", "id", "ts"}`).
    pub event: Json,
    /// The run's output, once succeeded.
    pub output: Option<Json>,
    /// Why it failed, once failed.
    pub error: Option<StepError>,
    /// For a run started by an `invoke` step: the parent run and that step's id.
    pub parent: Option<(RunId, String)>,
    /// Steps recorded so far.
    pub steps: u32,
    /// When the run was created.
    pub created_at: Timestamp,
    /// When its first call started, if it has.
    pub started_at: Option<Timestamp>,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// Last change.
    pub updated_at: Timestamp,
    /// While sleeping or waiting: when the next call becomes due (the sleep's end, or the wait's timeout).
    pub wake_at: Option<Timestamp>,
}

/// `run_list`: a filtered page of runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunListParams {
    /// Only runs of this function.
    pub function_id: Option<String>,
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only runs this event started.
    pub event_id: Option<EventId>,
    /// Runs older than this one.
    pub before: Option<RunId>,
    /// Page size.
    pub limit: u32,
}

/// One step of a run's history, recorded or in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// The step's id.
    pub id: String,
    /// What kind of step.
    pub kind: StepKind,
    /// Its result, once recorded; `None` while a sleep, wait, invoke or failing `run` step is pending.
    pub result: Option<StepResult>,
    /// Failed attempts before the result (or so far), oldest first.
    pub failed_attempts: Vec<StepAttempt>,
    /// When the step was first seen (its first failed attempt, its plan, or its record).
    pub started_at: Timestamp,
    /// When its result was recorded.
    pub recorded_at: Option<Timestamp>,
    /// A pending sleep, wait or invoke: when it resolves at the latest.
    pub until: Option<Timestamp>,
}

/// A failed attempt of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// Its error.
    pub error: StepError,
    /// When it was reported.
    pub at: Timestamp,
}

/// `run_record_steps`: a pull worker records steps it ran within its call's lease, before completing the call,
/// so a crash loses at most the step in progress. Each step is recorded once (first report wins); the call
/// stays in flight, and its job's payload is rewritten to hold every recorded step, so a retried call replays
/// them.
#[derive(Debug, Clone)]
pub struct RunRecordStepsParams {
    /// The run.
    pub run_id: RunId,
    /// The call job the worker holds.
    pub job_id: JobId,
    /// Its lease token (a stale one is refused with [`crate::StoreError::LeaseMismatch`]).
    pub lease_token: LeaseToken,
    /// `run` steps with their data or final error (a retryable error ends the call instead).
    pub steps: Vec<RanStep>,
    /// Limits on what a run may record.
    pub limits: RecordLimits,
}

/// `run_wake_due`: resolves waits and invokes whose timeout passed (their next call is enqueued).
#[derive(Debug, Clone)]
pub struct RunWakeParams {
    /// Most runs woken per call.
    pub limit: u32,
}

/// What `run_wake_due` did.
#[derive(Debug, Clone, Default)]
pub struct RunWakeReport {
    /// Runs woken.
    pub woken: u64,
    /// Queues in which call jobs became available.
    pub queues: Vec<String>,
    /// The earliest timeout still pending, if any (the engine sleeps until then).
    pub next_due_at: Option<Timestamp>,
}

/// `run_prune`: deletes ended runs (with their steps) and events older than their retention.
#[derive(Debug, Clone)]
pub struct RunPruneParams {
    /// Ended runs older than this (by `ended_at`) go.
    pub runs: Duration,
    /// Events older than this (by `received_at`) go; their de-duplication ids become free again.
    pub events: Duration,
    /// Most rows deleted per call, per kind.
    pub limit: u32,
}
