//! The HTTP API, tested against a real engine and SQLite store: in-process with `oneshot`, and end to end
//! over a real socket (`e2e`). One test binary, so the workspace links it once.

mod common;
mod e2e;
mod enqueue;
mod events;
mod flow;
mod function_cron;
mod functions;
mod jobs;
mod json_rule;
mod logs;
mod metrics;
mod push;
mod routing;
mod runs;
mod schedules;
mod serving;
mod small_refusals;
mod snooze_abort;
mod ui;
mod workers;
