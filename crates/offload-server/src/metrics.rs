//! `GET /metrics`: Prometheus text format.
//!
//! Two sources, one answer: what the engine counted through the `metrics` facade (rendered by the
//! Prometheus recorder the binary installed, if any), and the queues' state read from the store at scrape
//! time (depth by state from its maintained counters, the oldest available job's age from one index probe
//! per queue, the paused flag, and for queues with limits the available jobs each kind of limit holds, from
//! one bounded read per such queue decided by `offload_core::flow::held`). The scrape-time part is written here rather than kept as gauges, so a queue
//! that disappears stops being reported.
//!
//! Invariant: no label carries a job id; queue names are validated to `[A-Za-z0-9_.:-]`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::Matcher;
pub use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use offload_core::api::QueueInfo;
use offload_core::flow::held::HeldJobs;
use offload_engine::observe;

use crate::AppState;
use crate::error::Result;

/// Where the metrics are served.
pub(crate) const PATH: &str = "/metrics";

/// Jobs per queue and state, from the store's maintained counters.
pub const QUEUE_DEPTH: &str = "offload_queue_depth";
/// Age of each queue's oldest available job.
pub const QUEUE_OLDEST_AVAILABLE: &str = "offload_queue_oldest_available_age_seconds";
/// 1 when the queue is paused.
pub const QUEUE_PAUSED: &str = "offload_queue_paused";
/// Available jobs of a queue with limits that a limit holds now, by `kind`.
pub const QUEUE_HELD: &str = "offload_queue_held_jobs";

/// The Prometheus recorder Offload's metrics need (explicit histogram buckets). The binary installs it
/// (`.install_recorder()`) and passes the handle in [`crate::ServerConfig::metrics`]; nothing in this crate
/// installs anything globally.
pub fn recorder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(observe::JOB_WAIT_SECONDS.to_owned()),
            &observe::DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(observe::JOB_RUN_SECONDS.to_owned()),
            &observe::DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(observe::RUN_SECONDS.to_owned()),
            &observe::DURATION_BUCKETS,
        )
}

/// The handler: the recorder's metrics, then the queues'.
pub(crate) async fn render(State(app): State<AppState>) -> Result<impl IntoResponse> {
    let queues = app.engine.queues().await?;
    let mut body = match &app.metrics {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    write_queues(&mut body, &queues);
    let mut held = Vec::new();
    for q in queues.iter().filter(|q| !q.limits.is_unlimited()) {
        held.push((q.name.as_str(), app.engine.queue_held(&q.name).await?));
    }
    write_held(&mut body, &held);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

/// Appends the scrape-time queue metrics.
fn write_queues(out: &mut String, queues: &[QueueInfo]) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    header_lines(out, QUEUE_DEPTH, "Jobs per queue and state.");
    for q in queues {
        for (state, n) in &q.counts {
            let _ = writeln!(
                out,
                "{QUEUE_DEPTH}{{queue=\"{}\",state=\"{state}\"}} {n}",
                escape(&q.name)
            );
        }
    }
    header_lines(
        out,
        QUEUE_OLDEST_AVAILABLE,
        "Seconds since the oldest available job of the queue was due (0 when none is available).",
    );
    for q in queues {
        let age = q.oldest_available_age_ms.unwrap_or(0) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{QUEUE_OLDEST_AVAILABLE}{{queue=\"{}\"}} {age}",
            escape(&q.name)
        );
    }
    header_lines(out, QUEUE_PAUSED, "1 when the queue is paused.");
    for q in queues {
        let _ = writeln!(
            out,
            "{QUEUE_PAUSED}{{queue=\"{}\"}} {}",
            escape(&q.name),
            u8::from(q.paused)
        );
    }
}

/// Appends the held jobs of the queues with limits.
fn write_held(out: &mut String, held: &[(&str, HeldJobs)]) {
    header_lines(
        out,
        QUEUE_HELD,
        "Available jobs of a queue with limits held now, by the kind of limit holding them.",
    );
    for (queue, counts) in held {
        for (kind, n) in counts.by_kind() {
            let _ = writeln!(
                out,
                "{QUEUE_HELD}{{queue=\"{}\",kind=\"{kind}\"}} {n}",
                escape(queue)
            );
        }
    }
}

fn header_lines(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// A label value escaped per the text format (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
