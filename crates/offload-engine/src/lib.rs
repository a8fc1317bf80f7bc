//! Offload's runtime, between the HTTP API and the store.
//!
//! The [`Engine`] adds what a store alone cannot do: waking long-polling claimers the moment jobs become
//! available ([`wakeup`]), the maintenance loops that stage due jobs, rescue expired leases and prune old
//! jobs under a leader lease ([`maintenance`]), the cron enqueuer under its own lease ([`cron`]), schedule
//! management ([`schedules`]), and the order of a graceful stop. It knows no HTTP.

mod config;
mod cron;
mod engine;
mod error;
mod maintenance;
mod schedules;
mod wakeup;

pub use config::{EngineConfig, Retention};
pub use cron::CronPass;
pub use engine::Engine;
pub use error::{EngineError, Result};
pub use schedules::FileSchedules;
