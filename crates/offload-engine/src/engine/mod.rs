//! The engine facade: job, queue and schedule operations with the side effects a store cannot have
//! (wake-ups), and the life cycle: [`Engine::start`] builds each service (stager, rescuer, pruner, cron
//! enqueuer, push dispatcher, each leader lease) from the parts it needs and spawns it; draining and
//! stopping cancel them in order.
//!
//! Invariant: the services know nothing of this facade; they share only the store, the [`Wakers`], their
//! own slice of the configuration, the stop tokens and their [`Signals`].

mod queues;
mod schedules;

pub use schedules::FileSchedules;

use std::sync::Arc;
use std::time::Duration;

use offload_core::api::{HeartbeatResponse, QueueInfo};
use offload_core::push::Target;
use offload_core::push::target::known_address;
use offload_core::spec::ValidationError;
use offload_core::{ClaimedJob, Job, JobId, JobState, NewJob, Timestamp};
use offload_store::{
    DynStore, FinishOutcome, Inserted, JobClaimParams, JobFinishParams, JobHeartbeatParams,
    JobInsertParams, JobListParams, PushFailure, PushFailuresParams, QueueSetPausedParams,
    QueueThroughputParams, ThroughputBucket,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EngineConfig;
use crate::cron::{self, CronEnqueuer, CronPass};
use crate::error::{EngineError, Result};
use crate::leadership::LeaderLease;
use crate::maintenance::{self, FlowRepairer, Maintenance, Pruner, Rescuer, RunWaker, Stager};
use crate::observe;
use crate::push::{self, PushDispatcher};
use crate::signal::{Flag, Signals};
use crate::wakeup::{self, Wakers};

/// The running core of a server: one per process, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    config: EngineConfig,
    wakers: Arc<Wakers>,
    signals: Signals,
    /// Cancelled when the server starts draining: no new claims.
    stop_claims: CancellationToken,
    /// Cancelled when background loops must stop.
    stop_loops: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node_id", &self.inner.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds an engine on a store; call [`Engine::start`] to run its maintenance loops and the push
    /// dispatcher. Installs rustls' default crypto provider (see [`push::install_crypto_provider`]).
    pub fn new(store: DynStore, config: EngineConfig) -> Self {
        push::install_crypto_provider();
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                wakers: Arc::default(),
                signals: Signals::default(),
                stop_claims: CancellationToken::new(),
                stop_loops: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// What the engine's services signal as they work (passes completed, leases held), to wait on.
    pub fn signals(&self) -> &Signals {
        &self.inner.signals
    }

    /// Spawns the maintenance duties (stager, rescuer, pruner) under their leader lease and the cron enqueuer
    /// under its own; the push dispatcher when push delivery is enabled (a delivery client that cannot be
    /// built is logged as an error; push jobs then wait); and, when the store offers them, the forwarding of
    /// its wake-ups (jobs made available by other servers) to long-polling claimers and the dispatcher.
    pub fn start(&self) {
        let inner = &self.inner;
        let config = &inner.config;
        let maintenance = Maintenance {
            stager: Stager {
                store: inner.store.clone(),
                wakers: inner.wakers.clone(),
                limit: config.maintenance_batch,
                interval: config.stage_interval,
                ticks: inner.signals.stager.clone(),
            },
            rescuer: Rescuer {
                store: inner.store.clone(),
                wakers: inner.wakers.clone(),
                limit: config.maintenance_batch,
                ticks: inner.signals.rescuer.clone(),
            },
            run_waker: RunWaker {
                store: inner.store.clone(),
                wakers: inner.wakers.clone(),
                limit: config.maintenance_batch,
                interval: config.functions.wake_interval,
                ticks: inner.signals.run_waker.clone(),
            },
            pruner: Pruner {
                store: inner.store.clone(),
                retention: config.retention,
                functions: config.functions,
                limit: config.maintenance_batch,
                stop: inner.stop_loops.clone(),
                ticks: inner.signals.pruner.clone(),
            },
            flow_repairer: FlowRepairer {
                store: inner.store.clone(),
                wakers: inner.wakers.clone(),
                ticks: inner.signals.flow_repair.clone(),
            },
            rescue_interval: config.rescue_interval,
            prune_interval: config.prune_interval,
            flow_repair_interval: config.flow_repair_interval,
            wakers: inner.wakers.clone(),
            stop: inner.stop_loops.clone(),
        };
        inner.tasks.spawn(self.clone().learn_limits_at_start());
        let lease = self.lease(maintenance::LEASE_NAME, &inner.signals.maintenance_leader);
        inner.tasks.spawn(maintenance.run(lease));
        if let Some(rx) = inner.store.subscribe_available() {
            inner.tasks.spawn(wakeup::forward(
                inner.wakers.clone(),
                rx,
                inner.stop_loops.clone(),
            ));
        }
        let lease = self.lease(cron::LEASE_NAME, &inner.signals.cron_leader);
        inner.tasks.spawn(self.cron_enqueuer().run(lease));
        if config.push.enabled() {
            match push::Deliverer::new(&config.push) {
                Ok(deliverer) => {
                    let dispatcher = PushDispatcher {
                        store: inner.store.clone(),
                        wakers: inner.wakers.clone(),
                        config: config.push.clone(),
                        node_id: config.node_id.clone(),
                        claim_poll: config.claim_poll,
                        deliverer,
                        stop_claims: inner.stop_claims.clone(),
                        stop_loops: inner.stop_loops.clone(),
                        ticks: inner.signals.push.clone(),
                    };
                    inner.tasks.spawn(dispatcher.run());
                }
                Err(e) => tracing::error!(error = %e, "push delivery cannot start"),
            }
        }
    }

    /// The named leader lease of this node, raising `leader` while held.
    fn lease(&self, name: &'static str, leader: &Flag) -> LeaderLease {
        LeaderLease {
            store: self.inner.store.clone(),
            name,
            node_id: self.inner.config.node_id.clone(),
            ttl: self.inner.config.leader_ttl,
            stop: self.inner.stop_loops.clone(),
            leader: leader.clone(),
        }
    }

    fn cron_enqueuer(&self) -> CronEnqueuer {
        let config = &self.inner.config;
        CronEnqueuer {
            store: self.inner.store.clone(),
            wakers: self.inner.wakers.clone(),
            grace: config.cron_grace,
            poll: config.cron_poll,
            batch: config.cron_batch,
            stop: self.inner.stop_loops.clone(),
            ticks: self.inner.signals.cron.clone(),
        }
    }

    /// Runs one pass of the cron enqueuer now: fires every due tick of every unpaused schedule, and starts the
    /// runs of the due ticks of cron-triggered functions. The enqueuer loop does the same; it is safe to call at
    /// any time (plans are fenced by revision, ticks are unique, a function's tick moves its next fire time).
    pub async fn fire_due_schedules(&self) -> Result<CronPass> {
        self.cron_enqueuer().pass().await
    }

    /// Wakes this node's cron enqueuer: a function's cron trigger may have been added, changed or removed.
    pub(crate) fn function_crons_changed(&self) {
        self.inner.wakers.cron.notify_one();
    }

    /// Checks what can be known about a push job before it is stored: that push delivery is enabled, and
    /// that no URL of its target is an address the outbound policy refuses (IP literals and `localhost`;
    /// other names are checked when they are resolved, at delivery). Pull jobs always pass.
    pub fn check_push(&self, job: &NewJob) -> std::result::Result<(), ValidationError> {
        match &job.target {
            Some(target) => self.check_target(target),
            None => Ok(()),
        }
    }

    /// Checks a push target as [`Engine::check_push`] does: push delivery on, no refused literal address.
    pub fn check_target(&self, target: &Target) -> std::result::Result<(), ValidationError> {
        let config = &self.inner.config.push;
        if !config.enabled() {
            return Err(ValidationError::invalid(
                "target",
                "push delivery is off on this server (it has no signing secret)",
            ));
        }
        for (field, url) in target.urls() {
            if let Some(ip) = known_address(url)
                && let Err(why) = config.policy.explain(ip)
            {
                return Err(ValidationError::invalid(
                    field,
                    format!("refused by the outbound address policy: {why}"),
                ));
            }
        }
        Ok(())
    }

    /// The store, for operations the engine adds nothing to.
    pub fn store(&self) -> &DynStore {
        &self.inner.store
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The store's clock: the "now" that due times and leases are judged against.
    pub fn now(&self) -> Timestamp {
        self.inner.store.now()
    }

    /// Stores jobs (all or none) and wakes claimers of the queues that got available jobs.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>> {
        let queues: Vec<String> = jobs.iter().map(|j| j.queue.clone()).collect();
        let push: Vec<bool> = jobs.iter().map(|j| j.target.is_some()).collect();
        let inserted = self
            .inner
            .store
            .job_insert(JobInsertParams { jobs })
            .await?;
        let mut delayed = false;
        let mut last_woken: Option<&str> = None;
        let mut stored: Option<(&str, u64)> = None;
        let mut pushed = false;
        for ((queue, ins), is_push) in queues.iter().zip(&inserted).zip(push) {
            if ins.duplicate {
                continue;
            }
            if ins.debounced {
                // No job was added: the waiting one moved its start (later, or to now at its `max_wait`).
                match ins.state {
                    JobState::Scheduled => delayed = true,
                    JobState::Available if is_push => pushed = true,
                    JobState::Available => self.inner.wakers.queues.wake(queue),
                    _ => {}
                }
                continue;
            }
            // Batches are mostly one queue: count runs of the same queue, emit once per run.
            match &mut stored {
                Some((q, n)) if *q == queue.as_str() => *n += 1,
                _ => {
                    if let Some((q, n)) = stored {
                        observe::enqueued(q, n);
                    }
                    stored = Some((queue.as_str(), 1));
                }
            }
            if is_push {
                pushed |= ins.state == JobState::Available;
                delayed |= ins.state == JobState::Scheduled;
                continue;
            }
            match ins.state {
                JobState::Available if last_woken != Some(queue.as_str()) => {
                    self.inner.wakers.queues.wake(queue);
                    last_woken = Some(queue);
                }
                JobState::Scheduled => delayed = true,
                _ => {}
            }
        }
        if let Some((q, n)) = stored {
            observe::enqueued(q, n);
        }
        if delayed {
            self.inner.wakers.stager.notify_one();
        }
        if pushed {
            self.inner.wakers.push.notify_one();
        }
        Ok(inserted)
    }

    /// Claims jobs for a worker. With a `wait`, an empty queue is long-polled: the call returns as soon as a
    /// job can be claimed, or empty when the wait ends or the server starts draining.
    pub async fn claim(&self, params: JobClaimParams, wait: Duration) -> Result<Vec<ClaimedJob>> {
        if self.inner.stop_claims.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let deadline = Instant::now() + wait;
        let notify = self.inner.wakers.queues.listen(&params.queue);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let outcome = self.inner.store.job_claim_next(params.clone()).await?;
            let jobs = outcome.jobs;
            if let Some(first) = jobs.first() {
                // Every job of one claim started at the same instant: its lease start.
                let started = first
                    .lease_expires_at
                    .checked_sub(
                        jiff::SignedDuration::try_from(first.timeout.0).unwrap_or_default(),
                    )
                    .unwrap_or_else(|_| self.now());
                for job in &jobs {
                    observe::waited(&job.queue, job.run_at, started);
                }
            }
            let now = Instant::now();
            if !jobs.is_empty() || now >= deadline || self.inner.stop_claims.is_cancelled() {
                return Ok(jobs);
            }
            let poll = self
                .inner
                .config
                .claim_poll
                .mul_f64(0.5 + fastrand::f64() * 0.5);
            // A throttle says when it lets the next held job start: try again then (the poll still bounds
            // the wait, in case another server starts it first).
            let throttled = outcome.retry_at.map(|at| {
                self.inner.wakers.queues.set_limited(&params.queue, true);
                let wait = self.now().duration_until(at);
                Duration::try_from(wait)
                    .unwrap_or_default()
                    .max(Duration::from_millis(1))
            });
            let until = deadline.min(now + throttled.map_or(poll, |t| t.min(poll)));
            self.inner.signals.long_polls.tick();
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = self.inner.stop_claims.cancelled() => return Ok(Vec::new()),
            }
        }
    }

    /// Extends a lease and records progress.
    pub async fn heartbeat(&self, params: JobHeartbeatParams) -> Result<HeartbeatResponse> {
        Ok(self.inner.store.job_heartbeat(params).await?)
    }

    /// Applies completions and failures (and snoozes); wakes claimers when a job is due again at once, and the
    /// stager when it is due later.
    /// The end of a function's call may enqueue the run's next call on the same queue: its claimers are woken
    /// too.
    pub async fn finish(&self, params: JobFinishParams) -> Result<Vec<FinishOutcome>> {
        let outcomes = crate::finish::finish(&self.inner.store, &self.inner.wakers, params).await?;
        // The store reports the end of every call of a running run; its next call, if any, is on the same
        // queue.
        let woken: Vec<String> = outcomes
            .iter()
            .flatten()
            .filter(|f| f.run.is_some())
            .map(|f| f.queue.clone())
            .collect();
        if !woken.is_empty() {
            self.wake_calls(&woken);
        }
        Ok(outcomes)
    }

    /// Wakes the claimers of `queues` (where call jobs became available) and the push dispatcher. The
    /// stager is not woken: a call planned for later (a sleep, a step's backoff) is found by its next pass,
    /// at most `stage_interval` later, which keeps busy functions from running it after every call.
    pub(crate) fn wake_calls(&self, queues: &[String]) {
        let mut last: Option<&str> = None;
        for queue in queues {
            if last != Some(queue.as_str()) {
                self.inner.wakers.queues.wake(queue);
                last = Some(queue);
            }
        }
        self.inner.wakers.push.notify_one();
    }

    /// One job with its attempt history.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self.inner.store.job_get(id).await?)
    }

    /// A filtered page of jobs, newest first.
    pub async fn list(&self, params: JobListParams) -> Result<Vec<Job>> {
        Ok(self.inner.store.job_list(params).await?)
    }

    /// Cancels a job (at once, or by request when running).
    pub async fn cancel(&self, id: JobId) -> Result<Job> {
        Ok(self.inner.store.job_cancel(id).await?)
    }

    /// Puts a dead or cancelled job back to available and wakes its queue's claimers (or the dispatcher).
    pub async fn retry(&self, id: JobId) -> Result<Job> {
        let job = self.inner.store.job_retry(id).await?;
        if job.target.is_some() {
            self.inner.wakers.push.notify_one();
        } else {
            self.inner.wakers.queues.wake(&job.queue);
        }
        Ok(job)
    }

    /// Deletes a job that is not running.
    pub async fn delete(&self, id: JobId) -> Result<()> {
        Ok(self.inner.store.job_delete(id).await?)
    }

    /// Every queue with its counts and limits (and, as a side effect, what this process knows of which queues
    /// have limits is refreshed).
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let queues = self.inner.store.queue_list().await?;
        self.learn_limits(&queues);
        Ok(queues)
    }

    /// Attempts ended per queue and minute since `since` (for the dashboard's throughput chart).
    pub async fn throughput(&self, since: Timestamp) -> Result<Vec<ThroughputBucket>> {
        Ok(self
            .inner
            .store
            .queue_throughput(QueueThroughputParams { since })
            .await?)
    }

    /// Push destinations whose deliveries failed recently, latest failure first (for the dashboard's push
    /// page); see [`offload_store::Store::push_failures`].
    pub async fn push_failures(&self, params: PushFailuresParams) -> Result<Vec<PushFailure>> {
        Ok(self.inner.store.push_failures(params).await?)
    }

    /// Pauses or resumes a queue; resuming wakes its claimers.
    pub async fn set_paused(&self, queue: String, paused: bool) -> Result<QueueInfo> {
        let info = self
            .inner
            .store
            .queue_set_paused(QueueSetPausedParams { queue, paused })
            .await?;
        if !paused {
            self.inner.wakers.queues.wake(&info.name);
            self.inner.wakers.push.notify_one();
        }
        Ok(info)
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.inner.store.ping().await?)
    }

    /// First step of a graceful stop: refuse new claims and end long polls (they answer empty), while
    /// heartbeats, completions and enqueues keep working so in-flight work can report.
    pub fn stop_claiming(&self) {
        self.inner.stop_claims.cancel();
        self.inner.wakers.queues.wake_all();
    }

    /// True once [`Engine::stop_claiming`] was called.
    pub fn is_draining(&self) -> bool {
        self.inner.stop_claims.is_cancelled()
    }

    /// Last step of a graceful stop: stops the maintenance loops (releasing the leader lease), then closes
    /// the store after its pending writes are committed.
    pub async fn shutdown(&self) {
        self.stop_claiming();
        self.inner.stop_loops.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.store.close().await;
    }
}
