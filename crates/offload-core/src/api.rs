//! Request and response bodies of the HTTP API that are not the job model itself. The server and the SDK
//! share these types, so the two can never disagree about the wire format.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::duration::DurationSpec;
use crate::flow::limits::QueueLimits;
use crate::id::{JobId, LeaseToken};
use crate::job::{ClaimedJob, Job, JobState};
use crate::spec::EnqueueRequest;

/// Most jobs in one batch enqueue request.
pub const MAX_BATCH_JOBS: usize = 10_000;
/// Most jobs one claim may return.
pub const MAX_CLAIM_JOBS: u32 = 1_000;
/// Longest long-poll wait of one claim.
pub const MAX_CLAIM_WAIT_MS: u64 = 60_000;
/// Longest worker id, in characters.
pub const MAX_WORKER_ID_LEN: usize = 256;
/// Largest page of a list (`limit` of `GET /v1/jobs` and `GET /v1/schedules`); the smallest is 1.
pub const MAX_PAGE_LIMIT: u32 = 500;
/// Progress is a percentage: 0 to this.
pub const MAX_PROGRESS: u8 = 100;
/// Longest error message kept on an attempt; longer ones are cut (at a character boundary). Room for a push
/// delivery's error line with the first 64 KiB of the response body.
pub const MAX_ERROR_LEN: usize = 80 * 1024;
/// Longest progress message, in characters.
pub const MAX_PROGRESS_MESSAGE_LEN: usize = 1024;

/// Checks a claim's `worker_id`: a short text of 1 to [`MAX_WORKER_ID_LEN`] characters without control
/// characters.
pub fn validate_worker_id(worker_id: &str) -> Result<(), String> {
    crate::spec::check_short_text(worker_id, MAX_WORKER_ID_LEN)
}

/// `POST /v1/jobs/batch`: all jobs are stored in one transaction, or none is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnqueueBatchRequest {
    /// The jobs, each as for `POST /v1/jobs`.
    pub jobs: Vec<EnqueueRequest>,
}

/// One entry of a batch enqueue answer, in request order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnqueuedJob {
    /// The job's id (the existing job's, for an idempotent replay).
    pub id: JobId,
    /// Its state right after the enqueue.
    pub state: JobState,
    /// True when an idempotency key matched an existing job and nothing new was stored.
    pub duplicate: bool,
    /// True when a debounce key matched a waiting job, which took this enqueue's payload and start instead of
    /// a new job being stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debounced: bool,
}

/// Answer of `POST /v1/jobs/batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnqueueBatchResponse {
    /// One entry per requested job, in request order.
    pub jobs: Vec<EnqueuedJob>,
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListJobsQuery {
    /// Only this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Only this job name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only jobs carrying this tag, written `key:value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only jobs of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Continue after this cursor (from a previous page's `next_cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One page of a list, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page of jobs.
pub type JobPage = Page<Job>;

/// `POST /v1/queues/{queue}/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimRequest {
    /// Who is claiming; recorded on the attempt.
    pub worker_id: String,
    /// Most jobs to return (1 to 1000, default 1).
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_jobs: Option<u32>,
    /// Long poll: when no job is available, wait up to this long (at most 60 s) for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<DurationSpec>,
}

/// Answer of a claim: possibly empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimResponse {
    /// The claimed jobs, highest priority first.
    pub jobs: Vec<ClaimedJob>,
}

/// `POST /v1/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// Progress, 0 to 100.
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress: Option<u8>,
    /// A short progress message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Answer of a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatResponse {
    /// The extended lease deadline.
    pub lease_expires_at: Timestamp,
    /// A user asked to cancel: stop the work and call fail (the job then ends as cancelled).
    pub cancel_requested: bool,
}

/// `POST /v1/jobs/{id}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteRequest {
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// Any JSON result to keep on the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub result: Option<Box<RawValue>>,
}

/// `POST /v1/jobs/{id}/fail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailRequest {
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// What went wrong.
    pub error: String,
    /// Retry after this delay instead of the job's backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<DurationSpec>,
    /// `false`: do not retry; the job goes dead at once (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// `POST /v1/jobs/{id}/snooze`: run the job again after `delay`, without using up an attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SnoozeRequest {
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// How long to wait before the job is available again (zero: at once).
    pub delay: DurationSpec,
}

/// `POST /v1/jobs/{id}/abort`: the worker ends the job as `cancelled`, with no further attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// Why, kept as the attempt's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One completion within `POST /v1/jobs/complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteItem {
    /// The job.
    pub id: JobId,
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// Any JSON result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub result: Option<Box<RawValue>>,
}

/// `POST /v1/jobs/complete`: many completions in one request and one commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteBatchRequest {
    /// The completions.
    pub jobs: Vec<CompleteItem>,
}

/// One failure within `POST /v1/jobs/fail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailItem {
    /// The job.
    pub id: JobId,
    /// The claim's fencing token.
    pub lease_token: LeaseToken,
    /// What went wrong.
    pub error: String,
    /// Retry after this delay instead of the job's backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<DurationSpec>,
    /// `false`: do not retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// `POST /v1/jobs/fail`: many failures in one request and one commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailBatchRequest {
    /// The failures.
    pub jobs: Vec<FailItem>,
}

/// Per-job answer within a batch completion or failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishResult {
    /// The job.
    pub id: JobId,
    /// True when the report was applied.
    pub ok: bool,
    /// The job's state afterwards (when applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Why it was refused: `lease_mismatch` (stale token, job rescued or already finished) or `not_found`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Answer of the batch completion and failure endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishBatchResponse {
    /// One entry per item, in request order.
    pub jobs: Vec<FinishResult>,
}

/// A queue as `GET /v1/queues` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Paused queues hand out no jobs.
    pub paused: bool,
    /// Jobs per state (every state is present).
    pub counts: BTreeMap<JobState, u64>,
    /// Age of the oldest available job, in milliseconds (absent when none is available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_available_age_ms: Option<u64>,
    /// The queue's limits (absent when it has none).
    #[serde(default, skip_serializing_if = "QueueLimits::is_unlimited")]
    pub limits: QueueLimits,
    /// Live usage of the limits: present on single-queue reads and answers of `PATCH /v1/queues/{queue}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<QueueUsage>,
}

/// How much of its limits a queue uses right now, and which groups wait most.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueUsage {
    /// Running jobs of the queue.
    pub running: u64,
    /// Groups that have at least one running job.
    pub groups_running: u64,
    /// When the queue's throttle lets the next job start (absent when it allows one now or has no throttle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_next_at: Option<Timestamp>,
    /// The groups with most available jobs (at most 10), most first.
    #[serde(default)]
    pub top_groups: Vec<GroupUsage>,
}

/// One group of a queue, for [`QueueUsage::top_groups`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupUsage {
    /// The group.
    pub group: String,
    /// Its available jobs.
    pub available: u64,
    /// Its running jobs.
    pub running: u64,
}

/// Answer of `GET /v1/queues`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueList {
    /// Every queue that has jobs or was paused.
    pub queues: Vec<QueueInfo>,
}

/// An error response (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` style tags: `urn:offload:problem:{code}`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code, e.g. `invalid_field`, `lease_mismatch`.
    pub code: String,
    /// Human explanation naming the field or object concerned.
    pub detail: String,
    /// JSON path of the offending field, when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Answer of `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` when the store answers.
    pub status: String,
    /// Server version.
    pub version: String,
}
