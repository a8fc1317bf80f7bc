//! The pull worker: handlers registered by job name, run with a concurrency limit per queue.
//!
//! ```no_run
//! use std::time::Duration;
//! use offload_sdk::{Client, Job, JobError, Worker};
//!
//! #[derive(serde::Deserialize)]
//! struct Welcome { user: u64 }
//!
//! async fn welcome(job: Job<Welcome>) -> Result<(), JobError> {
//!     println!("welcoming user {} (attempt {})", job.payload.user, job.attempt);
//!     Ok(())
//! }
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder(Client::new("http://127.0.0.1:7070")?)
//!     .queue("emails", 20)
//!     .handler("welcome", welcome)
//!     .build()?;
//! let stats = worker
//!     .run_until(async { tokio::signal::ctrl_c().await.ok(); }, Duration::from_secs(30))
//!     .await;
//! println!("{} jobs done", stats.succeeded);
//! # Ok(())
//! # }
//! ```
//!
//! How it works, and what it guarantees:
//! - Each queue has one claim loop that asks for as many jobs as it has free slots (up to
//!   [`WorkerBuilder::claim_batch`]), long-polling the server when none is available.
//! - Each job runs its handler in its own task, while the worker heartbeats at a fraction of the job's
//!   `timeout` (a third by default). A heartbeat answer that a cancel was requested, or that the lease is lost,
//!   fires the job's [`Job::cancellation`] token.
//! - How the handler ended is reported once: success as a completion (batched with others), [`JobError`] as a
//!   failure, snooze or cancellation, a panic as a failed attempt. A report the server refuses because the lease
//!   was lost is dropped (the job was retried elsewhere). A job's slot is freed when its report is answered.
//! - Stopping has two stages (River's "stop fetching, then stop working"): [`WorkerHandle::shutdown`] stops
//!   claiming at once and lets running jobs finish for a grace period; jobs still running then are dropped and
//!   handed back to the server (snoozed with no delay, so they run again at once elsewhere without using up an
//!   attempt). No job is lost either way: one whose report never arrives is retried when its lease expires.
//! - When the server does not answer, claims and reports are tried again with the pauses of [`crate::retry`]
//!   (at most 2 s, so work resumes within about that long after the server is back); a report is tried for as
//!   long as its job's lease may last.

mod claimer;
mod handler;
mod job;
mod job_error;
mod reporter;
mod running;
mod stats;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use offload_core::api::{MAX_CLAIM_JOBS, MAX_CLAIM_WAIT_MS, MAX_WORKER_ID_LEN};
use offload_core::spec::validate_queue_name;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Client;
use handler::Erased;
use reporter::Report;
use running::Heartbeat;
use stats::Counters;

pub use job::Job;
pub use job_error::JobError;
pub use stats::WorkerStats;

pub(crate) use handler::{Ended, RawJob, erase, execute};
pub(crate) use job::{Backend, JobCtx};

/// Default long-poll wait of a claim.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// Most reports of one kind sent in one request.
const REPORT_BATCH: usize = 1_000;
/// Report requests in flight at once.
const REPORTS_IN_FLIGHT: usize = 4;

/// A configured worker; [`Worker::start`] runs it.
pub struct Worker {
    shared: Arc<Shared>,
    queues: Vec<(String, usize)>,
    reports: mpsc::UnboundedReceiver<Report>,
    report_batch: usize,
}

/// What the tasks of one worker share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) worker_id: String,
    handlers: HashMap<String, Erased>,
    fallback: Option<Erased>,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) claim_wait: Duration,
    pub(crate) claim_batch: usize,
    pub(crate) reports: mpsc::UnboundedSender<Report>,
    pub(crate) counters: Arc<Counters>,
    /// Fired when the grace period of a shutdown ends: running handlers are dropped.
    pub(crate) kill: CancellationToken,
}

impl Shared {
    /// The handler for a job name: the one registered under it, else the fallback.
    pub(crate) fn handler_for(&self, name: Option<&str>) -> Option<&Erased> {
        name.and_then(|n| self.handlers.get(n))
            .or(self.fallback.as_ref())
    }
}

/// Why a worker configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No queue to work.
    #[error("no queue to work: add one with .queue(name, concurrency)")]
    NoQueue,
    /// No handler.
    #[error("no handler: register one with .handler(name, function) or .fallback(function)")]
    NoHandler,
    /// A queue cannot be worked as configured.
    #[error("queue `{queue}`: {reason}")]
    InvalidQueue {
        /// The queue.
        queue: String,
        /// What is wrong.
        reason: String,
    },
    /// Two handlers for one job name.
    #[error("two handlers for job name `{0}`")]
    DuplicateHandler(String),
    /// A setting is out of range.
    #[error("{setting}: {reason}")]
    InvalidSetting {
        /// The builder method.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Configures a [`Worker`]: queues with their concurrency, handlers by job name, and tuning.
pub struct WorkerBuilder {
    client: Client,
    queues: Vec<(String, usize)>,
    handlers: Vec<(String, Erased)>,
    fallback: Option<Erased>,
    worker_id: Option<String>,
    claim_wait: Duration,
    claim_batch: usize,
    heartbeat: Heartbeat,
    report_batch: usize,
}

impl Worker {
    /// Starts configuring a worker that talks to the server through `client`.
    pub fn builder(client: Client) -> WorkerBuilder {
        WorkerBuilder {
            client,
            queues: Vec::new(),
            handlers: Vec::new(),
            fallback: None,
            worker_id: None,
            claim_wait: CLAIM_WAIT,
            claim_batch: MAX_CLAIM_JOBS as usize,
            heartbeat: Heartbeat::Fraction(1.0 / 3.0),
            report_batch: REPORT_BATCH,
        }
    }

    /// The id this worker claims under (recorded on every attempt).
    pub fn id(&self) -> &str {
        &self.shared.worker_id
    }

    /// Starts claiming and running jobs on the current Tokio runtime. Stop it with
    /// [`WorkerHandle::shutdown`].
    pub fn start(self) -> WorkerHandle {
        let fetch = CancellationToken::new();
        let tracker = TaskTracker::new();
        let reporter = tokio::spawn(reporter::run(
            self.shared.client.clone(),
            self.reports,
            self.shared.counters.clone(),
            self.report_batch,
            REPORTS_IN_FLIGHT,
        ));
        let claimers = self
            .queues
            .into_iter()
            .map(|(queue, concurrency)| {
                tokio::spawn(claimer::run(
                    self.shared.clone(),
                    queue,
                    concurrency,
                    fetch.clone(),
                    tracker.clone(),
                ))
            })
            .collect();
        WorkerHandle {
            counters: self.shared.counters.clone(),
            kill: self.shared.kill.clone(),
            shared: Some(self.shared),
            fetch,
            tracker,
            claimers,
            reporter: Some(reporter),
        }
    }

    /// Runs until `stop` completes (e.g. `tokio::signal::ctrl_c()`), then shuts down gracefully with `grace`
    /// for running jobs (see [`WorkerHandle::shutdown`]). Returns the final counters.
    pub async fn run_until(self, stop: impl Future<Output = ()>, grace: Duration) -> WorkerStats {
        let handle = self.start();
        stop.await;
        handle.shutdown(grace).await
    }
}

impl WorkerBuilder {
    /// Works `queue` with at most `concurrency` of its jobs at once (running, or waiting for their report to
    /// be answered).
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Runs jobs named `name` (on any of the worker's queues) with `handler`, an
    /// `async fn(Job<T>) -> Result<R, JobError>`: `T` is the payload decoded with `serde` (use
    /// `serde_json::Value` for any JSON), `R` the result kept on the job (`()` for none).
    pub fn handler<T, R, F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.handlers.push((name.into(), erase(handler)));
        self
    }

    /// Runs every job that no named handler takes (nameless jobs, and names with no handler). Without a
    /// fallback such jobs fail and are retried with backoff, for a worker that knows them (e.g. after a
    /// deploy).
    pub fn fallback<T, R, F, Fut>(mut self, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    {
        self.fallback = Some(erase(handler));
        self
    }

    /// The id recorded on every attempt this worker makes (default `HOSTNAME-PID`).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// How long a claim waits on the server for a job when none is available (default 30 s, at most 60 s).
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Most jobs one claim asks for (default and maximum 1000; never more than the free slots).
    pub fn claim_batch(mut self, jobs: usize) -> Self {
        self.claim_batch = jobs;
        self
    }

    /// Heartbeat every `fraction` of each job's timeout (default a third; between 0 and 1 exclusive).
    pub fn heartbeat_fraction(mut self, fraction: f64) -> Self {
        self.heartbeat = Heartbeat::Fraction(fraction);
        self
    }

    /// Heartbeat at this fixed interval instead, whatever the job's timeout (an interval not shorter than a
    /// job's timeout lets its lease expire, and the job is retried elsewhere).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat = Heartbeat::Every(interval);
        self
    }

    /// Most completions (or failures) sent in one request (default 1000).
    pub fn report_batch(mut self, reports: usize) -> Self {
        self.report_batch = reports;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Worker, BuildError> {
        if self.queues.is_empty() {
            return Err(BuildError::NoQueue);
        }
        let mut seen = HashSet::new();
        for (queue, concurrency) in &self.queues {
            let invalid = |reason: String| BuildError::InvalidQueue {
                queue: queue.clone(),
                reason,
            };
            validate_queue_name(queue).map_err(invalid)?;
            if *concurrency == 0 {
                return Err(invalid("concurrency must be at least 1".into()));
            }
            if !seen.insert(queue.as_str()) {
                return Err(invalid("added twice".into()));
            }
        }
        if self.handlers.is_empty() && self.fallback.is_none() {
            return Err(BuildError::NoHandler);
        }
        let mut handlers = HashMap::new();
        for (name, handler) in self.handlers {
            if handlers.contains_key(&name) {
                return Err(BuildError::DuplicateHandler(name));
            }
            handlers.insert(name, handler);
        }
        let worker_id = self.worker_id.unwrap_or_else(default_worker_id);
        let setting =
            |setting: &'static str, reason: String| BuildError::InvalidSetting { setting, reason };
        if worker_id.is_empty()
            || worker_id.len() > MAX_WORKER_ID_LEN
            || worker_id.chars().any(char::is_control)
        {
            return Err(setting(
                "worker_id",
                format!("must be 1 to {MAX_WORKER_ID_LEN} bytes without control characters"),
            ));
        }
        if self.claim_wait > Duration::from_millis(MAX_CLAIM_WAIT_MS) {
            return Err(setting(
                "claim_wait",
                format!("must be at most {MAX_CLAIM_WAIT_MS} ms"),
            ));
        }
        if self.claim_batch == 0 || self.report_batch == 0 {
            return Err(setting(
                "claim_batch/report_batch",
                "must be at least 1".into(),
            ));
        }
        match self.heartbeat {
            Heartbeat::Fraction(f) if !(f > 0.0 && f < 1.0) => {
                return Err(setting(
                    "heartbeat_fraction",
                    format!("must be between 0 and 1 exclusive, not {f}"),
                ));
            }
            Heartbeat::Every(d) if d.is_zero() => {
                return Err(setting(
                    "heartbeat_interval",
                    "must be longer than zero".into(),
                ));
            }
            _ => {}
        }
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Worker {
            shared: Arc::new(Shared {
                client: self.client,
                worker_id,
                handlers,
                fallback: self.fallback,
                heartbeat: self.heartbeat,
                claim_wait: self.claim_wait,
                claim_batch: self.claim_batch,
                reports: tx,
                counters: Arc::default(),
                kill: CancellationToken::new(),
            }),
            queues: self.queues,
            reports: rx,
            report_batch: self.report_batch,
        })
    }
}

/// A running worker. Stop it with [`WorkerHandle::shutdown`]; dropping the handle instead stops claiming and
/// hands running jobs back at once, without waiting for anything.
pub struct WorkerHandle {
    /// Dropped once every job has ended, which closes the reporter's queue.
    shared: Option<Arc<Shared>>,
    counters: Arc<Counters>,
    fetch: CancellationToken,
    kill: CancellationToken,
    tracker: TaskTracker,
    claimers: Vec<JoinHandle<()>>,
    reporter: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.counters.snapshot()
    }

    /// Waits until `done` holds for the worker's counters (checked after every claim and every answered
    /// batch of reports); returns them. Useful in tests and benchmarks, e.g. to wait for `n` completions.
    pub async fn wait_until(&self, done: impl FnMut(&WorkerStats) -> bool) -> WorkerStats {
        self.counters.wait_until(done).await
    }

    /// Stops gracefully: no more claims at once; running jobs get up to `grace` to finish and be reported;
    /// jobs still running then are dropped and handed back to the server, to run again at once elsewhere
    /// without using up an attempt. Returns when every report was answered (or given up), with the final
    /// counters.
    pub async fn shutdown(mut self, grace: Duration) -> WorkerStats {
        self.fetch.cancel();
        for claimer in self.claimers.drain(..) {
            let _ = claimer.await;
        }
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            self.kill.cancel();
            self.tracker.wait().await;
        }
        // The last sender goes with the last `Shared`: the reporter sends what is queued, then ends.
        drop(self.shared.take());
        if let Some(reporter) = self.reporter.take() {
            let _ = reporter.await;
        }
        self.counters.snapshot()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.fetch.cancel();
        self.kill.cancel();
    }
}

/// `HOSTNAME-PID`: unique per process on a machine, and readable in the attempt history.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn noop(_job: Job) -> Result<(), JobError> {
        Ok(())
    }

    fn builder() -> WorkerBuilder {
        Worker::builder(Client::new("http://127.0.0.1:1").unwrap())
    }

    #[test]
    fn configurations_are_checked() {
        assert_eq!(
            builder().handler("a", noop).build().err(),
            Some(BuildError::NoQueue)
        );
        assert_eq!(
            builder().queue("q", 1).build().err(),
            Some(BuildError::NoHandler)
        );
        assert!(matches!(
            builder().queue("bad queue", 1).handler("a", noop).build(),
            Err(BuildError::InvalidQueue { .. })
        ));
        assert!(matches!(
            builder().queue("q", 0).handler("a", noop).build(),
            Err(BuildError::InvalidQueue { .. })
        ));
        assert!(matches!(
            builder()
                .queue("q", 1)
                .queue("q", 2)
                .handler("a", noop)
                .build(),
            Err(BuildError::InvalidQueue { .. })
        ));
        assert_eq!(
            builder()
                .queue("q", 1)
                .handler("a", noop)
                .handler("a", noop)
                .build()
                .err(),
            Some(BuildError::DuplicateHandler("a".into()))
        );
        for b in [
            builder().worker_id(""),
            builder().claim_wait(Duration::from_secs(61)),
            builder().claim_batch(0),
            builder().heartbeat_fraction(1.0),
            builder().heartbeat_fraction(f64::NAN),
            builder().heartbeat_interval(Duration::ZERO),
        ] {
            assert!(matches!(
                b.queue("q", 1).handler("a", noop).build(),
                Err(BuildError::InvalidSetting { .. })
            ));
        }
        let w = builder().queue("q", 1).fallback(noop).build().unwrap();
        assert!(w.id().ends_with(&format!("-{}", std::process::id())));
    }
}
