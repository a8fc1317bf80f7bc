//! Rust client for Offload's HTTP API.
//!
//! [`Client`] has one async method per endpoint and speaks the wire types of [`offload_core::api`], so it can
//! never disagree with the server about the format. Errors keep the server's stable problem `code` and human
//! `detail` ([`Error::code`], [`Error::detail`]).
//!
//! Create one client per server and clone it freely: clones share one connection pool. Ordinary requests have
//! a [`DEFAULT_TIMEOUT`]; a long-polling claim is always allowed its `wait` plus a margin.
//!
//! ```no_run
//! use offload_sdk::{Client, EnqueueRequest};
//! use offload_sdk::api::{ClaimRequest, CompleteRequest};
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:7070")?.with_token("secret");
//!
//! // Producer: enqueue a job.
//! let request = EnqueueRequest {
//!     queue: "emails".into(),
//!     name: Some("welcome".into()),
//!     payload: Some(serde_json::value::to_raw_value(&serde_json::json!({ "user": 42 }))?),
//!     ..EnqueueRequest::default()
//! };
//! let enqueued = client.enqueue(&request).await?;
//! println!("job {} is {}", enqueued.job.id, enqueued.job.state);
//!
//! // Worker: claim it (long-polling up to 30 s), do the work, report.
//! let claim = ClaimRequest { worker_id: "worker-1".into(), max_jobs: Some(10), wait: Some(Duration::from_secs(30).into()) };
//! for job in client.claim("emails", &claim).await?.jobs {
//!     // ... work on job.payload ...
//!     client.complete(job.id, &CompleteRequest { lease_token: job.lease_token, result: None }).await?;
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod schedules;

pub use client::{CONNECT_TIMEOUT, Client, DEFAULT_TIMEOUT, Enqueued};
pub use error::{Error, Result, TransportError, TransportKind, code};
pub use offload_core::api;
pub use offload_core::cron::{ScheduleInfo, ScheduleSpec};
pub use offload_core::spec::EnqueueRequest;
pub use offload_core::{ClaimedJob, DurationSpec, Job, JobId, JobState, LeaseToken, Timestamp};
pub use schedules::PutSchedule;
