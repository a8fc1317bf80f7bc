//! Offload's PostgreSQL store: several servers on one database.
//!
//! [`PostgresStore`] implements [`Store`] on a connection pool. Everything lives in one schema (`offload` by
//! default). Servers coordinate only through the database:
//! - claims pick jobs with `FOR UPDATE SKIP LOCKED`, so no job goes to two workers and claimers never wait for
//!   each other (`leases`);
//! - enqueues and completions of concurrent requests share transactions (group commit, `batch`), so a
//!   flush of the write-ahead log is paid per group, not per request; every command still stands alone;
//! - queues that got available jobs are announced with NOTIFY and heard with LISTEN (`notify`), so idle
//!   claimers on every server wake at once; the engine's jittered poll is the backstop;
//! - due times and lease expiry are judged by the database's clock (`clock`), whatever the servers' clocks say;
//! - singleton work (maintenance) runs under a lease with a term (`leader`).
//!
//! Durability: an `Ok` from a write means its transaction committed (with the server's `synchronous_commit`,
//! `on` by default: flushed to disk). When PostgreSQL cannot be reached, operations fail with
//! [`StoreError::Unavailable`] and nothing is reported as written; the pool reconnects by itself once it is
//! back.
//!
//! Module map: `schema` (migrations, schema name, connection settings), `clock`, `batch` (group commit),
//! `notify` (LISTEN/NOTIFY), `jobs_insert`, `leases` (claim, heartbeat), `push` (the push dispatcher's claims),
//! `push_failures` (the dashboard's recent failures), `jobs_finish` (complete, fail, snooze, cancel, rescue), `jobs_manage` (cancel, retry, delete), `maintenance`
//! (stage, prune), `jobs_read`, `queues` (counts, throughput), `settings`, `leader`, `schedules` (cron schedule
//! definitions and ticks) and `schedule_fire` (the enqueuer's writes); durable functions: `functions` (the
//! registry), `events` (storing and fanning out events), `run_flow` (writing what happens to a run),
//! `runs_read` and `runs_manage` (cancel, retry, mid-lease records, wait timeouts, pruning); `logs` (log lines of
//! jobs and runs); `codec` maps values,
//! `counts` keeps the per-queue counts, `error` maps database errors; flow control: `flow` (queue limits, usage,
//! why a job waits), `flow_claim` (claims of limited queues, under their queue row's lock) and `debounce`
//! (enqueues that update a waiting job of their key).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use offload_core::api::{HeartbeatResponse, QueueInfo};
use offload_core::cron::ScheduleRecord;
use offload_core::function::event::EventId;
use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunId;
use offload_core::{Clock, Job, JobId, NewJob, Timestamp};
use offload_store::{
    AppSyncParams, AppSynced, EventListParams, EventRecord, EventSendParams, EventSendReport,
    FunctionListParams, FunctionPut, FunctionPutParams, FunctionRecord, RunListParams,
    RunPruneParams, RunRecord, RunRecordStepsParams, RunWakeParams, RunWakeReport, StepRecord,
};
use offload_store::{ClaimOutcome, LogAppendParams, LogReadParams, QueueSetLimitsParams};
use offload_store::{
    DueSchedules, FinishItem, FinishOutcome, FireOutcome, Inserted, JobClaimParams,
    JobClaimPushParams, JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams,
    JobPruneParams, JobRescueParams, JobStageParams, LeaderElectParams, LeaderResignParams,
    Leadership, PushFailure, PushFailuresParams, PushJob, QueueSetPausedParams,
    QueueThroughputParams, RescueReport, Result, ScheduleDeleteParams, ScheduleDueParams,
    ScheduleFireParams, ScheduleGetParams, ScheduleListParams, ScheduleSetPausedParams,
    ScheduleTriggerParams, ScheduleTriggered, ScheduleUpsertParams, ScheduleUpserted,
    SettingInitParams, StageReport, Store, StoreError, ThroughputBucket, Wakeup,
};
use offload_store::{FunctionCronFireParams, FunctionCronReport};
use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPoolOptions, Postgres};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

mod batch;
mod clock;
mod codec;
mod counts;
mod debounce;
mod drift;
mod error;
mod events;
mod flow;
mod flow_claim;
mod function_cron;
mod functions;
mod jobs_finish;
mod jobs_insert;
mod jobs_manage;
mod jobs_read;
mod leader;
mod leases;
mod logs;
mod maintenance;
mod notify;
#[cfg(test)]
mod plans;
mod push;
mod push_failures;
mod queues;
mod run_flow;
mod runs_manage;
mod runs_read;
mod schedule_fire;
mod schedules;
mod schema;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;

pub use schema::{DEFAULT_SCHEMA, drop_schema, migrate, validate_schema};

use batch::{Batcher, Limits};
use error::acquire;
use notify::{Listener, Notifier};

/// How to open a [`PostgresStore`].
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database?...` (libpq-style URLs; `PG*` environment variables fill
    /// in what the URL leaves out).
    pub url: String,
    /// The schema holding Offload's tables (created by the migrations).
    pub schema: String,
    /// Apply pending migrations on open (otherwise the schema must already be current).
    pub migrate: bool,
    /// The clock that decides due times and lease expiry. `None` (production): the database's clock. Tests pass
    /// a [`offload_core::ManualClock`].
    pub clock: Option<Arc<dyn Clock>>,
    /// Most connections in the pool (LISTEN and NOTIFY use one more each).
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing with [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// Limits on what a run may record, applied where the operation's params carry none (the end of a call,
    /// cancels, retries, wake-ups).
    pub record_limits: RecordLimits,
}

impl PostgresOptions {
    /// Options for the database at `url`: schema `offload`, migrate on open, the database clock, 16
    /// connections, 5 s to get one.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            migrate: true,
            clock: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            record_limits: RecordLimits::default(),
        }
    }

    /// The same options with another schema.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The same options with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("migrate", &self.migrate)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// `url` with its password replaced by `***`, for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// What every operation shares: the pool, the clock, the notifier.
struct Shared {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    closed: AtomicBool,
    notifier: Notifier,
    limits: RecordLimits,
    /// The queues this server found to have limits (a shortcut for their claims).
    limited: flow_claim::LimitedQueues,
}

impl Shared {
    /// Now, at the precision times are stored with.
    fn now(&self) -> Timestamp {
        codec::stored_precision(self.clock.now())
    }

    /// A pooled connection, unless the store is closed.
    async fn conn(&self) -> Result<PoolConnection<Postgres>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::closed());
        }
        self.pool.acquire().await.map_err(acquire)
    }
}

/// The PostgreSQL implementation of [`Store`]: one database shared by any number of Offload servers.
pub struct PostgresStore {
    shared: Arc<Shared>,
    schema: String,
    inserts: Batcher<Vec<NewJob>, Vec<Inserted>>,
    finishes: Batcher<Vec<FinishItem>, Vec<FinishOutcome>>,
    listener: Listener,
    background: Vec<AbortHandle>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("closed", &self.shared.closed)
            .finish_non_exhaustive()
    }
}

/// Connections idle at least this long are checked (a round trip) before they are used again.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Group bounds of enqueues: up to 10,000 jobs (one full batch request) per transaction.
const INSERT_GROUPS: Limits = Limits {
    max_commands: 512,
    max_weight: 10_000,
    parallel: 3,
};

/// Group bounds of completions and failures.
const FINISH_GROUPS: Limits = Limits {
    max_commands: 512,
    max_weight: 10_000,
    parallel: 3,
};

impl PostgresStore {
    /// Connects, applies pending migrations (unless told not to, in which case the schema must be current),
    /// reads the database clock and starts the background tasks. Must be called inside a Tokio runtime.
    pub async fn open(options: PostgresOptions) -> Result<Self> {
        let schema = options.schema.clone();
        validate_schema(&schema)
            .map_err(|m| StoreError::Internal(format!("schema `{schema}`: {m}")))?;
        if options.migrate {
            schema::migrate(&options.url, &schema).await?;
        }
        let connect = schema::connect_options(&options.url, &schema, false)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            // A round trip per operation is too dear to check busy connections; one that sat idle for a
            // while (and may have been cut meanwhile) is checked before use.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_CHECK {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(acquire)?;
        if !options.migrate {
            let mut conn = pool.acquire().await.map_err(acquire)?;
            schema::check_current(&mut conn, &schema).await?;
        }
        let mut background = Vec::new();
        let clock: Arc<dyn Clock> = match options.clock {
            Some(clock) => clock,
            None => {
                let clock = Arc::new(clock::DbClock::start(&pool).await?);
                background.push(spawn_clock_refresh(clock.clone(), pool.clone()));
                clock
            }
        };
        let (notifier, task) = Notifier::start(connect.clone(), schema::channel(&schema));
        background.push(task);
        let shared = Arc::new(Shared {
            pool,
            clock,
            closed: AtomicBool::new(false),
            notifier,
            limits: options.record_limits,
            limited: Default::default(),
        });
        Ok(Self {
            inserts: Batcher::start(INSERT_GROUPS, Vec::len, insert_work(shared.clone())),
            finishes: Batcher::start(FINISH_GROUPS, Vec::len, finish_work(shared.clone())),
            listener: Listener::new(connect, schema::channel(&schema)),
            shared,
            schema,
            background,
        })
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

fn spawn_clock_refresh(clock: Arc<clock::DbClock>, pool: PgPool) -> AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(clock::REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = clock.refresh(&pool).await {
                tracing::debug!(error = %e, "could not read the database clock; keeping the last reading");
            }
        }
    })
    .abort_handle()
}

/// The group work of enqueues: all commands in one statement (or transaction, with idempotency keys); if that
/// fails as a whole for a reason other than the database being unavailable, each command alone, so one bad
/// command cannot fail the others.
fn insert_work(shared: Arc<Shared>) -> batch::Work<Vec<NewJob>, Vec<Inserted>> {
    Arc::new(move |commands: Vec<Vec<NewJob>>| {
        let shared = shared.clone();
        Box::pin(async move { grouped(&shared, commands, insert_group).await })
    })
}

/// The group work of completions and failures, as [`insert_work`].
fn finish_work(shared: Arc<Shared>) -> batch::Work<Vec<FinishItem>, Vec<FinishOutcome>> {
    Arc::new(move |commands: Vec<Vec<FinishItem>>| {
        let shared = shared.clone();
        Box::pin(async move {
            let limits = shared.limits;
            grouped(&shared, commands, move |conn, now, cmds| {
                finish_group(conn, now, limits, cmds)
            })
            .await
        })
    })
}

/// A boxed future borrowing a connection.
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One attempt at a group: per-command answers and the queues to announce, or the group's failure.
type GroupResult<T> = Result<(Vec<Result<T>>, Vec<String>)>;

fn insert_group<'a>(
    conn: &'a mut PgConnection,
    now: Timestamp,
    commands: &'a [Vec<NewJob>],
) -> BoxFut<'a, GroupResult<Vec<Inserted>>> {
    Box::pin(async move {
        let out = jobs_insert::insert(conn, now, commands).await?;
        Ok((out.answers, out.announce))
    })
}

fn finish_group<'a>(
    conn: &'a mut PgConnection,
    now: Timestamp,
    limits: RecordLimits,
    commands: &'a [Vec<FinishItem>],
) -> BoxFut<'a, GroupResult<Vec<FinishOutcome>>> {
    Box::pin(async move {
        let out = jobs_finish::finish(conn, now, &limits, commands).await?;
        Ok((out.answers.into_iter().map(Ok).collect(), out.announce))
    })
}

/// Runs `work` on all `commands` at once; retries them one by one if the group failed for a reason that may be
/// one command's; announces the queues that got available jobs once committed. Commands already accepted are
/// run even while the store closes.
async fn grouped<C, T, W>(shared: &Shared, commands: Vec<C>, work: W) -> Vec<Result<T>>
where
    W: for<'a> Fn(&'a mut PgConnection, Timestamp, &'a [C]) -> BoxFut<'a, GroupResult<T>>,
{
    let mut conn = match shared.pool.acquire().await.map_err(acquire) {
        Ok(c) => c,
        Err(e) => return commands.iter().map(|_| Err(e.again())).collect(),
    };
    let mut attempt = 1;
    let error = loop {
        match work(&mut conn, shared.now(), &commands).await {
            Ok((answers, available)) => {
                shared.notifier.notify(available.iter().map(String::as_str));
                return answers;
            }
            // Aborted by the database for a deadlock (ends of calls of one run reported through several
            // servers lock the run's other calls): nothing was written, run the group again.
            Err(StoreError::Unavailable(m))
                if attempt < TRANSIENT_ATTEMPTS && error::is_retryable_message(&m) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1..20))).await;
            }
            Err(e) => break e,
        }
    };
    if commands.len() == 1 || matches!(error, StoreError::Unavailable(_)) {
        return commands.iter().map(|_| Err(error.again())).collect();
    }
    tracing::warn!(error = %error, "grouped write failed; retrying command by command");
    let mut answers = Vec::with_capacity(commands.len());
    for one in commands.chunks(1) {
        match work(&mut conn, shared.now(), one).await {
            Ok((mut a, available)) if a.len() == 1 => {
                shared.notifier.notify(available.iter().map(String::as_str));
                answers.push(a.remove(0));
            }
            Ok(_) => answers.push(Err(StoreError::Internal(
                "a write answered the wrong number of commands".to_owned(),
            ))),
            Err(e) => answers.push(Err(e)),
        }
    }
    answers
}

#[async_trait]
impl Store for PostgresStore {
    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.shared.conn().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn job_insert(&self, p: JobInsertParams) -> Result<Vec<Inserted>> {
        if p.jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.check_open()?;
        self.inserts.run(p.jobs).await
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>> {
        let mut conn = self.shared.conn().await?;
        let Some(mut job) = jobs_read::get_job(&mut conn, id).await? else {
            return Ok(None);
        };
        job.waiting_for = flow::waiting_for(&mut conn, self.shared.now(), &job).await?;
        Ok(Some(job))
    }

    async fn job_list(&self, p: JobListParams) -> Result<Vec<Job>> {
        jobs_read::list_jobs(&mut *self.shared.conn().await?, &p).await
    }

    async fn job_claim_next(&self, p: JobClaimParams) -> Result<ClaimOutcome> {
        let mut conn = self.shared.conn().await?;
        flow_claim::claim(&mut conn, self.shared.now(), &self.shared.limited, p).await
    }

    async fn job_claim_push(&self, p: JobClaimPushParams) -> Result<Vec<PushJob>> {
        let mut conn = self.shared.conn().await?;
        push::claim(&mut conn, self.shared.now(), p).await
    }

    async fn job_heartbeat(&self, p: JobHeartbeatParams) -> Result<HeartbeatResponse> {
        let mut conn = self.shared.conn().await?;
        leases::heartbeat(&mut conn, self.shared.now(), p).await
    }

    async fn job_finish(&self, p: JobFinishParams) -> Result<Vec<FinishOutcome>> {
        if p.items.is_empty() {
            return Ok(Vec::new());
        }
        self.check_open()?;
        self.finishes.run(p.items).await
    }

    async fn job_cancel(&self, id: JobId) -> Result<Job> {
        let mut conn = self.shared.conn().await?;
        let (job, available) =
            jobs_manage::cancel(&mut conn, self.shared.now(), &self.shared.limits, id).await?;
        self.notify(&available);
        Ok(job)
    }

    async fn job_retry(&self, id: JobId) -> Result<Job> {
        let mut conn = self.shared.conn().await?;
        let job = jobs_manage::retry(&mut conn, self.shared.now(), id).await?;
        self.shared.notifier.notify([job.queue.as_str()]);
        Ok(job)
    }

    async fn job_delete(&self, id: JobId) -> Result<()> {
        jobs_manage::delete(&mut *self.shared.conn().await?, id).await
    }

    async fn job_stage_due(&self, p: JobStageParams) -> Result<StageReport> {
        let mut conn = self.shared.conn().await?;
        let report = maintenance::stage(&mut conn, self.shared.now(), p).await?;
        self.shared
            .notifier
            .notify(report.staged.iter().map(|(q, _)| q.as_str()));
        Ok(report)
    }

    async fn job_rescue_expired(&self, p: JobRescueParams) -> Result<RescueReport> {
        let mut conn = self.shared.conn().await?;
        let (report, available) =
            jobs_finish::rescue(&mut conn, self.shared.now(), &self.shared.limits, p).await?;
        self.shared
            .notifier
            .notify(available.iter().map(String::as_str));
        Ok(report)
    }

    async fn job_prune(&self, p: JobPruneParams) -> Result<u64> {
        let mut conn = self.shared.conn().await?;
        maintenance::prune(&mut conn, self.shared.now(), p).await
    }

    async fn queue_list(&self) -> Result<Vec<QueueInfo>> {
        let mut conn = self.shared.conn().await?;
        queues::list(&mut conn, self.shared.now(), None).await
    }

    async fn queue_throughput(&self, p: QueueThroughputParams) -> Result<Vec<ThroughputBucket>> {
        queues::throughput(&mut *self.shared.conn().await?, p).await
    }

    async fn push_failures(&self, p: PushFailuresParams) -> Result<Vec<PushFailure>> {
        push_failures::list(&mut *self.shared.conn().await?, p).await
    }

    async fn setting_init(&self, p: SettingInitParams) -> Result<String> {
        let mut conn = self.shared.conn().await?;
        settings::init(&mut conn, self.shared.now(), p).await
    }

    async fn queue_set_paused(&self, p: QueueSetPausedParams) -> Result<QueueInfo> {
        let mut conn = self.shared.conn().await?;
        let paused = p.paused;
        let info = queues::set_paused(&mut conn, self.shared.now(), p).await?;
        if !paused {
            self.shared.notifier.notify([info.name.as_str()]);
        }
        Ok(info)
    }

    async fn queue_set_limits(&self, p: QueueSetLimitsParams) -> Result<QueueInfo> {
        let mut conn = self.shared.conn().await?;
        let info = flow::set_limits(&mut conn, self.shared.now(), p).await?;
        // Raised or cleared limits may let waiting jobs start.
        self.shared.notifier.notify([info.name.as_str()]);
        Ok(info)
    }

    async fn flow_counters_repair(&self) -> Result<Vec<offload_store::CounterRepair>> {
        let mut conn = self.shared.conn().await?;
        let fixes = drift::repair(&mut conn).await?;
        // Counts set right may free slots that held waiting jobs.
        let mut queues: Vec<&str> = fixes.iter().map(|f| f.queue.as_str()).collect();
        queues.dedup();
        self.shared.notifier.notify(queues);
        Ok(fixes)
    }

    async fn queue_held(&self, queue: &str) -> Result<offload_core::flow::held::HeldJobs> {
        flow::held(&mut *self.shared.conn().await?, self.shared.now(), queue).await
    }

    async fn queue_get(&self, name: &str) -> Result<Option<QueueInfo>> {
        flow::get_queue(&mut *self.shared.conn().await?, self.shared.now(), name).await
    }

    async fn leader_attempt_elect(&self, p: LeaderElectParams) -> Result<Leadership> {
        let mut conn = self.shared.conn().await?;
        leader::elect(&mut conn, self.shared.now(), p).await
    }

    async fn leader_resign(&self, p: LeaderResignParams) -> Result<()> {
        let mut conn = self.shared.conn().await?;
        leader::resign(&mut conn, self.shared.now(), p).await
    }

    async fn schedule_upsert(&self, p: ScheduleUpsertParams) -> Result<ScheduleUpserted> {
        let mut conn = self.shared.conn().await?;
        schedules::upsert(&mut conn, self.shared.now(), p).await
    }

    async fn schedule_get(&self, p: ScheduleGetParams) -> Result<Option<ScheduleRecord>> {
        schedules::get(&mut *self.shared.conn().await?, p).await
    }

    async fn schedule_list(&self, p: ScheduleListParams) -> Result<Vec<ScheduleRecord>> {
        schedules::list(&mut *self.shared.conn().await?, p).await
    }

    async fn schedule_delete(&self, p: ScheduleDeleteParams) -> Result<()> {
        schedules::delete(&mut *self.shared.conn().await?, p).await
    }

    async fn schedule_set_paused(&self, p: ScheduleSetPausedParams) -> Result<ScheduleRecord> {
        let mut conn = self.shared.conn().await?;
        schedules::set_paused(&mut conn, self.shared.now(), p).await
    }

    async fn schedule_due(&self, p: ScheduleDueParams) -> Result<DueSchedules> {
        schedules::due(&mut *self.shared.conn().await?, p).await
    }

    async fn schedule_fire(&self, p: ScheduleFireParams) -> Result<Vec<FireOutcome>> {
        let mut conn = self.shared.conn().await?;
        let (outcomes, available) = schedule_fire::fire(&mut conn, self.shared.now(), p).await?;
        self.shared
            .notifier
            .notify(available.iter().map(String::as_str));
        Ok(outcomes)
    }

    async fn schedule_trigger(&self, p: ScheduleTriggerParams) -> Result<ScheduleTriggered> {
        let mut conn = self.shared.conn().await?;
        let (triggered, available) =
            schedule_fire::trigger(&mut conn, self.shared.now(), p).await?;
        self.shared
            .notifier
            .notify(available.iter().map(String::as_str));
        Ok(triggered)
    }

    async fn function_put(&self, p: FunctionPutParams) -> Result<FunctionPut> {
        let mut conn = self.shared.conn().await?;
        functions::put(&mut conn, self.shared.now(), p).await
    }

    async fn function_get(&self, id: &str) -> Result<Option<FunctionRecord>> {
        functions::get_one(&mut *self.shared.conn().await?, id).await
    }

    async fn function_list(&self, p: FunctionListParams) -> Result<Vec<FunctionRecord>> {
        functions::list(&mut *self.shared.conn().await?, p).await
    }

    async fn function_delete(&self, id: &str) -> Result<()> {
        let mut conn = self.shared.conn().await?;
        functions::delete(&mut conn, self.shared.now(), id).await
    }

    async fn app_sync(&self, p: AppSyncParams) -> Result<AppSynced> {
        let mut conn = self.shared.conn().await?;
        functions::app_sync(&mut conn, self.shared.now(), p).await
    }

    async fn event_send(&self, p: EventSendParams) -> Result<EventSendReport> {
        let report = self
            .retrying(|conn, now| {
                let p = p.clone();
                Box::pin(async move { events::send(conn, now, p).await })
            })
            .await?;
        self.notify(&report.woken);
        Ok(EventSendReport {
            woken: queues_only(report.woken),
            ..report
        })
    }

    async fn event_get(&self, id: EventId) -> Result<Option<EventRecord>> {
        events::get_event(&mut *self.shared.conn().await?, id).await
    }

    async fn event_list(&self, p: EventListParams) -> Result<Vec<EventRecord>> {
        events::list_events(&mut *self.shared.conn().await?, p).await
    }

    async fn run_get(&self, id: RunId) -> Result<Option<RunRecord>> {
        runs_read::get_run(&mut *self.shared.conn().await?, id).await
    }

    async fn run_list(&self, p: RunListParams) -> Result<Vec<RunRecord>> {
        runs_read::list_runs(&mut *self.shared.conn().await?, p).await
    }

    async fn run_steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        runs_read::steps(&mut *self.shared.conn().await?, id).await
    }

    async fn run_cancel(&self, id: RunId) -> Result<RunRecord> {
        let limits = self.shared.limits;
        let (run, queues) = self
            .retrying(|conn, now| {
                Box::pin(async move { runs_manage::cancel(conn, now, &limits, id).await })
            })
            .await?;
        self.notify(&queues);
        Ok(run)
    }

    async fn run_retry(&self, id: RunId) -> Result<RunRecord> {
        let limits = self.shared.limits;
        let (run, queues) = self
            .retrying(|conn, now| {
                Box::pin(async move { runs_manage::retry(conn, now, &limits, id).await })
            })
            .await?;
        self.notify(&queues);
        Ok(run)
    }

    async fn run_record_steps(&self, p: RunRecordStepsParams) -> Result<RunRecord> {
        self.retrying(|conn, now| {
            let p = p.clone();
            Box::pin(async move { runs_manage::record_steps(conn, now, p).await })
        })
        .await
    }

    async fn function_cron_fire(&self, p: FunctionCronFireParams) -> Result<FunctionCronReport> {
        let limits = self.shared.limits;
        let report = self
            .retrying(|conn, now| {
                Box::pin(async move { function_cron::fire(conn, now, &limits, p.limit).await })
            })
            .await?;
        self.notify(&report.queues);
        Ok(FunctionCronReport {
            queues: queues_only(report.queues),
            ..report
        })
    }

    async fn run_wake_due(&self, p: RunWakeParams) -> Result<RunWakeReport> {
        let limits = self.shared.limits;
        let report = self
            .retrying(|conn, now| {
                let p = p.clone();
                Box::pin(async move { runs_manage::wake_due(conn, now, &limits, p).await })
            })
            .await?;
        self.notify(&report.queues);
        Ok(RunWakeReport {
            queues: queues_only(report.queues),
            ..report
        })
    }

    async fn run_prune(&self, p: RunPruneParams) -> Result<u64> {
        let mut conn = self.shared.conn().await?;
        runs_manage::prune(&mut conn, self.shared.now(), p).await
    }

    async fn log_append(&self, p: LogAppendParams) -> Result<offload_core::log::LogAppended> {
        self.check_open()?;
        self.retrying(|conn, now| Box::pin(logs::append(conn, now, p.clone())))
            .await
    }

    async fn log_read(&self, p: LogReadParams) -> Result<Vec<offload_core::log::LogLine>> {
        logs::read(&mut *self.shared.conn().await?, p).await
    }

    async fn close(&self) {
        // Commands already queued are still committed; later ones are refused.
        self.shared.closed.store(true, Ordering::SeqCst);
        self.inserts.close().await;
        self.finishes.close().await;
        self.listener.stop();
        self.shared.pool.close().await;
    }

    fn subscribe_available(&self) -> Option<broadcast::Receiver<Wakeup>> {
        Some(self.listener.subscribe())
    }
}

/// The queue names among announcements (push jobs are announced to every server's dispatcher through the
/// database, not by queue).
fn queues_only(mut announced: Vec<String>) -> Vec<String> {
    announced.retain(|q| q != notify::PUSH);
    announced
}

/// Attempts of an operation that failed because of a deadlock or a serialization failure, before the failure
/// is answered.
const TRANSIENT_ATTEMPTS: usize = 5;

impl PostgresStore {
    /// Announces queues that got available jobs.
    fn notify(&self, queues: &[String]) {
        self.shared
            .notifier
            .notify(queues.iter().map(String::as_str));
    }

    /// Runs `work` in a transaction of its own, again when the database aborted it for a deadlock or a
    /// serialization failure (several servers fanning out events into the same runs); nothing of an aborted
    /// attempt was written.
    async fn retrying<T, W>(&self, work: W) -> Result<T>
    where
        W: for<'a> Fn(&'a mut PgConnection, Timestamp) -> BoxFut<'a, Result<T>>,
    {
        let mut conn = self.shared.conn().await?;
        let mut attempt = 1;
        loop {
            match work(&mut conn, self.shared.now()).await {
                Err(StoreError::Unavailable(m))
                    if attempt < TRANSIENT_ATTEMPTS && error::is_retryable_message(&m) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..20))).await;
                }
                other => return other,
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            Err(StoreError::closed())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example:5432/jobs?sslmode=require"),
            "postgres://app:***@db.example:5432/jobs?sslmode=require"
        );
        assert_eq!(redact("postgres://app@db/jobs"), "postgres://app@db/jobs");
        assert_eq!(redact("postgres:///jobs"), "postgres:///jobs");
    }
}
