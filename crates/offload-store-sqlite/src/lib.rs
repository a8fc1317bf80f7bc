//! Offload's embedded SQLite store: one file, WAL, one writer with group commit, a read pool.
//!
//! [`SqliteStore`] implements [`Store`]. Every write goes to a single writer task that owns the only write
//! connection and commits whole groups of queued commands at once (see `writer`); reads use a separate pool of
//! read-only connections, which WAL lets run beside the writer. Durability: `synchronous=FULL`, so an `Ok`
//! from a write means the data is on disk.
//!
//! Module map: `schema` (migrations, connection settings), `writer` (group commit), `jobs_insert` (with
//! debounce), `leases` (claim, heartbeat), `claim_limited` (claims of queues with limits), `flow` (a queue's
//! limits and usage as stored), `push` (the push dispatcher's claims), `push_failures` (recent push failures
//! per destination), `settings`, `jobs_finish` (complete, fail, rescue), `jobs_manage` (cancel, retry,
//! delete), `maintenance` (stage, prune), `jobs_read`, `queues`, `leader`, `schedules` (define, read, due) and
//! `schedule_fire` (ticks); durable functions: `functions` (registry, app sync), `events` (store and fan out),
//! `runs` (reads, cancel, retry, records within a lease, wake-ups, pruning), `run_calls` (a run's calls, its
//! end, its parked steps), `run_answer` (a call's answer applied with its job's end) and `run_rows` (a run's
//! rows); `logs` holds log lines of jobs and runs; `codec` maps values, `batch` runs multi-row statements, `error` maps database
//! errors; `lock` holds the exclusive lock on the file that makes its server the only one.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use offload_core::api::{HeartbeatResponse, QueueInfo};
use offload_core::cron::ScheduleRecord;
use offload_core::function::event::EventId;
use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunId;
use offload_core::{Clock, Job, JobId, SystemClock, Timestamp};
use offload_store::{
    AppSyncParams, AppSynced, EventListParams, EventRecord, EventSendParams, EventSendReport,
    FunctionListParams, FunctionPut, FunctionPutParams, FunctionRecord, RunListParams,
    RunPruneParams, RunRecord, RunRecordStepsParams, RunWakeParams, RunWakeReport, StepRecord,
};
use offload_store::{ClaimOutcome, LogAppendParams, LogReadParams, QueueSetLimitsParams};
use offload_store::{
    DueSchedules, FireOutcome, ScheduleDeleteParams, ScheduleDueParams, ScheduleFireParams,
    ScheduleGetParams, ScheduleListParams, ScheduleSetPausedParams, ScheduleTriggerParams,
    ScheduleTriggered, ScheduleUpsertParams, ScheduleUpserted,
};
use offload_store::{
    FinishOutcome, Inserted, JobClaimParams, JobClaimPushParams, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobPruneParams, JobRescueParams,
    JobStageParams, LeaderElectParams, LeaderResignParams, Leadership, PushFailure,
    PushFailuresParams, PushJob, QueueSetPausedParams, QueueThroughputParams, RescueReport, Result,
    SettingInitParams, StageReport, Store, ThroughputBucket,
};
use offload_store::{FunctionCronFireParams, FunctionCronReport};
use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool, SqlitePoolOptions};

mod batch;
mod claim_limited;
mod codec;
mod counts;
mod drift;
mod error;
mod events;
mod flow;
mod function_cron;
mod functions;
mod jobs_finish;
mod jobs_insert;
mod jobs_manage;
mod jobs_read;
mod leader;
mod leases;
mod lock;
mod logs;
mod maintenance;
mod push;
mod push_failures;
mod queues;
mod run_answer;
mod run_calls;
mod run_rows;
mod runs;
mod schedule_fire;
mod schedules;
mod schema;
mod settings;
mod writer;

#[cfg(test)]
mod plans;

use error::db;
use writer::Writer;

/// How to open a [`SqliteStore`]: which file, which clock, how many readers.
#[derive(Clone)]
pub struct SqliteOptions {
    /// The database file; created (with its schema) if missing.
    pub path: PathBuf,
    /// The clock that decides due times and lease expiry; tests pass a [`offload_core::ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// Connections in the read pool (reads never wait for the writer, only for each other).
    pub read_connections: u32,
    /// Hold an exclusive lock on the file for the store's life (default): opening fails at once while another
    /// store holds it, and leases recorded by earlier processes are taken over at once. Off only for short
    /// commands that read beside a running server.
    pub exclusive: bool,
    /// Limits on what a run records when a call's answer is applied with its job's end (default: the documented
    /// limits).
    pub record_limits: RecordLimits,
}

impl SqliteOptions {
    /// Options for the file at `path`, with the system clock and 4 read connections.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            clock: Arc::new(SystemClock),
            read_connections: 4,
            exclusive: true,
            record_limits: RecordLimits::default(),
        }
    }

    /// The same options without the exclusive lock (see [`SqliteOptions::exclusive`]).
    pub fn shared(mut self) -> Self {
        self.exclusive = false;
        self
    }

    /// The same options with other limits on what runs record.
    pub fn with_record_limits(mut self, limits: RecordLimits) -> Self {
        self.record_limits = limits;
        self
    }

    /// The same options with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("path", &self.path)
            .field("read_connections", &self.read_connections)
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

/// How the write connection makes commits durable (see [`SqliteStore::durability`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `wal` for every store this crate opens.
    pub journal_mode: String,
    /// `full`: every commit is fsynced before a write returns.
    pub synchronous: String,
}

/// The SQLite implementation of [`Store`]: the default, zero-setup database of a single Offload node.
pub struct SqliteStore {
    clock: Arc<dyn Clock>,
    record_limits: RecordLimits,
    writer: Writer,
    reads: SqlitePool,
    closed: AtomicBool,
    /// Node ids whose leases were recorded before this store locked the file: their processes are gone.
    stale_leaders: Arc<HashSet<String>>,
    /// Released on close, after every connection.
    lock: std::sync::Mutex<Option<lock::FileLock>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database (creating the file if missing), applies pending migrations and starts the writer.
    /// With [`SqliteOptions::exclusive`], first takes the file's lock (failing at once if another server holds
    /// it). When the schema is current, opening writes nothing. Must be called inside a Tokio runtime.
    pub async fn open(options: SqliteOptions) -> Result<Self> {
        let lock = match options.exclusive {
            true => Some(lock::acquire(&options.path)?),
            false => None,
        };
        let mut conn = SqliteConnection::connect_with(&schema::write_options(&options.path))
            .await
            .map_err(db)?;
        schema::migrator()
            .run(&mut conn)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => db(e),
                e => offload_store::StoreError::Internal(format!("migration failed: {e}")),
            })?;
        let stale_leaders = match lock {
            Some(_) => leader::holders(&mut conn).await?,
            None => HashSet::new(),
        };
        let reads = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(schema::read_options(&options.path))
            .await
            .map_err(db)?;
        let writer = Writer::start(conn, options.clock.clone()).await?;
        Ok(Self {
            clock: options.clock,
            record_limits: options.record_limits,
            writer,
            reads,
            closed: AtomicBool::new(false),
            stale_leaders: Arc::new(stale_leaders),
            lock: std::sync::Mutex::new(lock),
        })
    }

    /// The write connection's durability settings as SQLite reports them, for startup logs and tests.
    pub async fn durability(&self) -> Result<Durability> {
        self.writer
            .run(true, |c, _, _| {
                Box::pin(async move {
                    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                        .fetch_one(&mut *c)
                        .await
                        .map_err(db)?;
                    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(&mut *c)
                        .await
                        .map_err(db)?;
                    let synchronous = match synchronous {
                        0 => "off",
                        1 => "normal",
                        2 => "full",
                        3 => "extra",
                        _ => "unknown",
                    };
                    Ok(Durability {
                        journal_mode,
                        synchronous: synchronous.to_owned(),
                    })
                })
            })
            .await
    }

    async fn read(&self) -> Result<PoolConnection<Sqlite>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(offload_store::StoreError::closed());
        }
        self.reads.acquire().await.map_err(db)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.read().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn job_insert(&self, p: JobInsertParams) -> Result<Vec<Inserted>> {
        if p.jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.insert(p.jobs).await
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>> {
        let mut conn = self.read().await?;
        let Some(mut job) = jobs_read::get_job(&mut conn, id).await? else {
            return Ok(None);
        };
        if job.state == offload_core::JobState::Available {
            let now = self.clock.now();
            job.waiting_for =
                flow::waiting_for(&mut conn, now, &job.queue, job.group.as_deref()).await?;
        }
        Ok(Some(job))
    }

    async fn job_list(&self, p: JobListParams) -> Result<Vec<Job>> {
        jobs_read::list_jobs(&mut *self.read().await?, &p).await
    }

    async fn job_claim_next(&self, p: JobClaimParams) -> Result<ClaimOutcome> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(leases::claim(c, now, p, counts))
            })
            .await
    }

    async fn job_claim_push(&self, p: JobClaimPushParams) -> Result<Vec<PushJob>> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(push::claim(c, now, p, counts))
            })
            .await
    }

    async fn job_heartbeat(&self, p: JobHeartbeatParams) -> Result<HeartbeatResponse> {
        self.writer
            .run(true, move |c, _, now| {
                Box::pin(leases::heartbeat(c, now, p))
            })
            .await
    }

    async fn job_finish(&self, p: JobFinishParams) -> Result<Vec<FinishOutcome>> {
        if p.items.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.finish(p.items, self.record_limits).await
    }

    async fn job_cancel(&self, id: JobId) -> Result<Job> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(jobs_manage::cancel(c, now, id, counts))
            })
            .await
    }

    async fn job_retry(&self, id: JobId) -> Result<Job> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(jobs_manage::retry(c, now, id, counts))
            })
            .await
    }

    async fn job_delete(&self, id: JobId) -> Result<()> {
        self.writer
            .run(false, move |c, counts, _| {
                Box::pin(jobs_manage::delete(c, id, counts))
            })
            .await
    }

    async fn job_stage_due(&self, p: JobStageParams) -> Result<StageReport> {
        self.writer
            .run(true, move |c, counts, now| {
                Box::pin(maintenance::stage(c, now, p, counts))
            })
            .await
    }

    async fn job_rescue_expired(&self, p: JobRescueParams) -> Result<RescueReport> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(jobs_finish::rescue(c, now, p, counts))
            })
            .await
    }

    async fn job_prune(&self, p: JobPruneParams) -> Result<u64> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(maintenance::prune(c, now, p, counts))
            })
            .await
    }

    async fn queue_list(&self) -> Result<Vec<QueueInfo>> {
        queues::list(&mut *self.read().await?, self.clock.now(), None).await
    }

    async fn queue_throughput(&self, p: QueueThroughputParams) -> Result<Vec<ThroughputBucket>> {
        queues::throughput(&mut *self.read().await?, p).await
    }

    async fn queue_set_paused(&self, p: QueueSetPausedParams) -> Result<QueueInfo> {
        self.writer
            .run(true, move |c, _, now| {
                Box::pin(queues::set_paused(c, now, p))
            })
            .await
    }

    async fn queue_set_limits(&self, p: QueueSetLimitsParams) -> Result<QueueInfo> {
        self.writer
            .run(false, move |c, _, now| {
                Box::pin(queues::set_limits(c, now, p))
            })
            .await
    }

    async fn flow_counters_repair(&self) -> Result<Vec<offload_store::CounterRepair>> {
        self.writer
            .run(false, move |c, counts, _| {
                Box::pin(drift::repair(c, counts))
            })
            .await
    }

    async fn queue_held(&self, queue: &str) -> Result<offload_core::flow::held::HeldJobs> {
        flow::held(&mut *self.read().await?, self.clock.now(), queue).await
    }

    async fn queue_get(&self, name: &str) -> Result<Option<QueueInfo>> {
        queues::get_one(&mut *self.read().await?, self.clock.now(), name).await
    }

    async fn push_failures(&self, p: PushFailuresParams) -> Result<Vec<PushFailure>> {
        push_failures::list(&mut *self.read().await?, p).await
    }

    async fn setting_init(&self, p: SettingInitParams) -> Result<String> {
        // Read first: a setting that exists needs no write (a full disk must not stop a restart).
        if let Some(value) = settings::get(&mut *self.read().await?, &p.name).await? {
            return Ok(value);
        }
        self.writer
            .run(true, move |c, _, now| Box::pin(settings::init(c, now, p)))
            .await
    }

    async fn leader_attempt_elect(&self, p: LeaderElectParams) -> Result<Leadership> {
        let stale = self.stale_leaders.clone();
        self.writer
            .run(true, move |c, _, now| {
                Box::pin(async move { leader::elect(c, now, p, &stale).await })
            })
            .await
    }

    async fn leader_resign(&self, p: LeaderResignParams) -> Result<()> {
        self.writer
            .run(true, move |c, _, now| Box::pin(leader::resign(c, now, p)))
            .await
    }

    async fn schedule_upsert(&self, p: ScheduleUpsertParams) -> Result<ScheduleUpserted> {
        self.writer
            .run(false, move |c, _, now| {
                Box::pin(schedules::upsert(c, now, p))
            })
            .await
    }

    async fn schedule_get(&self, p: ScheduleGetParams) -> Result<Option<ScheduleRecord>> {
        schedules::get_one(&mut *self.read().await?, &p).await
    }

    async fn schedule_list(&self, p: ScheduleListParams) -> Result<Vec<ScheduleRecord>> {
        schedules::list(&mut *self.read().await?, &p).await
    }

    async fn schedule_delete(&self, p: ScheduleDeleteParams) -> Result<()> {
        self.writer
            .run(false, move |c, _, _| Box::pin(schedules::delete(c, p)))
            .await
    }

    async fn schedule_set_paused(&self, p: ScheduleSetPausedParams) -> Result<ScheduleRecord> {
        self.writer
            .run(false, move |c, _, now| {
                Box::pin(schedules::set_paused(c, now, p))
            })
            .await
    }

    async fn schedule_due(&self, p: ScheduleDueParams) -> Result<DueSchedules> {
        schedules::due(&mut *self.read().await?, p).await
    }

    async fn schedule_fire(&self, p: ScheduleFireParams) -> Result<Vec<FireOutcome>> {
        if p.fires.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(schedule_fire::fire(c, now, p.fires, counts))
            })
            .await
    }

    async fn schedule_trigger(&self, p: ScheduleTriggerParams) -> Result<ScheduleTriggered> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(schedule_fire::trigger(c, now, p, counts))
            })
            .await
    }

    async fn function_put(&self, p: FunctionPutParams) -> Result<FunctionPut> {
        self.writer
            .run(false, move |c, _, now| Box::pin(functions::put(c, now, p)))
            .await
    }

    async fn function_get(&self, id: &str) -> Result<Option<FunctionRecord>> {
        functions::get_one(&mut *self.read().await?, id).await
    }

    async fn function_list(&self, p: FunctionListParams) -> Result<Vec<FunctionRecord>> {
        functions::list(&mut *self.read().await?, &p).await
    }

    async fn function_delete(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.writer
            .run(true, move |c, _, now| {
                Box::pin(async move { functions::delete(c, now, &id).await })
            })
            .await
    }

    async fn app_sync(&self, p: AppSyncParams) -> Result<AppSynced> {
        self.writer
            .run(false, move |c, _, now| Box::pin(functions::sync(c, now, p)))
            .await
    }

    async fn event_send(&self, p: EventSendParams) -> Result<EventSendReport> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(events::send(c, now, p, counts))
            })
            .await
    }

    async fn event_get(&self, id: EventId) -> Result<Option<EventRecord>> {
        events::get_one(&mut *self.read().await?, id).await
    }

    async fn event_list(&self, p: EventListParams) -> Result<Vec<EventRecord>> {
        events::list(&mut *self.read().await?, &p).await
    }

    async fn run_get(&self, id: RunId) -> Result<Option<RunRecord>> {
        runs::get_one(&mut *self.read().await?, id).await
    }

    async fn run_list(&self, p: RunListParams) -> Result<Vec<RunRecord>> {
        runs::list(&mut *self.read().await?, &p).await
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        runs::steps(&mut *self.read().await?, id).await
    }

    async fn run_cancel(&self, id: RunId) -> Result<RunRecord> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(runs::cancel(c, now, id, counts))
            })
            .await
    }

    async fn run_retry(&self, id: RunId) -> Result<RunRecord> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(async move { runs::retry(c, now, id, counts, &mut Vec::new()).await })
            })
            .await
    }

    async fn run_record_steps(&self, p: RunRecordStepsParams) -> Result<RunRecord> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(runs::record_steps(c, now, p, counts))
            })
            .await
    }

    async fn run_wake_due(&self, p: RunWakeParams) -> Result<RunWakeReport> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(runs::wake(c, now, p, counts))
            })
            .await
    }

    async fn run_prune(&self, p: RunPruneParams) -> Result<u64> {
        self.writer
            .run(false, move |c, _, now| Box::pin(runs::prune(c, now, p)))
            .await
    }

    async fn function_cron_fire(&self, p: FunctionCronFireParams) -> Result<FunctionCronReport> {
        self.writer
            .run(false, move |c, counts, now| {
                Box::pin(function_cron::fire(c, now, p.limit, counts))
            })
            .await
    }

    async fn log_append(&self, p: LogAppendParams) -> Result<offload_core::log::LogAppended> {
        self.writer
            .run(false, move |c, _, now| Box::pin(logs::append(c, now, p)))
            .await
    }

    async fn log_read(&self, p: LogReadParams) -> Result<Vec<offload_core::log::LogLine>> {
        logs::read(&mut *self.read().await?, p).await
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Readers first, so the writer's connection is the last one and checkpoints the WAL as it closes.
        self.reads.close().await;
        self.writer.close().await;
        // Only now that no connection is left may another server open the file.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}
