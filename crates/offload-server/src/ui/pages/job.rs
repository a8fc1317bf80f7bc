//! The job page (`/ui/jobs/{id}`): everything about one job: facts, tags, progress, a timeline, the payload,
//! the result, the last error and every attempt.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use offload_core::{AttemptOutcome, Job, JobId, JobState, Timestamp};

use crate::AppState;
use crate::error::AppError;
use crate::ui::format::{
    Shown, clip, duration, exact, pretty_json, relative, short_id, span, time,
};
use crate::ui::layout::{Layout, NoticeQuery, UiError, download, layout, render};
use crate::ui::session::Csrf;

/// Bytes of the payload, the result and the last error the page shows (the payload and result
/// pretty-printed); the rest is a download away ([`raw`]).
const VALUE_SHOWN: usize = 64 * 1024;
/// Bytes of each attempt's error shown (a job has up to 1,000 attempts, each shown twice).
const ATTEMPT_ERROR_SHOWN: usize = 2 * 1024;
/// Bytes of the progress message shown.
const MESSAGE_SHOWN: usize = 1024;

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    job: JobView,
}

struct JobView {
    id: String,
    short_id: String,
    queue: String,
    name: Option<String>,
    state: &'static str,
    cancel_requested: bool,
    can_retry: bool,
    can_cancel: bool,
    can_delete: bool,
    facts: Vec<(&'static str, String)>,
    tags: Vec<(String, String)>,
    progress: Option<ProgressView>,
    timeline: Vec<Event>,
    /// Where the job's whole stored values are (`/ui/jobs/{id}/raw/`), for values shown cut.
    raw: String,
    payload: Shown,
    result: Option<Shown>,
    last_error: Option<Shown>,
    attempts: Vec<AttemptRow>,
}

struct ProgressView {
    percent: u8,
    message: Option<Shown>,
}

/// One line of the state timeline.
struct Event {
    /// `start`, `good`, `bad` or `plain` (the dot's colour).
    kind: &'static str,
    time: String,
    exact: String,
    text: String,
    detail: Option<Detail>,
    at: Timestamp,
}

/// The error an attempt ended with, under its timeline line.
struct Detail {
    /// `attempt-N`, the error's name under [`raw`].
    part: String,
    error: Shown,
}

struct AttemptRow {
    number: u32,
    worker: Option<String>,
    started: String,
    started_exact: String,
    finished: Option<String>,
    took: String,
    outcome: &'static str,
    error: Option<Shown>,
    /// `attempt-N`, the error's name under [`raw`].
    part: String,
}

fn event(kind: &'static str, at: Timestamp, text: String, detail: Option<Detail>) -> Event {
    Event {
        kind,
        time: time(at),
        exact: exact(at),
        text,
        detail,
        at,
    }
}

/// The job's history as events in time order: enqueued, due, each attempt's start and end, its final state.
fn timeline(job: &Job) -> Vec<Event> {
    let mut events = vec![event("plain", job.created_at, "Enqueued".to_owned(), None)];
    if job.run_at > job.created_at && job.attempts.as_ref().is_none_or(|a| a.is_empty()) {
        let text = if job.state == JobState::Scheduled {
            "Due to run"
        } else {
            "Became due"
        };
        events.push(event("plain", job.run_at, text.to_owned(), None));
    }
    for a in job.attempts.iter().flatten() {
        let by = a
            .worker_id
            .as_deref()
            .map(|w| format!(" by {w}"))
            .unwrap_or_default();
        events.push(event(
            "start",
            a.started_at,
            format!("Attempt {} started{by}", a.attempt),
            None,
        ));
        if let Some(end) = a.finished_at {
            let (kind, what) = match a.outcome {
                AttemptOutcome::Succeeded => ("good", "succeeded"),
                AttemptOutcome::Failed => ("bad", "failed"),
                AttemptOutcome::LeaseExpired => ("bad", "lost its lease"),
                AttemptOutcome::Cancelled => ("plain", "was cancelled"),
                AttemptOutcome::Snoozed => ("plain", "was snoozed"),
                AttemptOutcome::Running => ("plain", "is running"),
            };
            events.push(event(
                kind,
                end,
                format!(
                    "Attempt {} {what} after {}",
                    a.attempt,
                    duration(span(a.started_at, end))
                ),
                a.error.as_deref().map(|e| Detail {
                    part: format!("attempt-{}", a.attempt),
                    error: clip(e, ATTEMPT_ERROR_SHOWN),
                }),
            ));
        }
    }
    match job.state {
        JobState::Retrying => events.push(event("plain", job.run_at, "Retry due".to_owned(), None)),
        JobState::Dead | JobState::Cancelled => {
            if let Some(at) = job.finished_at {
                let text = if job.state == JobState::Dead {
                    "Dead: no attempts left or not retryable"
                } else {
                    "Cancelled"
                };
                let kind = if job.state == JobState::Dead {
                    "bad"
                } else {
                    "plain"
                };
                events.push(event(kind, at, text.to_owned(), None));
            }
        }
        _ => {}
    }
    // Stable: equal instants keep their logical order.
    events.sort_by_key(|e| e.at);
    events
}

fn job_view(job: &Job, now: Timestamp) -> JobView {
    let id = job.id.to_string();
    let mut facts: Vec<(&'static str, String)> = vec![
        ("Priority", job.priority.to_string()),
        (
            "Attempts",
            format!("{} of {}", job.attempt, job.max_attempts),
        ),
        ("Timeout", duration(job.timeout.0)),
        (
            "Backoff",
            format!(
                "{} to {}, jitter {}",
                duration(job.backoff.base.0),
                duration(job.backoff.cap.0),
                job.backoff.jitter
            ),
        ),
        (
            "Created",
            format!(
                "{} ({})",
                time(job.created_at),
                relative(job.created_at, now)
            ),
        ),
        (
            "Due",
            format!("{} ({})", time(job.run_at), relative(job.run_at, now)),
        ),
    ];
    if let Some(t) = job.attempted_at {
        facts.push((
            "Last attempt",
            format!("{} ({})", time(t), relative(t, now)),
        ));
    }
    if let Some(t) = job.finished_at {
        facts.push(("Finished", format!("{} ({})", time(t), relative(t, now))));
    }
    if let Some(t) = job.lease_expires_at {
        facts.push(("Lease until", format!("{} ({})", time(t), relative(t, now))));
    }
    if let Some(w) = &job.worker_id {
        facts.push(("Worker", w.clone()));
    }
    if let Some(k) = &job.idempotency_key {
        facts.push(("Idempotency key", k.clone()));
    }
    if let Some(g) = &job.group {
        facts.push(("Group", g.clone()));
    }
    if let Some(k) = &job.debounce_key {
        facts.push(("Debounce key", k.clone()));
    }
    if let Some(w) = &job.waiting_for {
        facts.push(("Waiting for", crate::ui::format::waiting_for(w, now)));
    }
    let attempts = job
        .attempts
        .iter()
        .flatten()
        .map(|a| AttemptRow {
            number: a.attempt,
            worker: a.worker_id.clone(),
            started: time(a.started_at),
            started_exact: exact(a.started_at),
            finished: a.finished_at.map(time),
            took: duration(span(a.started_at, a.finished_at.unwrap_or(now))),
            outcome: a.outcome.as_str(),
            error: a.error.as_deref().map(|e| clip(e, ATTEMPT_ERROR_SHOWN)),
            part: format!("attempt-{}", a.attempt),
        })
        .collect();
    JobView {
        short_id: short_id(&id),
        raw: format!("/ui/jobs/{id}/raw/"),
        id,
        queue: job.queue.clone(),
        name: job.name.clone(),
        state: job.state.as_str(),
        cancel_requested: job.cancel_requested,
        can_retry: matches!(job.state, JobState::Dead | JobState::Cancelled),
        can_cancel: !job.state.is_finished() && !job.cancel_requested,
        can_delete: job.state != JobState::Running,
        facts,
        tags: job
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        progress: job.progress.as_ref().map(|p| ProgressView {
            percent: p.percent.min(100),
            message: p.message.as_deref().map(|m| clip(m, MESSAGE_SHOWN)),
        }),
        timeline: timeline(job),
        payload: pretty_json(job.payload.get(), VALUE_SHOWN),
        result: job
            .result
            .as_ref()
            .map(|r| pretty_json(r.get(), VALUE_SHOWN)),
        last_error: job.last_error.as_deref().map(|e| clip(e, VALUE_SHOWN)),
        attempts,
    }
}

/// The job `id` names, or the page's 404.
async fn find(app: &AppState, id: &str) -> Result<Job, UiError> {
    let not_found = || UiError(AppError::NotFound(format!("There is no job with id {id}.")));
    let job_id: JobId = id.parse().map_err(|_| not_found())?;
    app.engine.get(job_id).await?.ok_or_else(not_found)
}

/// `GET /ui/jobs/{id}`: everything about one job.
pub(crate) async fn job(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let job = find(&app, &id).await?;
    let page = JobPage {
        layout: layout(&app, csrf, "/ui/jobs", notice.notice()),
        job: job_view(&job, app.engine.now()),
    };
    Ok(render(&page))
}

/// One stored value of a job, as [`raw`] serves it.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Payload,
    Result,
    Error,
    Progress,
    Attempt(u32),
}

impl Part {
    /// `payload`, `result`, `error` (the last error), `progress` (its message) or `attempt-N` (its error).
    fn parse(text: &str) -> Option<Self> {
        match text {
            "payload" => Some(Part::Payload),
            "result" => Some(Part::Result),
            "error" => Some(Part::Error),
            "progress" => Some(Part::Progress),
            _ => text
                .strip_prefix("attempt-")
                .and_then(|n| n.parse().ok())
                .map(Part::Attempt),
        }
    }

    /// The stored value and whether it is JSON; `None` when the job has none.
    fn of(&self, job: Job) -> Option<(String, bool)> {
        match self {
            Part::Payload => Some((job.payload.get().to_owned(), true)),
            Part::Result => job.result.map(|r| (r.get().to_owned(), true)),
            Part::Error => job.last_error.map(|e| (e, false)),
            Part::Progress => job.progress.and_then(|p| p.message).map(|m| (m, false)),
            Part::Attempt(n) => job
                .attempts
                .into_iter()
                .flatten()
                .find(|a| a.attempt == *n)
                .and_then(|a| a.error)
                .map(|e| (e, false)),
        }
    }
}

/// `GET /ui/jobs/{id}/raw/{part}`: one stored value of the job exactly as stored, as a download
/// (`application/json` for the payload and the result, `text/plain` otherwise), for values the page cuts.
pub(crate) async fn raw(
    State(app): State<AppState>,
    Path((id, part)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let job = find(&app, &id).await?;
    let job_id = job.id;
    let missing = || UiError(AppError::NotFound(format!("Job {id} has no {part}.")));
    let which = Part::parse(&part).ok_or_else(missing)?;
    let (body, json) = which.of(job).ok_or_else(missing)?;
    // A UUID and a part that parsed (letters, digits, `-`, `+`): safe in a header as they are.
    Ok(download(body, json, &format!("job-{job_id}-{part}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_plainly() {
        assert_eq!(Part::parse("payload"), Some(Part::Payload));
        assert_eq!(Part::parse("attempt-3"), Some(Part::Attempt(3)));
        assert_eq!(Part::parse("attempt-x"), None);
        assert_eq!(Part::parse("secrets"), None);
    }
}
