//! Rust SDK for Offload: enqueue jobs, work them, receive pushed ones, and test your handlers.
//!
//! - [`Client`] has one async method per endpoint and speaks the wire types of [`offload_core::api`], so it
//!   can never disagree with the server about the format. [`JobSpec`] enqueues typed payloads with every option
//!   of the API. Errors keep the server's stable problem `code` and human `detail` ([`Error::code`],
//!   [`Error::detail`]).
//! - [`Worker`] runs `async fn(Job<T>) -> Result<R, JobError>` handlers by job name with a concurrency limit
//!   per queue, heartbeats, progress, cancellation, batched completions and graceful shutdown ([`worker`]).
//! - [`push`] verifies the signatures of jobs Offload pushes to your HTTP endpoint (Standard Webhooks), with an
//!   axum extractor behind the `axum` feature.
//! - [`function`] defines durable functions (steps that never run twice, sleeps and waits that hold no
//!   worker) and serves them from a [`Worker`] or a push endpoint; the client sends events and manages runs.
//! - [`testing`] runs a handler against a job value in memory, without a server.
//! - [`retry`] is the rule workers follow when the server does not answer: pauses of at most 2 s, and reports
//!   tried again for as long as their job's lease may last.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use offload_sdk::{Client, Job, JobError, JobSpec, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Welcome {
//!     user: u64,
//! }
//!
//! async fn welcome(job: Job<Welcome>) -> Result<String, JobError> {
//!     if job.payload.user == 0 {
//!         return Err(JobError::fatal("no such user")); // no retry: the job is dead
//!     }
//!     // ... send the email; any `?` error is retried with backoff ...
//!     Ok(format!("welcomed {}", job.payload.user)) // kept as the job's result
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::new("http://127.0.0.1:7070")?; // .with_token("...") when the server wants one
//!
//!     // Producer: enqueue a job with a typed payload.
//!     let job = JobSpec::new("emails", &Welcome { user: 42 })
//!         .name("welcome")
//!         .delay(Duration::from_secs(5))
//!         .max_attempts(5);
//!     let enqueued = client.enqueue_job(&job).await?;
//!     println!("job {} is {}", enqueued.job.id, enqueued.job.state);
//!
//!     // Worker: up to 10 jobs of `emails` at once, until Ctrl-C; running jobs then get 30 s to finish.
//!     let worker = Worker::builder(client)
//!         .queue("emails", 10)
//!         .handler("welcome", welcome)
//!         .build()?;
//!     let stop = async {
//!         tokio::signal::ctrl_c().await.ok();
//!     };
//!     let stats = worker.run_until(stop, Duration::from_secs(30)).await;
//!     println!("{} succeeded, {} failed", stats.succeeded, stats.failed);
//!     Ok(())
//! }
//! ```
//!
//! Create one client per server and clone it freely: clones share one connection pool. Ordinary requests have
//! a [`DEFAULT_TIMEOUT`]; a long-polling claim is always allowed its `wait` plus a margin. The lower-level
//! methods ([`Client::claim`], [`Client::heartbeat`], [`Client::complete`] ...) are there for workers of your
//! own design.

mod client;
mod client_functions;
mod error;
pub mod function;
pub mod push;
pub mod retry;
mod schedules;
mod spec;
pub mod testing;
pub mod worker;

pub use client::{CONNECT_TIMEOUT, Client, DEFAULT_TIMEOUT, Enqueued};
pub use client_functions::{
    AppSynced, EventView, EventsSent, FunctionPut, FunctionView, RecordedError, RecordedStep,
    RunParent, RunView, RunsQuery, StepAttemptView, StepView,
};
pub use error::{Error, Result, TransportError, TransportKind, code};
/// A stored job as the API shows it (state, attempts, result), as [`Client::get_job`] answers. Not to be
/// confused with [`Job`], the attempt a handler receives.
pub use offload_core::Job as JobRecord;
pub use offload_core::api;
pub use offload_core::cron::{ScheduleInfo, ScheduleSpec};
pub use offload_core::spec::EnqueueRequest;
pub use offload_core::{
    Attempt, AttemptOutcome, Backoff, ClaimedJob, DurationSpec, JobId, JobState, LeaseToken,
    Progress, Timestamp,
};
pub use schedules::PutSchedule;
pub use spec::JobSpec;
pub use worker::{BuildError, Job, JobError, Worker, WorkerBuilder, WorkerHandle, WorkerStats};
