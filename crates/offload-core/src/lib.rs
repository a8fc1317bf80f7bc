//! Offload's domain, free of I/O.
//!
//! Everything that decides *what happens* to a job lives here as plain data and pure functions: the job model
//! and its states ([`job`]), the transitions between states ([`state`]), the retry policy ([`backoff`]),
//! validation of what users send ([`spec`]), cron schedules and their policies ([`cron`]) and the wire types
//! the server and the SDK share ([`api`]); push delivery's targets, outcome rules and callbacks are in [`push`];
//! durable functions' events, definitions, call protocol and step records are in [`function`]; queue limits,
//! throttles, fair claims and debounce are in [`flow`]; log lines of jobs and runs are in [`log`].
//! Stores persist what these functions decide; they never re-implement the rules.

pub mod api;
pub mod backoff;
pub mod clock;
pub mod cron;
pub mod duration;
pub mod flow;
pub mod function;
pub mod id;
pub mod job;
pub mod json_rule;
pub mod log;
pub mod net;
mod object;
pub mod push;
pub mod spec;
pub mod state;
pub mod time;
mod whole;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use duration::DurationSpec;
pub use id::{JobId, LeaseToken};
pub use jiff::{SignedDuration, Timestamp};
pub use job::{
    Attempt, AttemptOutcome, ClaimedJob, Job, JobState, NewJob, Progress, RunAt, ScheduledBy,
};
