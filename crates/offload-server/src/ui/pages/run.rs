//! The run page (`/ui/runs/{id}`): one run of a durable function: its facts, the event that started it, a
//! timeline of its steps (kind, failed attempts with their errors, durations, data, sleeps and waits with
//! their `until`), its output or error, and the cancel and retry buttons.
//!
//! Invariant: every stored value is cut before it is rendered ([`crate::ui::format`]), and the step values of
//! one page share a byte budget ([`STEPS_SHOWN`]), so a run with a thousand large steps still renders a
//! bounded page; whatever is cut is a download away ([`raw`]).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use offload_core::Timestamp;
use offload_core::function::protocol::{StepError, StepResult};
use offload_core::function::record::StepKind;
use offload_core::function::run::{RunId, RunState};
use offload_store::{RUN_TAG, RunRecord, StepRecord};
use serde::Deserialize;

use crate::AppState;
use crate::error::AppError;
use crate::ui::format::{
    Shown, clip, duration, exact, pretty_json, relative, short_id, span, time,
};
use crate::ui::layout::{Layout, NoticeQuery, UiError, download, layout, render};
use crate::ui::pages::runs::event_name;
use crate::ui::session::Csrf;

/// Bytes of the event, the output and the run's error shown.
const VALUE_SHOWN: usize = 64 * 1024;
/// Bytes of one step's data or error shown.
const STEP_VALUE_SHOWN: usize = 8 * 1024;
/// Bytes of one failed attempt's error shown.
const ATTEMPT_ERROR_SHOWN: usize = 2 * 1024;
/// Failed attempts listed per step (the latest ones; the count says how many there were).
const ATTEMPTS_SHOWN: usize = 20;
/// Bytes of step values (data and errors) one page shows in all; past it values are only downloads.
const STEPS_SHOWN: usize = 1024 * 1024;

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    run: RunView,
}

struct RunView {
    id: String,
    short_id: String,
    function_id: String,
    state: &'static str,
    can_cancel: bool,
    can_retry: bool,
    facts: Vec<(&'static str, String)>,
    parent: Option<(String, String)>,
    event_id: String,
    event_name: Option<String>,
    event: Shown,
    event_raw: String,
    /// The jobs list of the run's calls (call jobs carry the run's id in a tag).
    calls: String,
    output: Option<Shown>,
    output_raw: String,
    error: Option<Shown>,
    error_raw: String,
    steps: Vec<StepView>,
}

struct StepView {
    id: String,
    kind: &'static str,
    /// `succeeded`, `failed`, `sleeping`, `waiting`, `retrying` or `pending`.
    status: &'static str,
    started: String,
    started_exact: String,
    /// When its result was recorded, and how long after its start.
    recorded: Option<(String, String)>,
    /// A sleep's end, or when a pending wait or invoke resolves at the latest; and that relative to now.
    until: Option<(String, String)>,
    /// Failed attempts in all (the list shows the latest [`ATTEMPTS_SHOWN`]).
    failed_count: usize,
    attempts: Vec<AttemptView>,
    data: Option<Shown>,
    error: Option<Shown>,
    /// Where the whole result is.
    raw: String,
}

struct AttemptView {
    number: u32,
    at: String,
    at_exact: String,
    error: Shown,
    raw: String,
}

/// How much of the page's step values is still to be shown.
struct Budget(usize);

impl Budget {
    /// `raw` cut to `per` bytes or what is left of the budget, whichever is less.
    fn json(&mut self, raw: &str, per: usize) -> Shown {
        self.take(pretty_json(raw, per.min(self.0)))
    }

    /// Like [`Budget::json`], for text.
    fn text(&mut self, text: &str, per: usize) -> Shown {
        self.take(clip(text, per.min(self.0)))
    }

    fn take(&mut self, shown: Shown) -> Shown {
        self.0 = self.0.saturating_sub(shown.text.len());
        shown
    }
}

/// An error as people read it: `Name: message`.
fn error_text(e: &StepError) -> String {
    format!("{}: {}", e.name, e.message)
}

/// `/ui/runs/{run}/raw/{part}` with the step (and attempt) in the query.
fn raw_href(run: &str, part: &str, step: Option<&str>, attempt: Option<u32>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(step) = step {
        q.append_pair("step", step);
    }
    if let Some(n) = attempt {
        q.append_pair("attempt", &n.to_string());
    }
    let q = q.finish();
    if q.is_empty() {
        format!("/ui/runs/{run}/raw/{part}")
    } else {
        format!("/ui/runs/{run}/raw/{part}?{q}")
    }
}

fn step_view(run: &str, step: &StepRecord, now: Timestamp, budget: &mut Budget) -> StepView {
    // A sleep is recorded (as `null`) when it is planned: it is asleep until its `until` passes.
    let asleep = step.kind == StepKind::Sleep && step.until.is_some_and(|u| u > now);
    let (status, data, error) = match &step.result {
        Some(StepResult::Data(_)) if step.kind == StepKind::Sleep => {
            (if asleep { "sleeping" } else { "succeeded" }, None, None)
        }
        Some(StepResult::Data(d)) => (
            "succeeded",
            Some(budget.json(d.get(), STEP_VALUE_SHOWN)),
            None,
        ),
        Some(StepResult::Error(e)) => (
            "failed",
            None,
            Some(budget.text(&error_text(e), STEP_VALUE_SHOWN)),
        ),
        None => {
            let status = match (step.kind, step.until) {
                (StepKind::Sleep, Some(_)) => "sleeping",
                (_, Some(_)) => "waiting",
                _ if !step.failed_attempts.is_empty() => "retrying",
                _ => "pending",
            };
            (status, None, None)
        }
    };
    let skip = step.failed_attempts.len().saturating_sub(ATTEMPTS_SHOWN);
    let attempts = step
        .failed_attempts
        .iter()
        .skip(skip)
        .map(|a| AttemptView {
            number: a.attempt,
            at: time(a.at),
            at_exact: exact(a.at),
            error: budget.text(&error_text(&a.error), ATTEMPT_ERROR_SHOWN),
            raw: raw_href(run, "attempt", Some(&step.id), Some(a.attempt)),
        })
        .collect();
    StepView {
        id: step.id.clone(),
        kind: step.kind.as_str(),
        status,
        started: time(step.started_at),
        started_exact: exact(step.started_at),
        recorded: step
            .recorded_at
            .map(|r| (time(r), duration(span(step.started_at, r)))),
        // A resolved wait or invoke no longer waits for its timeout; a sleep's end stays worth knowing.
        until: step
            .until
            .filter(|_| step.result.is_none() || step.kind == StepKind::Sleep)
            .map(|u| (time(u), relative(u, now))),
        failed_count: step.failed_attempts.len(),
        attempts,
        data,
        error,
        raw: raw_href(run, "step", Some(&step.id), None),
    }
}

fn run_view(run: &RunRecord, steps: &[StepRecord], now: Timestamp) -> RunView {
    let id = run.id.to_string();
    let mut facts: Vec<(&'static str, String)> = vec![(
        "Created",
        format!(
            "{} ({})",
            time(run.created_at),
            relative(run.created_at, now)
        ),
    )];
    if let Some(t) = run.started_at {
        facts.push(("Started", time(t)));
    }
    if let Some(t) = run.ended_at {
        facts.push(("Ended", time(t)));
    }
    if let Some(s) = run.started_at {
        let label = if run.ended_at.is_some() {
            "Took"
        } else {
            "Running for"
        };
        facts.push((label, duration(span(s, run.ended_at.unwrap_or(now)))));
    }
    if let Some(t) = run.wake_at.filter(|_| !run.state.is_final()) {
        facts.push(("Wakes", format!("{} ({})", time(t), relative(t, now))));
    }
    facts.push(("Steps recorded", run.steps.to_string()));
    facts.push(("Updated", time(run.updated_at)));
    let mut budget = Budget(STEPS_SHOWN);
    RunView {
        short_id: short_id(&id),
        function_id: run.function_id.clone(),
        state: run.state.as_str(),
        can_cancel: run.state.is_cancellable(),
        can_retry: run.state.is_retryable(),
        facts,
        parent: run.parent.as_ref().map(|(p, s)| (p.to_string(), s.clone())),
        event_id: run.event_id.to_string(),
        event_name: event_name(&run.event),
        event: pretty_json(run.event.get(), VALUE_SHOWN),
        event_raw: raw_href(&id, "event", None, None),
        calls: format!(
            "/ui/jobs?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("tag", &format!("{RUN_TAG}:{id}"))
                .finish()
        ),
        output: run
            .output
            .as_ref()
            .filter(|_| run.state == RunState::Succeeded)
            .map(|o| pretty_json(o.get(), VALUE_SHOWN)),
        output_raw: raw_href(&id, "output", None, None),
        error: run
            .error
            .as_ref()
            .map(|e| clip(&error_text(e), VALUE_SHOWN)),
        error_raw: raw_href(&id, "error", None, None),
        steps: steps
            .iter()
            .map(|s| step_view(&id, s, now, &mut budget))
            .collect(),
        id,
    }
}

/// The run `id` names, or the page's 404.
async fn find(app: &AppState, id: &str) -> Result<RunRecord, UiError> {
    let not_found = || UiError(AppError::NotFound(format!("There is no run with id {id}.")));
    let run_id: RunId = id.parse().map_err(|_| not_found())?;
    app.engine
        .store()
        .run_get(run_id)
        .await?
        .ok_or_else(not_found)
}

/// `GET /ui/runs/{id}`: everything about one run.
pub(crate) async fn run(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let run = find(&app, &id).await?;
    let steps = app.engine.store().run_steps(run.id).await?;
    let page = RunPage {
        layout: layout(&app, csrf, "/ui/runs", notice.notice()),
        run: run_view(&run, &steps, app.engine.now()),
    };
    Ok(render(&page))
}

/// Which step (and attempt) a raw download is about.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawQuery {
    #[serde(default)]
    step: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
}

/// One stored value of a run, exactly as stored, and whether it is JSON; `None` when the run has none.
async fn raw_value(
    app: &AppState,
    run: RunRecord,
    part: &str,
    q: &RawQuery,
) -> Result<Option<(String, bool)>, UiError> {
    let step = || q.step.as_deref().unwrap_or("");
    Ok(match part {
        "event" => Some((run.event.get().to_owned(), true)),
        "output" => run.output.map(|o| (o.get().to_owned(), true)),
        "error" => run.error.map(|e| (error_text(&e), false)),
        "step" | "attempt" => {
            let steps = app.engine.store().run_steps(run.id).await?;
            let Some(found) = steps.into_iter().find(|s| s.id == step()) else {
                return Ok(None);
            };
            if part == "attempt" {
                found
                    .failed_attempts
                    .into_iter()
                    .find(|a| Some(a.attempt) == q.attempt)
                    .map(|a| (error_text(&a.error), false))
            } else {
                match found.result {
                    Some(StepResult::Data(d)) => Some((d.get().to_owned(), true)),
                    Some(StepResult::Error(e)) => Some((error_text(&e), false)),
                    None => None,
                }
            }
        }
        _ => None,
    })
}

/// `GET /ui/runs/{id}/raw/{part}`: the run's `event`, `output` or `error`, a `step`'s result or an
/// `attempt`'s error (`?step=&attempt=`), exactly as stored, as a download for values the page cuts.
pub(crate) async fn raw(
    State(app): State<AppState>,
    Path((id, part)): Path<(String, String)>,
    Query(q): Query<RawQuery>,
) -> Result<Response, UiError> {
    let run = find(&app, &id).await?;
    let run_id = run.id;
    let missing = || UiError(AppError::NotFound(format!("Run {id} has no such {part}.")));
    let (body, json) = raw_value(&app, run, &part, &q).await?.ok_or_else(missing)?;
    // A UUID and a part that matched a fixed name: safe in a header as they are.
    Ok(download(body, json, &format!("run-{run_id}-{part}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_core::function::protocol::Json;
    use offload_store::StepAttempt;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn steps_show_their_attempts_status_and_duration() {
        let error = StepError {
            name: "CardDeclined".into(),
            message: "insufficient funds".into(),
        };
        let step = StepRecord {
            id: "charge card/1".into(),
            kind: StepKind::Run,
            result: Some(StepResult::Data(Json::from_text(r#"{"ok":true}"#).unwrap())),
            failed_attempts: vec![
                StepAttempt {
                    attempt: 1,
                    error: error.clone(),
                    at: at("2026-01-01T00:00:01Z"),
                },
                StepAttempt {
                    attempt: 2,
                    error,
                    at: at("2026-01-01T00:00:03Z"),
                },
            ],
            started_at: at("2026-01-01T00:00:00Z"),
            recorded_at: Some(at("2026-01-01T00:00:04.5Z")),
            until: None,
        };
        let mut budget = Budget(STEPS_SHOWN);
        let view = step_view("r", &step, at("2026-01-01T00:01:00Z"), &mut budget);
        assert_eq!(view.status, "succeeded");
        assert_eq!(view.attempts.len(), 2);
        assert_eq!(
            view.attempts[1].error.text,
            "CardDeclined: insufficient funds"
        );
        assert_eq!(view.recorded.as_ref().unwrap().1, "4.5s");
        assert_eq!(view.data.as_ref().unwrap().text, "{\n  \"ok\": true\n}");
        assert_eq!(view.raw, "/ui/runs/r/raw/step?step=charge+card%2F1");
        assert_eq!(
            view.attempts[0].raw,
            "/ui/runs/r/raw/attempt?step=charge+card%2F1&attempt=1"
        );
    }

    #[test]
    fn pending_sleeps_show_when_they_end() {
        let step = StepRecord {
            id: "nap".into(),
            kind: StepKind::Sleep,
            result: None,
            failed_attempts: vec![],
            started_at: at("2026-01-01T00:00:00Z"),
            recorded_at: None,
            until: Some(at("2026-01-01T00:02:00Z")),
        };
        let mut budget = Budget(STEPS_SHOWN);
        let view = step_view("r", &step, at("2026-01-01T00:01:00Z"), &mut budget);
        assert_eq!(view.status, "sleeping");
        let (until, relative) = view.until.unwrap();
        assert_eq!(until, "2026-01-01 00:02:00 UTC");
        assert_eq!(relative, "in 1m 00s");
    }

    #[test]
    fn the_page_budget_bounds_every_step_value() {
        let mut budget = Budget(10);
        let first = budget.json(r#""abcdefgh""#, STEP_VALUE_SHOWN);
        assert_eq!(first.cut_from, None);
        let second = budget.text("more text than fits", STEP_VALUE_SHOWN);
        assert_eq!(second.text, "");
        assert_eq!(second.cut_from, Some(19));
    }
}
