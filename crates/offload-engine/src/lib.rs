//! Offload's runtime, between the HTTP API and the store.
//!
//! The [`Engine`] adds what a store alone cannot do: waking long-polling claimers the moment jobs become
//! available ([`wakeup`]), the maintenance loops that stage due jobs, rescue expired leases and prune old
//! jobs under a leader lease ([`maintenance`]), the cron enqueuer under its own lease ([`cron`]), schedule
//! management ([`schedules`]), the push dispatcher that delivers push jobs to their targets ([`push`]), and
//! the order of a graceful stop. It serves no HTTP; it only sends push deliveries. It counts what happens to
//! jobs through the `metrics` facade ([`observe`]).

mod config;
mod cron;
mod engine;
mod error;
mod leadership;
mod maintenance;
pub mod observe;
pub mod push;
mod schedules;
mod wakeup;

pub use config::{EngineConfig, Retention};
pub use cron::CronPass;
pub use engine::Engine;
pub use error::{EngineError, Result};
pub use observe::describe_metrics;
pub use push::{AddressPolicy, PushConfig, SigningSecret};
pub use schedules::FileSchedules;
