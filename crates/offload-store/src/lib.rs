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
use offload_core::cron::{MissedTicks, Schedule, ScheduleRecord, ScheduleSource, Tick};
use offload_core::flow::limits::QueueLimitsPatch;
use offload_core::push::Target;
use offload_core::state::{Failure, TransitionError};
use offload_core::{ClaimedJob, Job, JobId, JobState, LeaseToken, NewJob, Progress, Timestamp};
use serde_json::value::RawValue;

pub mod calls;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod drift;
pub mod ending;
pub mod fanout;
pub mod firing;
pub mod function_cron;
pub mod functions;
pub mod idempotency;
pub mod push_cap;
pub mod schedules;

pub use drift::{CounterRepair, FlowCounter};
pub use function_cron::{CronFired, FunctionCronFireParams, FunctionCronReport};
pub use functions::*;
use offload_core::function::{event::EventId, run::RunId};

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
    /// The run's state does not allow the operation (cancel an ended run, retry a running one).
    #[error("cannot {action} a {} run", from.as_str())]
    RunState {
        /// The state the run is in.
        from: offload_core::function::run::RunState,
        /// What was attempted, in words ("cancel", "retry").
        action: &'static str,
    },
    /// The database cannot be reached or the store is shutting down; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the database reported.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// A value read from the database that does not fit the domain (never expected; never a panic).
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Internal(format!("unexpected data in the database: {what}"))
    }

    /// The store was closed, or the task that writes for it stopped.
    pub fn closed() -> Self {
        Self::Unavailable("the store is closed".to_owned())
    }

    /// The same failure again, for every command of a group that shares one transaction: whether it may be
    /// retried is kept, the message is carried.
    pub fn again(&self) -> Self {
        match self {
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            e => Self::Internal(e.to_string()),
        }
    }
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
    /// True when a debounce key matched a waiting job of the queue: that job (whose id this is) took the new
    /// payload and start, and nothing new was stored.
    pub debounced: bool,
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
    /// Only jobs of this group.
    pub group: Option<String>,
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

/// What a claim handed out, and when a limit lets a held job start.
#[derive(Debug, Clone, Default)]
pub struct ClaimOutcome {
    /// The claimed jobs, highest priority first, then oldest due.
    pub jobs: Vec<ClaimedJob>,
    /// When the queue's throttle lets the next held job start (for the claimer's next try); `None` when no
    /// job was held by a throttle.
    pub retry_at: Option<Timestamp>,
}

/// `queue_set_limits`: change a queue's limits.
#[derive(Debug, Clone)]
pub struct QueueSetLimitsParams {
    /// The queue (created when unknown).
    pub queue: String,
    /// The change, already validated ([`offload_core::flow::limits::QueueLimits::patched`] of the default
    /// accepts it); the store applies it to the stored limits in its transaction.
    pub patch: QueueLimitsPatch,
}

/// `job_claim_push`: hand available push jobs to the push dispatcher, never starting a job of a destination
/// that already runs `per_destination` push jobs, whichever server's dispatcher holds them (see
/// [`push_cap`]).
#[derive(Debug, Clone)]
pub struct JobClaimPushParams {
    /// Recorded on the attempt (the dispatcher's identity).
    pub worker_id: String,
    /// Upper bound on jobs returned.
    pub max_jobs: u32,
    /// Most push jobs of one destination running at once, across every server (the claimer's setting).
    pub per_destination: u32,
}

/// A push job handed to the dispatcher: the claim, plus where to deliver it.
#[derive(Debug, Clone)]
pub struct PushJob {
    /// The claimed attempt (id, payload, attempt number, lease token, lease deadline, queue).
    pub job: ClaimedJob,
    /// Where to deliver it.
    pub target: Target,
    /// The target's destination (`scheme://host:port`), which the concurrency cap counts by.
    pub destination: String,
}

/// `setting_init`: a named server setting, created with `value` unless it exists.
#[derive(Debug, Clone)]
pub struct SettingInitParams {
    /// The setting's name, e.g. `push.signing_secret`.
    pub name: String,
    /// The value to store when the setting does not exist yet.
    pub value: String,
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
    /// Run the job again after `delay` without using up an attempt, per [`offload_core::state::after_snooze`].
    Snooze {
        /// How long until the job is available again.
        delay: Duration,
    },
    /// The worker ends the job as cancelled, per [`offload_core::state::after_worker_cancel`].
    Cancel {
        /// Why, kept as the attempt's error.
        reason: String,
    },
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
    /// When the attempt that just ended started (for run-time metrics).
    pub started_at: Timestamp,
    /// For a call job of a run that had not ended: what its end did to the run (for run and step metrics).
    pub run: Option<RunChange>,
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

/// `queue_throughput`: how many attempts ended per queue and minute.
#[derive(Debug, Clone)]
pub struct QueueThroughputParams {
    /// Only minutes that end after this instant (the minute holding it is included).
    pub since: Timestamp,
}

/// Attempts of one queue that ended within one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThroughputBucket {
    /// The queue.
    pub queue: String,
    /// The minute's first instant (whole minutes since the Unix epoch).
    pub minute: Timestamp,
    /// Attempts completed by their worker.
    pub succeeded: u64,
    /// Attempts that failed (reported by the worker or ended by an expired lease), whether the job then
    /// retries or is dead.
    pub failed: u64,
}

/// `push_failures`: the push destinations whose deliveries failed recently (the dashboard's push page).
#[derive(Debug, Clone)]
pub struct PushFailuresParams {
    /// Only failed attempts that ended at or after this instant.
    pub since: Timestamp,
    /// Most destinations returned.
    pub limit: u32,
    /// Counting one destination's failures stops at this number (the count is then a lower bound).
    pub count_limit: u32,
}

/// Characters of an error that [`Store::push_failures`] returns at most (the dashboard shows an excerpt).
pub const PUSH_FAILURE_ERROR_CHARS: u32 = 1000;

/// Destinations [`Store::push_failures`] may examine per call, in name order (a bound on its work, far above
/// the number of endpoints an installation pushes to).
pub const PUSH_FAILURE_DESTINATIONS: u32 = 10_000;

/// One destination's recent failed push deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFailure {
    /// The destination, `scheme://host:port`.
    pub destination: String,
    /// Failed attempts that ended at or after `since`, counted up to `count_limit`.
    pub failures: u64,
    /// When the latest of them ended.
    pub last_failed_at: Timestamp,
    /// The latest one's job.
    pub job_id: JobId,
    /// The latest one's attempt number.
    pub attempt: u32,
    /// The latest one's error, cut to its first [`PUSH_FAILURE_ERROR_CHARS`] characters.
    pub error: Option<String>,
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

/// `schedule_upsert`: create a schedule, or replace the one with the same name.
#[derive(Debug, Clone)]
pub struct ScheduleUpsertParams {
    /// The validated definition. `paused: None` keeps a replaced schedule's pause state (new ones are active).
    pub schedule: Schedule,
    /// Where it was defined.
    pub source: ScheduleSource,
}

/// What `schedule_upsert` did.
#[derive(Debug, Clone)]
pub struct ScheduleUpserted {
    /// The schedule afterwards.
    pub record: ScheduleRecord,
    /// True when no schedule had this name.
    pub created: bool,
}

/// `schedule_get`: one schedule with its most recent ticks.
#[derive(Debug, Clone)]
pub struct ScheduleGetParams {
    /// The schedule.
    pub name: String,
    /// How many recent ticks to include, newest first.
    pub recent_ticks: u32,
}

/// `schedule_list`: schedules in name order, without ticks.
#[derive(Debug, Clone, Default)]
pub struct ScheduleListParams {
    /// Only names after this one (keyset cursor).
    pub after: Option<String>,
    /// Only schedules from this source.
    pub source: Option<ScheduleSource>,
    /// Page size (callers bound it).
    pub limit: u32,
}

/// `schedule_delete`: remove a schedule and its tick history (its jobs stay).
#[derive(Debug, Clone)]
pub struct ScheduleDeleteParams {
    /// The schedule.
    pub name: String,
}

/// `schedule_set_paused`: pause or resume a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleSetPausedParams {
    /// The schedule.
    pub name: String,
    /// Pause or resume.
    pub paused: bool,
}

/// `schedule_due`: unpaused schedules whose next fire time has come (or comes by `until`).
#[derive(Debug, Clone)]
pub struct ScheduleDueParams {
    /// Schedules whose next fire time is at or before this instant (the enqueuer looks a little ahead, to plan
    /// before the tick and fire at it).
    pub until: Timestamp,
    /// Most schedules to return, earliest next fire time first.
    pub limit: u32,
}

/// What `schedule_due` found.
#[derive(Debug, Clone, Default)]
pub struct DueSchedules {
    /// Schedules whose next fire time is at or before `until`, earliest first.
    pub due: Vec<ScheduleRecord>,
    /// The earliest next fire time after `until` of the unpaused schedules, so the enqueuer can sleep until
    /// it.
    pub next_fire_at: Option<Timestamp>,
}

/// One run the enqueuer decided for a tick.
#[derive(Debug, Clone)]
pub struct TickRun {
    /// The tick's fire time.
    pub fire_at: Timestamp,
    /// Its job (due at the fire time plus jitter); created only if the overlap policy allows.
    pub job: NewJob,
}

/// One schedule's due ticks, as the enqueuer planned them against one revision of the schedule.
#[derive(Debug, Clone)]
pub struct ScheduleFire {
    /// The schedule.
    pub name: String,
    /// The revision the plan was made for; a schedule changed since then is left alone.
    pub revision: i64,
    /// The next fire time the plan started from; a schedule whose next fire time moved is left alone.
    pub from: Timestamp,
    /// Ticks that may run, oldest first: each is decided by the schedule's overlap policy
    /// ([`offload_core::cron::overlap_decision`]) against its unfinished runs, counted in the transaction.
    pub runs: Vec<TickRun>,
    /// Late ticks that will not run.
    pub missed: Option<MissedTicks>,
    /// The next fire time to persist.
    pub next_fire_at: Option<Timestamp>,
}

/// `schedule_fire`: apply planned ticks of many schedules in one transaction.
#[derive(Debug, Clone)]
pub struct ScheduleFireParams {
    /// The plans, answered in this order.
    pub fires: Vec<ScheduleFire>,
}

/// A job created for a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredJob {
    /// The tick's fire time.
    pub fire_at: Timestamp,
    /// The job's queue.
    pub queue: String,
    /// What the insert decided.
    pub inserted: Inserted,
}

/// What `schedule_fire` did with one plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireOutcome {
    /// False when the schedule was deleted, paused, changed or already advanced since the plan: nothing was
    /// written for it.
    pub applied: bool,
    /// Jobs created.
    pub fired: Vec<FiredJob>,
    /// Ticks the overlap policy skipped.
    pub skipped: Vec<Timestamp>,
    /// Ticks recorded as missed.
    pub missed: u64,
    /// Ticks already recorded (by an earlier fire), so not run again.
    pub duplicates: u64,
}

/// `schedule_trigger`: run a schedule's job now, outside its cron expression.
#[derive(Debug, Clone)]
pub struct ScheduleTriggerParams {
    /// The schedule.
    pub name: String,
    /// The job, from the schedule's template.
    pub job: NewJob,
}

/// What `schedule_trigger` did.
#[derive(Debug, Clone)]
pub struct ScheduleTriggered {
    /// The recorded (manual) tick.
    pub tick: Tick,
    /// The job's queue.
    pub queue: String,
    /// The job created.
    pub inserted: Inserted,
}

/// Whose log lines: a job's or a run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOwner {
    /// A job's lines.
    Job(JobId),
    /// A run's lines.
    Run(RunId),
}

/// `log_append`: add lines to a job or a run, all or none.
#[derive(Debug, Clone)]
pub struct LogAppendParams {
    /// Whose lines.
    pub owner: LogOwner,
    /// Jobs only: when given, it must be the running attempt's token, and the lines record that attempt.
    pub lease_token: Option<LeaseToken>,
    /// The lines, validated ([`offload_core::log::validate_lines`]), in order.
    pub lines: Vec<offload_core::log::NewLogLine>,
}

/// `log_read`: a page of a job's or a run's lines, oldest first.
#[derive(Debug, Clone)]
pub struct LogReadParams {
    /// Whose lines.
    pub owner: LogOwner,
    /// Only lines with a greater `seq` (0: from the first kept).
    pub after: u64,
    /// Most lines returned (callers bound it).
    pub limit: u32,
}

/// A hint that jobs may have become claimable through a write this process did not make itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wakeup {
    /// Pull jobs became available in this queue.
    Queue(String),
    /// Push jobs became available (for the push dispatcher, whatever their queue).
    Push,
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

    /// Claims up to `max_jobs` available jobs of an unpaused queue, highest priority first, then oldest due,
    /// within the queue's limits (concurrency, group concurrency, throttle, fair order: admission by
    /// [`offload_core::flow::admission::admit`] over counters changed in the same transaction), and says when a
    /// throttle lets a held job start. A queue without limits claims on the fast path. Each job gets
    /// `attempt + 1`, a fresh lease token and a lease of its `timeout`. Never hands one job to two callers, and
    /// never a push job (one with a target): those only go to [`Store::job_claim_push`].
    async fn job_claim_next(&self, p: JobClaimParams) -> Result<ClaimOutcome>;

    /// [`Store::job_claim_next`] without the retry hint.
    async fn job_claim(&self, p: JobClaimParams) -> Result<Vec<ClaimedJob>> {
        Ok(self.job_claim_next(p).await?.jobs)
    }

    /// Claims up to `max_jobs` available push jobs of unpaused queues, highest priority first, then oldest
    /// due first, skipping jobs whose destination already runs `per_destination` push jobs (counting every
    /// server's and this claim's; exact across servers: push claims are serialised and count the running jobs
    /// in their transaction). Claims work as in [`Store::job_claim`]; pull jobs are never returned.
    async fn job_claim_push(&self, p: JobClaimPushParams) -> Result<Vec<PushJob>>;

    /// Extends a running job's lease by its timeout from now and records progress. Fails with
    /// [`StoreError::LeaseMismatch`] when the token is stale, [`StoreError::NotFound`] for an unknown job.
    async fn job_heartbeat(&self, p: JobHeartbeatParams) -> Result<HeartbeatResponse>;

    /// Completes, fails, snoozes or cancels attempts in one transaction; each item is answered on its own. The
    /// attempt is recorded in the history; failures follow [`offload_core::state::after_failure`], snoozes
    /// [`offload_core::state::after_snooze`] (which also raises `max_attempts` by one). A push job that ends
    /// succeeded or dead gets its callback job (per [`offload_core::push::callback_job`]) inserted in the same
    /// transaction.
    async fn job_finish(&self, p: JobFinishParams) -> Result<Vec<FinishOutcome>>;

    /// Cancels a job per [`offload_core::state::cancel`]; returns the job afterwards.
    async fn job_cancel(&self, id: JobId) -> Result<Job>;

    /// Puts a dead or cancelled job back to available per [`offload_core::state::manual_retry`]. A retried
    /// job leaves debouncing (its `debounce_key` is cleared): it is run as it is, and it never collides with a
    /// job of the same key that waits meanwhile.
    async fn job_retry(&self, id: JobId) -> Result<Job>;

    /// Deletes a job that is not running, with its history.
    async fn job_delete(&self, id: JobId) -> Result<()>;

    /// Moves due scheduled and retrying jobs to available.
    async fn job_stage_due(&self, p: JobStageParams) -> Result<StageReport>;

    /// Ends expired leases as failed attempts ("lease expired"); the job retries, dies, or (when a cancel
    /// was requested) is cancelled. A push job that dies gets its failure callback as in
    /// [`Store::job_finish`].
    async fn job_rescue_expired(&self, p: JobRescueParams) -> Result<RescueReport>;

    /// Deletes finished jobs past their retention; returns how many. Also drops throughput buckets older
    /// than a day.
    async fn job_prune(&self, p: JobPruneParams) -> Result<u64>;

    /// Every known queue with counts per state, from maintained counters (never a table scan).
    async fn queue_list(&self) -> Result<Vec<QueueInfo>>;

    /// Attempts ended per queue and minute, from minutes since `since`, ordered by queue then minute; minutes
    /// without an ended attempt are absent. Kept in maintained counters (never counted from jobs), so the
    /// answer is bounded by queues x minutes; buckets older than a day may be dropped by [`Store::job_prune`].
    async fn queue_throughput(&self, p: QueueThroughputParams) -> Result<Vec<ThroughputBucket>>;

    /// Pauses or resumes a queue; returns it afterwards.
    async fn queue_set_paused(&self, p: QueueSetPausedParams) -> Result<QueueInfo>;

    /// Changes a queue's limits in one transaction (a lowered limit lets running jobs finish); returns the
    /// queue afterwards, with its usage.
    async fn queue_set_limits(&self, p: QueueSetLimitsParams) -> Result<QueueInfo>;

    /// One queue with its counts, limits and live usage; `None` when the store knows no such queue.
    async fn queue_get(&self, name: &str) -> Result<Option<QueueInfo>>;

    /// Recounts every flow counter from the jobs it counts (per group: available and running jobs; per queue:
    /// available and running jobs, and any shortcut the store's limited claims read), sets each one that
    /// differs to the truth, and reports those ([`drift::drift`] decides). A clean store reports nothing. Safe
    /// while claims and ends run: a fix changes a counter by its drift, which later moves keep. Empty group
    /// rows are left to [`Store::job_prune`]. Cost: one pass over the available and running jobs.
    async fn flow_counters_repair(&self) -> Result<Vec<CounterRepair>>;

    /// How many of a queue's available jobs its limits hold now, by kind of limit, as
    /// [`offload_core::flow::held::held`] decides over the queue's usage and its first 1,000 groups with
    /// available jobs (least recently served first) plus the jobs without a group. Zero for a queue without
    /// limits, a paused or an unknown one. Cost: bounded by those groups, never a scan of the jobs.
    async fn queue_held(&self, queue: &str) -> Result<offload_core::flow::held::HeldJobs>;

    /// The push destinations whose deliveries failed recently, for the dashboard.
    ///
    /// A *failure* is an ended attempt with outcome `failed` of a job that has a target (expired leases,
    /// cancellations and snoozes are not failures), and its destination is its job's `destination`. The answer
    /// has one entry per destination with at least one failure that ended at or after `since`:
    /// - `failures`: how many such failures, counting no further than `count_limit`;
    /// - the latest failure (greatest `finished_at`; ties go to the greater job id, then the greater attempt
    ///   number): `last_failed_at` (its `finished_at`), `job_id`, `attempt`, and `error` cut to its first
    ///   [`PUSH_FAILURE_ERROR_CHARS`] characters.
    ///
    /// Entries are ordered by `last_failed_at`, newest first, then by destination; at most `limit` of them.
    /// Failures of deleted (or pruned) jobs are gone with them. As SQL, over PostgreSQL's tables:
    ///
    /// ```sql
    /// SELECT j.destination, least(count(*), $count_limit) AS failures, max(a.finished_at) AS last_failed_at
    ///      -- plus the job id, attempt and left(error, 1000) of the latest failure, ties as above
    /// FROM job_attempts a JOIN jobs j ON j.id = a.job_id
    /// WHERE a.outcome = 'failed' AND j.target IS NOT NULL AND a.finished_at >= $since
    /// GROUP BY j.destination
    /// ORDER BY last_failed_at DESC, j.destination
    /// LIMIT $limit
    /// ```
    ///
    /// Cost: never a scan of the jobs or attempts. Work is bounded by the destinations that have a stored
    /// failure (a store may examine only the first [`PUSH_FAILURE_DESTINATIONS`] of them in name order) plus
    /// `count_limit` index entries for each destination returned; the SQLite store keeps failed push attempts
    /// in an index by (destination, finished_at) for this.
    async fn push_failures(&self, p: PushFailuresParams) -> Result<Vec<PushFailure>>;

    /// Returns the named setting, storing `value` first if it does not exist (so every node, and every
    /// restart, sees the value stored first).
    async fn setting_init(&self, p: SettingInitParams) -> Result<String>;

    /// Takes the named lease if it is free or expired, renews it if this node holds it.
    async fn leader_attempt_elect(&self, p: LeaderElectParams) -> Result<Leadership>;

    /// Releases the named lease if this node holds it.
    async fn leader_resign(&self, p: LeaderResignParams) -> Result<()>;

    /// Creates a schedule or replaces the one with the same name. The next fire time follows
    /// [`offload_core::cron::next_fire_on_upsert`]; the revision grows on every replace.
    async fn schedule_upsert(&self, p: ScheduleUpsertParams) -> Result<ScheduleUpserted>;

    /// One schedule with its most recent ticks (newest first).
    async fn schedule_get(&self, p: ScheduleGetParams) -> Result<Option<ScheduleRecord>>;

    /// A page of schedules in name order, without ticks.
    async fn schedule_list(&self, p: ScheduleListParams) -> Result<Vec<ScheduleRecord>>;

    /// Deletes a schedule and its ticks; its jobs stay. [`StoreError::NotFound`] for an unknown name.
    async fn schedule_delete(&self, p: ScheduleDeleteParams) -> Result<()>;

    /// Pauses or resumes a schedule (its next fire time is kept, so a resume catches up per its policy);
    /// returns it afterwards.
    async fn schedule_set_paused(&self, p: ScheduleSetPausedParams) -> Result<ScheduleRecord>;

    /// Unpaused schedules whose next fire time is at or before `until`, and the earliest one after it.
    async fn schedule_due(&self, p: ScheduleDueParams) -> Result<DueSchedules>;

    /// Applies planned ticks, all plans in one transaction. For each plan whose schedule still has the
    /// planned revision and next fire time and is not paused: every run the overlap policy allows gets its
    /// job (carrying the schedule's name and the tick's fire time) and a `fired` tick; the others a `skipped`
    /// tick; the missed ticks one `missed` record; and the next fire time is persisted. A tick already
    /// recorded is never run again: ticks are unique per (schedule, fire time).
    async fn schedule_fire(&self, p: ScheduleFireParams) -> Result<Vec<FireOutcome>>;

    /// Creates the schedule's job now, recorded as a manual tick at the store's now; ignores the overlap
    /// policy and the pause state, and leaves the next fire time alone.
    async fn schedule_trigger(&self, p: ScheduleTriggerParams) -> Result<ScheduleTriggered>;

    // Durable functions (see [`functions`]).

    /// Registers or replaces a function (a function of another app moves to `p.app`).
    async fn function_put(&self, p: FunctionPutParams) -> Result<FunctionPut>;

    /// One registered function.
    async fn function_get(&self, id: &str) -> Result<Option<FunctionRecord>>;

    /// A page of registered functions.
    async fn function_list(&self, p: FunctionListParams) -> Result<Vec<FunctionRecord>>;

    /// Removes a function: it starts no more runs; its runs keep going. [`StoreError::NotFound`] if unknown.
    async fn function_delete(&self, id: &str) -> Result<()>;

    /// Replaces an app's whole set of functions in one transaction.
    async fn app_sync(&self, p: AppSyncParams) -> Result<AppSynced>;

    /// Stores events and fans them out, all in one transaction (see [`EventSendParams`]).
    async fn event_send(&self, p: EventSendParams) -> Result<EventSendReport>;

    /// One stored event, with the runs it started.
    async fn event_get(&self, id: EventId) -> Result<Option<EventRecord>>;

    /// A page of stored events, newest first.
    async fn event_list(&self, p: EventListParams) -> Result<Vec<EventRecord>>;

    /// One run.
    async fn run_get(&self, id: RunId) -> Result<Option<RunRecord>>;

    /// A page of runs, newest first.
    async fn run_list(&self, p: RunListParams) -> Result<Vec<RunRecord>>;

    /// A run's steps in the order they were first seen. [`StoreError::NotFound`] if the run is unknown.
    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>>;

    /// Cancels a run that has not ended: its waiting call jobs are cancelled, a running one is asked to stop;
    /// a parent waiting on it through `invoke` gets the step's error. [`StoreError::RunState`] when it
    /// has ended.
    async fn run_cancel(&self, id: RunId) -> Result<RunRecord>;

    /// Resumes a failed or cancelled run from where it stopped: its failed step's error record is removed,
    /// finished steps keep their results, and a call is enqueued at once. [`StoreError::RunState`] otherwise.
    async fn run_retry(&self, id: RunId) -> Result<RunRecord>;

    /// Records steps a pull worker ran within its call's lease (see [`RunRecordStepsParams`]).
    async fn run_record_steps(&self, p: RunRecordStepsParams) -> Result<RunRecord>;

    /// Resolves waits and invokes whose timeout passed.
    async fn run_wake_due(&self, p: RunWakeParams) -> Result<RunWakeReport>;

    /// Deletes ended runs and old events past their retention.
    async fn run_prune(&self, p: RunPruneParams) -> Result<u64>;

    /// Starts the runs of due cron ticks of registered functions, in one transaction: for each function whose
    /// persisted next fire time has come (locked, so several servers never fire a tick twice), stores a
    /// [`function_cron::CRON_EVENT`] event, starts a run of exactly that function, and persists the next fire
    /// time ([`function_cron::decide`]: after downtime one run, for the most recent tick).
    async fn function_cron_fire(&self, p: FunctionCronFireParams) -> Result<FunctionCronReport>;

    /// Appends log lines to a job or a run in one transaction, numbering them after its last line, and drops
    /// the lines older than the newest [`offload_core::log::MAX_LINES_KEPT`] (per
    /// [`offload_core::log::oldest_kept`]). A line without `at` gets the store's now. [`StoreError::NotFound`]
    /// for an unknown owner; [`StoreError::LeaseMismatch`] when a lease token is given and the job is not
    /// running that attempt (or the owner is a run). Lines go with their owner when it is deleted or pruned.
    async fn log_append(&self, p: LogAppendParams) -> Result<offload_core::log::LogAppended>;

    /// A job's or a run's lines with `seq` after `p.after`, oldest first, at most `p.limit`.
    /// [`StoreError::NotFound`] for an unknown owner.
    async fn log_read(&self, p: LogReadParams) -> Result<Vec<offload_core::log::LogLine>>;

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
