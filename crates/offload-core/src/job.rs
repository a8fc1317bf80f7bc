//! The job model: what a job is, which state it is in, and what each attempt did.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::backoff::Backoff;
use crate::duration::DurationSpec;
use crate::id::{JobId, LeaseToken};
use crate::push::Target;

/// Where a job is in its life. See DESIGN.md for the diagram; [`crate::state`] holds every transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Failed, waiting for its backoff to pass before the next attempt.
    Retrying,
    /// Finished successfully.
    Succeeded,
    /// Failed for good: attempts exhausted or a non-retryable error.
    Dead,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The name used in the API and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// True for states no worker will ever move the job out of (only a manual retry can).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job state `{0}`; expected one of scheduled, available, running, retrying, succeeded, dead, cancelled"
)]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// When a new job should first run. Relative delays are resolved by the store with its own clock, so that
/// "in 30 seconds" means the same thing as the due-time checks that later make the job available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAt {
    /// As soon as possible.
    Now,
    /// At an absolute instant (in the past means now).
    At(Timestamp),
    /// After a delay from the moment the store commits the job.
    After(Duration),
}

/// A validated job ready to be stored. Built by [`crate::spec::EnqueueRequest::validate`] (or by the engine
/// for jobs it creates itself), so stores can trust every field.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Pre-assigned id (UUIDv7).
    pub id: JobId,
    /// Queue name, validated.
    pub queue: String,
    /// Optional job kind, which workers dispatch on.
    pub name: Option<String>,
    /// The payload, kept as the raw JSON text the user sent.
    pub payload: Box<RawValue>,
    /// When it first becomes available.
    pub run_at: RunAt,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts allowed before the job is dead.
    pub max_attempts: u32,
    /// Retry delay policy.
    pub backoff: Backoff,
    /// Lease length of one attempt.
    pub timeout: Duration,
    /// De-duplication key, unique among stored jobs.
    pub idempotency_key: Option<String>,
    /// Fingerprint of the request that carried the idempotency key, to tell a replay from a conflicting reuse.
    pub request_fingerprint: Option<String>,
    /// Free-form labels for filtering.
    pub tags: BTreeMap<String, String>,
    /// Push jobs: where the server delivers the job. `None`: a pull job, claimed by workers.
    pub target: Option<Target>,
    /// The tenant, user or account the job belongs to (validated by [`crate::flow::limits::validate_group`]);
    /// queue limits per group and fair claims use it.
    pub group: Option<String>,
    /// While a job with this debounce key waits in the queue, this enqueue replaces its payload and moves its
    /// start instead of adding a job.
    pub debounce: Option<crate::flow::debounce::DebounceSpec>,
}

/// Progress a worker reported through heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// A short human message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AttemptOutcome {
    /// Still running (only ever the job's current attempt).
    Running,
    /// The worker completed it.
    Succeeded,
    /// The worker reported an error.
    Failed,
    /// The worker stopped heartbeating; the rescuer ended the attempt.
    LeaseExpired,
    /// Ended as cancelled: a cancel request the worker acknowledged, or the worker's own decision.
    Cancelled,
    /// The worker snoozed the job: it runs again later, and this attempt did not use one up.
    Snoozed,
}

impl AttemptOutcome {
    /// The name used in the API and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::LeaseExpired => "lease_expired",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Snoozed => "snoozed",
        }
    }
}

impl FromStr for AttemptOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            AttemptOutcome::Running,
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::LeaseExpired,
            AttemptOutcome::Cancelled,
            AttemptOutcome::Snoozed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| format!("unknown attempt outcome `{s}`"))
    }
}

/// One execution of a job, as kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the worker claimed it.
    pub started_at: Timestamp,
    /// When it ended; absent while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The worker that claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The error reported, or why the attempt was ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stored job, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Identity.
    pub id: JobId,
    /// Queue it belongs to.
    pub queue: String,
    /// Job kind, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Current state.
    pub state: JobState,
    /// The payload as the user sent it.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub payload: Box<RawValue>,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Retry delay policy.
    pub backoff: Backoff,
    /// Lease length of one attempt.
    pub timeout: DurationSpec,
    /// When it is (or was) due to run.
    pub run_at: Timestamp,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When the current or last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<Timestamp>,
    /// When it reached a finished state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Lease deadline while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// The worker holding it while running (or that ran it last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// De-duplication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Last reported progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The result the worker completed it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub result: Option<Box<RawValue>>,
    /// The last error reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A user asked to cancel while it was running; the worker sees this on its next heartbeat.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Attempt history, oldest first; present on single-job reads, absent in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
    /// Push jobs: where the server delivers the job (absent for pull jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The cron schedule tick that created the job, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduledBy>,
    /// The tenant, user or account the job belongs to, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The debounce key it was enqueued with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_key: Option<String>,
    /// Why an available job does not start yet (single-job reads of jobs held by a queue limit; absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<crate::flow::admission::WaitingFor>,
}

/// The schedule tick a job was created for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledBy {
    /// The schedule's name.
    pub name: String,
    /// The tick's fire time (for a run triggered by hand, the moment of the trigger).
    pub fire_at: Timestamp,
}

/// A job handed to a pull worker: what it needs to do the work and to report back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedJob {
    /// Identity.
    pub id: JobId,
    /// Queue it came from.
    pub queue: String,
    /// Job kind, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The payload as the user sent it.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub payload: Box<RawValue>,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Fencing token to present on heartbeat, complete and fail.
    pub lease_token: LeaseToken,
    /// The lease ends here unless a heartbeat extends it.
    pub lease_expires_at: Timestamp,
    /// Lease length a heartbeat extends by.
    pub timeout: DurationSpec,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it was due (its first `run_at`, or the end of its last backoff): the claim's wait is measured
    /// from here.
    pub run_at: Timestamp,
}
