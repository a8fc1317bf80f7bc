//! Counters and histograms of what happens to jobs and function runs, emitted through the `metrics` facade.
//!
//! Invariant: labels are bounded sets (queue names, function ids, event names, outcome names), never a job,
//! run or event id. Without an installed
//! recorder every emission is a no-op; the binary installs one (the Prometheus exporter) and the server
//! renders it at `/metrics`.

use std::time::Duration;

use offload_core::function::run::RunState;
use offload_core::{JobState, Timestamp};
use offload_store::RunChange;

/// Jobs stored by enqueues (idempotent replays not counted), by `queue`.
pub const JOBS_ENQUEUED: &str = "offload_jobs_enqueued_total";
/// Attempts ended, by `queue` and `state` (`succeeded`, `retrying`, `dead`, `cancelled`).
pub const JOBS_FINISHED: &str = "offload_jobs_finished_total";
/// Seconds from a job being due to its attempt starting, by `queue`.
pub const JOB_WAIT_SECONDS: &str = "offload_job_wait_seconds";
/// Seconds from an attempt's start to its worker's report, by `queue`.
pub const JOB_RUN_SECONDS: &str = "offload_job_run_seconds";
/// Attempts ended because their lease expired, by `queue`.
pub const LEASE_EXPIRIES: &str = "offload_lease_expiries_total";
/// Flow counters found drifted from their jobs and repaired, by `queue` and `counter` (`group_available`,
/// `group_running`, `queue_available`, `queue_running`, `queue_grouped_available`).
pub const FLOW_COUNTER_REPAIRS: &str = "offload_flow_counter_repairs_total";
/// Push deliveries by `queue` and `result` (`2xx`, `3xx`, `4xx`, `5xx`, `timeout`, `connect`, `refused`).
pub const PUSH_DELIVERIES: &str = "offload_push_deliveries_total";

/// Events received by `POST /v1/events`, by `name` and `outcome` (`stored`, `duplicate`).
pub const EVENTS_RECEIVED: &str = "offload_events_received_total";
/// Function runs started, by `function`.
pub const RUNS_STARTED: &str = "offload_runs_started_total";
/// Function runs ended, by `function` and `state` (`succeeded`, `failed`, `cancelled`).
pub const RUNS_FINISHED: &str = "offload_runs_finished_total";
/// Seconds from a run's creation to its end, by `function` and `state`.
pub const RUN_SECONDS: &str = "offload_run_seconds";
/// Steps reported by function code, by `function` and `outcome` (`data`, `error`, `retry`, `planned`).
pub const STEPS: &str = "offload_steps_total";

/// Upper bounds (seconds) of the wait and run histograms' buckets: from 5 ms to an hour.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Registers the descriptions of every metric with the installed recorder (call once after installing it).
pub fn describe_metrics() {
    metrics::describe_counter!(JOBS_ENQUEUED, "Jobs stored by enqueues, by queue.");
    metrics::describe_counter!(
        JOBS_FINISHED,
        "Attempts ended, by queue and the state the job moved to (succeeded, retrying, dead, cancelled)."
    );
    metrics::describe_histogram!(
        JOB_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time from a job being due to its attempt starting, by queue."
    );
    metrics::describe_histogram!(
        JOB_RUN_SECONDS,
        metrics::Unit::Seconds,
        "Time from an attempt starting to its worker reporting, by queue."
    );
    metrics::describe_counter!(
        LEASE_EXPIRIES,
        "Attempts ended by an expired lease, by queue."
    );
    metrics::describe_counter!(
        FLOW_COUNTER_REPAIRS,
        "Flow counters found drifted from their jobs and repaired, by queue and counter."
    );
    metrics::describe_counter!(
        PUSH_DELIVERIES,
        "Push deliveries, by queue and result class (2xx, 3xx, 4xx, 5xx, timeout, connect, refused)."
    );
    metrics::describe_counter!(
        EVENTS_RECEIVED,
        "Events received, by name and outcome (stored, duplicate)."
    );
    metrics::describe_counter!(RUNS_STARTED, "Function runs started, by function.");
    metrics::describe_counter!(
        RUNS_FINISHED,
        "Function runs ended, by function and state (succeeded, failed, cancelled)."
    );
    metrics::describe_histogram!(
        RUN_SECONDS,
        metrics::Unit::Seconds,
        "Time from a function run's creation to its end, by function and state."
    );
    metrics::describe_counter!(
        STEPS,
        "Steps reported by function code, by function and outcome (data, error, retry, planned)."
    );
}

/// `n` jobs stored on `queue`.
pub(crate) fn enqueued(queue: &str, n: u64) {
    metrics::counter!(JOBS_ENQUEUED, "queue" => queue.to_owned()).increment(n);
}

/// An attempt ended and its job moved to `state`.
pub(crate) fn finished(queue: &str, state: JobState) {
    metrics::counter!(JOBS_FINISHED, "queue" => queue.to_owned(), "state" => finish_label(state))
        .increment(1);
}

/// The label of the state a finished attempt left its job in: a failure that will be tried again is
/// `retrying`, whether it waits for its backoff or is due at once.
fn finish_label(state: JobState) -> &'static str {
    match state {
        JobState::Succeeded => "succeeded",
        JobState::Dead => "dead",
        JobState::Cancelled => "cancelled",
        JobState::Retrying | JobState::Available | JobState::Scheduled | JobState::Running => {
            "retrying"
        }
    }
}

/// An attempt started at `start` for a job due at `due`.
pub(crate) fn waited(queue: &str, due: Timestamp, start: Timestamp) {
    metrics::histogram!(JOB_WAIT_SECONDS, "queue" => queue.to_owned()).record(seconds(due, start));
}

/// An attempt that started at `start` was reported at `end`.
pub(crate) fn ran(queue: &str, start: Timestamp, end: Timestamp) {
    metrics::histogram!(JOB_RUN_SECONDS, "queue" => queue.to_owned()).record(seconds(start, end));
}

/// An attempt's lease expired.
pub(crate) fn lease_expired(queue: &str) {
    metrics::counter!(LEASE_EXPIRIES, "queue" => queue.to_owned()).increment(1);
}

/// A flow counter drifted and was repaired.
pub(crate) fn flow_counter_repaired(queue: &str, counter: offload_store::FlowCounter) {
    metrics::counter!(FLOW_COUNTER_REPAIRS, "queue" => queue.to_owned(), "counter" => counter.as_str())
        .increment(1);
}

/// An event was received; `duplicate` when its id was seen within retention.
pub(crate) fn event_received(name: &str, duplicate: bool) {
    let outcome = if duplicate { "duplicate" } else { "stored" };
    metrics::counter!(EVENTS_RECEIVED, "name" => name.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A run of `function` ended in `state` after running from `created` to `ended`.
pub(crate) fn run_ended(function: &str, state: RunState, created: Timestamp, ended: Timestamp) {
    run_lasted(function, state, seconds(created, ended));
}

/// A run of `function` ended in `state` after `secs` seconds.
fn run_lasted(function: &str, state: RunState, secs: f64) {
    metrics::counter!(RUNS_FINISHED, "function" => function.to_owned(), "state" => state.as_str())
        .increment(1);
    metrics::histogram!(RUN_SECONDS, "function" => function.to_owned(), "state" => state.as_str())
        .record(secs);
}

/// Runs started, one per function id in `functions` (an event's fan-out).
pub(crate) fn runs_started(functions: &[String]) {
    for function in functions {
        metrics::counter!(RUNS_STARTED, "function" => function.clone()).increment(1);
    }
}

/// What the end of a call job did to its run, as the store reported it: the steps its answer recorded, and the
/// run's end if it ended.
pub(crate) fn run_changed(change: &RunChange) {
    let f = change.function_id.as_str();
    steps(f, "data", u64::from(change.steps.data));
    steps(f, "error", u64::from(change.steps.error));
    steps(f, "retry", u64::from(change.steps.retry));
    steps(f, "planned", u64::from(change.steps.planned));
    if let Some(end) = change.ended {
        run_lasted(f, end.state, end.duration.as_secs_f64());
    }
}

/// `n` steps of `function` reported with `outcome`.
pub(crate) fn steps(function: &str, outcome: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    metrics::counter!(STEPS, "function" => function.to_owned(), "outcome" => outcome).increment(n);
}

/// Seconds from `from` to `to`, zero when `to` is earlier (clocks of different sources, truncation).
fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    Duration::try_from(to.duration_since(from))
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_that_retry_are_labelled_retrying() {
        assert_eq!(finish_label(JobState::Available), "retrying");
        assert_eq!(finish_label(JobState::Retrying), "retrying");
        assert_eq!(finish_label(JobState::Dead), "dead");
        assert_eq!(finish_label(JobState::Succeeded), "succeeded");
        assert_eq!(finish_label(JobState::Cancelled), "cancelled");
    }

    #[test]
    fn negative_spans_are_zero() {
        let a: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-01-01T00:00:01.5Z".parse().unwrap();
        assert_eq!(seconds(a, b), 1.5);
        assert_eq!(seconds(b, a), 0.0);
    }
}
