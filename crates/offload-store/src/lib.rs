//! The storage seam: every operation Offload performs on its database, as one trait.
//!
//! Read top to bottom, [`Store`] is the list of everything the system does to its data. Each operation takes
//! one params struct and is atomic. Implementations own their SQL and migrations, and decide nothing: state
//! transitions come from [`offload_core::state`]. Every implementation must pass the shared
//! [`conformance`] suite (feature `conformance`), which is the executable definition of this contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use offload_core::api::{HeartbeatResponse, QueueInfo};
use offload_core::state::{Failure, TransitionError};
use offload_core::{ClaimedJob, Job, JobId, JobState, LeaseToken, NewJob, Progress, Timestamp};
use serde_json::value::RawValue;

#[cfg(feature = "conformance")]
pub mod conformance;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The job (or other object) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An idempotency key is already used by a job created from a different request.
    #[error("idempotency key `{key}` is already used by job {existing} with a different request")]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// The job that holds it.
        existing: JobId,
    },
    /// The lease token does not match the job's current attempt (stale worker, rescued or finished job).
    #[error("lease token does not match the job's current attempt")]
    LeaseMismatch,
    /// The job's state does not allow the operation.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The database cannot be reached or the store is shutting down; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the database reported.
    #[error("store error: {0}")]
    Internal(String),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A shared, dynamically chosen store (SQLite or PostgreSQL, picked from configuration at start).
pub type DynStore = Arc<dyn Store>;

/// `job_insert`: store jobs atomically (all or none).
#[derive(Debug, Clone)]
pub struct JobInsertParams {
    /// The jobs, already validated.
    pub jobs: Vec<NewJob>,
}

/// What `job_insert` did with one job, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The new job's id, or the existing job's id for an idempotent replay.
    pub id: JobId,
    /// State right after the insert (for a replay: the existing job's current state).
    pub state: JobState,
    /// The resolved due time.
    pub run_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// True when an idempotency key matched an existing job created from the same request.
    pub duplicate: bool,
}

/// `job_list`: a filtered page, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobListParams {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this job name.
    pub name: Option<String>,
    /// Only jobs with this tag key and value.
    pub tag: Option<(String, String)>,
    /// Only jobs older than this one (keyset cursor).
    pub before: Option<JobId>,
    /// Page size (callers bound it).
    pub limit: u32,
}

/// `job_claim`: hand up to `max_jobs` available jobs of a queue to a worker.
#[derive(Debug, Clone)]
pub struct JobClaimParams {
    /// The queue.
    pub queue: String,
    /// Recorded on the attempt.
    pub worker_id: String,
    /// Upper bound on jobs returned.
    pub max_jobs: u32,
}

/// `job_heartbeat`: extend a lease, record progress.
#[derive(Debug, Clone)]
pub struct JobHeartbeatParams {
    /// The job.
    pub id: JobId,
    /// Must match the current attempt.
    pub lease_token: LeaseToken,
    /// New progress, if reported.
    pub progress: Option<Progress>,
}

/// How a worker ended an attempt.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Success, with an optional result.
    Complete {
        /// Any JSON result.
        result: Option<Box<RawValue>>,
    },
    /// Failure; the retry policy decides what follows.
    Fail(Failure),
}

/// One item of `job_finish`.
#[derive(Debug, Clone)]
pub struct FinishItem {
    /// The job.
    pub id: JobId,
    /// Must match the current attempt.
    pub lease_token: LeaseToken,
    /// How it ended.
    pub finish: Finish,
}

/// `job_finish`: apply many completions and failures in one transaction; each item stands alone (a stale
/// token on one does not stop the others).
#[derive(Debug, Clone)]
pub struct JobFinishParams {
    /// The items, answered in this order.
    pub items: Vec<FinishItem>,
}

/// Per-item answer of `job_finish`.
pub type FinishOutcome = Result<Finished, StoreError>;

/// An applied completion or failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The job.
    pub id: JobId,
    /// Its queue (so the engine can wake claimers when a retry is due at once).
    pub queue: String,
    /// The state it moved to.
    pub state: JobState,
}

/// `job_stage_due`: move due `scheduled` and `retrying` jobs to `available`.
#[derive(Debug, Clone)]
pub struct JobStageParams {
    /// Most jobs to move in one call.
    pub limit: u32,
}

/// What `job_stage_due` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Jobs made available, per queue.
    pub staged: Vec<(String, u64)>,
    /// The earliest due time still waiting, so the stager can sleep until then.
    pub next_due_at: Option<Timestamp>,
}

/// `job_rescue_expired`: end attempts whose lease ran out, as failures with reason "lease expired".
#[derive(Debug, Clone)]
pub struct JobRescueParams {
    /// Most jobs to rescue in one call.
    pub limit: u32,
}

/// What `job_rescue_expired` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Jobs rescued, with the state each moved to.
    pub rescued: Vec<Finished>,
}

/// `job_prune`: delete finished jobs older than their state's retention.
#[derive(Debug, Clone)]
pub struct JobPruneParams {
    /// Keep succeeded jobs this long after they finished.
    pub succeeded: Duration,
    /// Keep dead jobs this long.
    pub dead: Duration,
    /// Keep cancelled jobs this long.
    pub cancelled: Duration,
    /// Most jobs to delete in one call.
    pub limit: u32,
}

/// `queue_set_paused`.
#[derive(Debug, Clone)]
pub struct QueueSetPausedParams {
    /// The queue (created if unknown, so a queue can be paused before its first job).
    pub queue: String,
    /// Pause or resume.
    pub paused: bool,
}

/// `leader_attempt_elect`: take or renew the lease on a named piece of singleton work.
#[derive(Debug, Clone)]
pub struct LeaderElectParams {
    /// The singleton's name, e.g. `maintenance`.
    pub name: String,
    /// This node's identity (random per process).
    pub node_id: String,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
}

/// `leader_resign`: give up a lease this node holds, so another node can take over at once.
#[derive(Debug, Clone)]
pub struct LeaderResignParams {
    /// The singleton's name.
    pub name: String,
    /// This node's identity.
    pub node_id: String,
}

/// Result of an election attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// True when this node holds the lease now.
    pub is_leader: bool,
    /// Increases every time the lease changes hands; a fencing value for singleton work.
    pub term: i64,
    /// When the current holder's lease ends.
    pub expires_at: Timestamp,
}

/// A hint that jobs may have become claimable through a write this process did not make itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wakeup {
    /// Jobs became available in this queue.
    Queue(String),
    /// Anything may have changed: the signal was (re)established, and hints may have been missed meanwhile.
    All,
}

/// Every operation Offload performs on its database.
///
/// Each method is atomic. Times that decide correctness (due, lease expiry) come from the store's own clock,
/// [`Store::now`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The store's current time: the instant due times and lease expiries are judged against.
    fn now(&self) -> Timestamp;

    /// Checks that the database answers (health checks).
    async fn ping(&self) -> Result<()>;

    /// Inserts jobs, all or none, committed durably before returning. A job whose idempotency key is already
    /// held by a job created from the same request is not inserted; the existing job is reported with
    /// `duplicate: true`. The same key with a different request fails the whole call with
    /// [`StoreError::IdempotencyConflict`].
    async fn job_insert(&self, p: JobInsertParams) -> Result<Vec<Inserted>>;

    /// One job with its attempt history (including a synthesized entry for a running attempt).
    async fn job_get(&self, id: JobId) -> Result<Option<Job>>;

    /// A page of jobs matching the filters, newest first, without attempt histories.
    async fn job_list(&self, p: JobListParams) -> Result<Vec<Job>>;

    /// Claims up to `max_jobs` available jobs of an unpaused queue, highest priority first, then oldest due
    /// first. Each gets `attempt + 1`, a fresh lease token and a lease of its `timeout`. Never hands one job
    /// to two callers.
    async fn job_claim(&self, p: JobClaimParams) -> Result<Vec<ClaimedJob>>;

    /// Extends a running job's lease by its timeout from now and records progress. Fails with
    /// [`StoreError::LeaseMismatch`] when the token is stale, [`StoreError::NotFound`] for an unknown job.
    async fn job_heartbeat(&self, p: JobHeartbeatParams) -> Result<HeartbeatResponse>;

    /// Completes or fails attempts in one transaction; each item is answered on its own. The attempt is
    /// recorded in the history; failures follow [`offload_core::state::after_failure`].
    async fn job_finish(&self, p: JobFinishParams) -> Result<Vec<FinishOutcome>>;

    /// Cancels a job per [`offload_core::state::cancel`]; returns the job afterwards.
    async fn job_cancel(&self, id: JobId) -> Result<Job>;

    /// Puts a dead or cancelled job back to available per [`offload_core::state::manual_retry`].
    async fn job_retry(&self, id: JobId) -> Result<Job>;

    /// Deletes a job that is not running, with its history.
    async fn job_delete(&self, id: JobId) -> Result<()>;

    /// Moves due scheduled and retrying jobs to available.
    async fn job_stage_due(&self, p: JobStageParams) -> Result<StageReport>;

    /// Ends expired leases as failed attempts ("lease expired"); the job retries, dies, or (when a cancel
    /// was requested) is cancelled.
    async fn job_rescue_expired(&self, p: JobRescueParams) -> Result<RescueReport>;

    /// Deletes finished jobs past their retention; returns how many.
    async fn job_prune(&self, p: JobPruneParams) -> Result<u64>;

    /// Every known queue with counts per state, from maintained counters (never a table scan).
    async fn queue_list(&self) -> Result<Vec<QueueInfo>>;

    /// Pauses or resumes a queue; returns it afterwards.
    async fn queue_set_paused(&self, p: QueueSetPausedParams) -> Result<QueueInfo>;

    /// Takes the named lease if it is free or expired, renews it if this node holds it.
    async fn leader_attempt_elect(&self, p: LeaderElectParams) -> Result<Leadership>;

    /// Releases the named lease if this node holds it.
    async fn leader_resign(&self, p: LeaderResignParams) -> Result<()>;

    /// Finishes pending writes and closes connections. Later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);

    /// Wake-ups for jobs made available by writers outside this process (other servers on the same database,
    /// SQL functions called by applications), so idle claimers need not wait for their poll. Hints only: a
    /// claimer always claims through the store. `None` (the default): the store has no such writers, because
    /// every write goes through this process, which wakes its own claimers.
    fn subscribe_available(&self) -> Option<tokio::sync::broadcast::Receiver<Wakeup>> {
        None
    }
}
