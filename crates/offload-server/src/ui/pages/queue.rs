//! The queue page (`/ui/queues/{queue}`): a queue's counts, its limits, their live usage and the groups with
//! most available jobs.
//!
//! Invariant: one bounded store read ([`offload_store::Store::queue_get`]: counters, and at most 10 groups).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use offload_core::JobState;
use offload_core::spec::validate_queue_name;

use crate::AppState;
use crate::error::AppError;
use crate::ui::format::{relative, time};
use crate::ui::layout::{Layout, UiError, layout, render};
use crate::ui::session::Csrf;

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    layout: Layout,
    name: String,
    paused: bool,
    counts: Vec<(&'static str, u64)>,
    limits: Vec<String>,
    running: String,
    groups_running: u64,
    throttle_next: Option<String>,
    groups: Vec<GroupRow>,
}

/// One of the groups with most available jobs.
struct GroupRow {
    group: String,
    available: u64,
    running: u64,
}

/// `GET /ui/queues/{queue}`: the queue with its limits and usage.
pub(crate) async fn queue(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    validate_queue_name(&name).map_err(|m| UiError(AppError::invalid("queue", m)))?;
    let Some(info) = app.engine.queue(&name).await? else {
        return Err(UiError(AppError::NotFound(format!(
            "queue {name} not found"
        ))));
    };
    let now = app.engine.now();
    let usage = info.usage.clone().unwrap_or_default();
    let running = match info.limits.concurrency {
        Some(c) => format!("{} of {c}", usage.running),
        None => usage.running.to_string(),
    };
    let page = QueuePage {
        layout: layout(&app, csrf, "/ui", None),
        counts: JobState::ALL
            .iter()
            .map(|s| (s.as_str(), info.counts.get(s).copied().unwrap_or(0)))
            .collect(),
        limits: info.limits.phrases(),
        running,
        groups_running: usage.groups_running,
        throttle_next: usage
            .throttle_next_at
            .map(|t| format!("{} ({})", time(t), relative(t, now))),
        groups: usage
            .top_groups
            .into_iter()
            .map(|g| GroupRow {
                group: g.group,
                available: g.available,
                running: g.running,
            })
            .collect(),
        name: info.name,
        paused: info.paused,
    };
    Ok(render(&page))
}
