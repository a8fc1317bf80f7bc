//! Offload's runtime, between the HTTP API and the store.
//!
//! The [`Engine`] (the facade, `engine`) adds what a store alone cannot do: waking long-polling claimers
//! the moment jobs become available (`wakeup`), and the services it builds and spawns on start, each owning
//! only what it needs: the stager, rescuer and pruner (`maintenance`) under one leader lease (`leadership`),
//! the cron enqueuer (`cron`) under its own, and the push dispatcher that delivers push jobs to their targets
//! ([`push`]). Each service raises [`Signals`] (`signal`) that tests wait on. Recording attempts' ends is
//! shared by the API and the dispatcher (`finish`). It serves no HTTP; it only sends push deliveries. It
//! counts what happens to jobs through the `metrics` facade ([`observe`]).

mod config;
mod cron;
mod engine;
mod error;
mod finish;
pub mod functions;
mod leadership;
mod maintenance;
pub mod observe;
pub mod push;
mod signal;
mod wakeup;

pub use config::{EngineConfig, FunctionsConfig, Retention};
pub use cron::CronPass;
pub use engine::Engine;
pub use engine::FileSchedules;
pub use error::{EngineError, Result};
pub use observe::describe_metrics;
pub use push::{AddressPolicy, PushConfig, SigningSecret};
pub use signal::{Flag, Signals, Ticks};
