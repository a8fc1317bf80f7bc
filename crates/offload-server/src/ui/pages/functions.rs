//! The functions page (`/ui/functions`): every registered function with its triggers, where its calls go
//! (queue or push target), its retry policy, and how many runs it started and lost in the last hour.
//!
//! Invariant: one page of functions per request ([`FUNCTION_PAGE`]), and each function's recent runs are read
//! with one bounded list ([`RECENT_RUNS`] rows at most), so the page costs the same however many functions and
//! runs exist. Counts that reach the bound are shown as "N+".

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use futures::StreamExt;
use offload_core::function::definition::{FunctionSpec, RunsOn};
use offload_core::function::run::RunState;
use offload_core::{SignedDuration, Timestamp};
use offload_store::{FunctionListParams, FunctionRecord, RunListParams};
use serde::Deserialize;

use crate::AppState;
use crate::ui::format::{clip, duration, exact, relative};
use crate::ui::layout::{Layout, NoticeQuery, UiError, layout, render};
use crate::ui::session::Csrf;

/// Functions per page.
const FUNCTION_PAGE: u32 = 50;
/// Most recent runs read per function to count the last hour's runs and failures.
const RECENT_RUNS: u32 = 100;
/// Bytes of a trigger's filter shown.
const FILTER_SHOWN: usize = 300;
/// Recent-run reads in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Template)]
#[template(path = "functions.html")]
struct FunctionsPage {
    layout: Layout,
    functions: Vec<FunctionRow>,
    /// Link to the next page, when this one is full.
    next: Option<String>,
    paged: bool,
}

struct FunctionRow {
    id: String,
    name: Option<String>,
    app: Option<String>,
    triggers: Vec<TriggerRow>,
    queue: String,
    /// The push target's URL without its query (which may hold secrets).
    target: Option<String>,
    retries: u32,
    timeout: String,
    cancel_on: Vec<String>,
    updated: String,
    updated_exact: String,
    recent: RecentRuns,
}

struct TriggerRow {
    /// `event` or `cron`.
    kind: &'static str,
    /// The event name or the cron expression.
    text: String,
    /// The event filter as registered (cut), or the cron time zone.
    detail: Option<String>,
}

/// Runs of the last hour, counted from one bounded read.
#[derive(Debug, Default, PartialEq, Eq)]
struct RecentRuns {
    runs: u32,
    failed: u32,
    /// The read stopped at [`RECENT_RUNS`] before reaching an hour back.
    more: bool,
}

impl RecentRuns {
    fn runs_text(&self) -> String {
        format!("{}{}", self.runs, if self.more { "+" } else { "" })
    }

    fn failed_text(&self) -> String {
        format!("{}{}", self.failed, if self.more { "+" } else { "" })
    }
}

/// Query of `GET /ui/functions`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FunctionsQuery {
    /// Continue after this function id.
    #[serde(default)]
    after: String,
}

/// The push target's URL as the page shows it: without query or fragment.
fn target_text(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or("").to_owned()
}

fn triggers(record: &FunctionRecord) -> Vec<TriggerRow> {
    let Ok(spec) = serde_json::from_value::<FunctionSpec>(record.spec.clone()) else {
        return Vec::new();
    };
    spec.triggers
        .into_iter()
        .map(|t| match (t.event, t.cron) {
            (Some(event), _) => TriggerRow {
                kind: "event",
                text: event,
                detail: t.filter.map(|f| {
                    let shown = clip(&f.to_string(), FILTER_SHOWN);
                    if shown.cut_from.is_some() {
                        format!("if {}…", shown.text)
                    } else {
                        format!("if {}", shown.text)
                    }
                }),
            },
            (None, cron) => TriggerRow {
                kind: "cron",
                text: cron.unwrap_or_default(),
                detail: Some(t.timezone.unwrap_or_else(|| "UTC".to_owned())),
            },
        })
        .collect()
}

fn function_row(record: &FunctionRecord, recent: RecentRuns, now: Timestamp) -> FunctionRow {
    let f = &record.function;
    let target = match &f.runs_on {
        RunsOn::Push(t) => Some(target_text(&t.url)),
        RunsOn::Pull => None,
    };
    FunctionRow {
        id: f.id.clone(),
        name: f.name.clone(),
        app: record.app.clone(),
        triggers: triggers(record),
        queue: f.queue.clone(),
        target,
        retries: f.retries,
        timeout: duration(f.timeout),
        cancel_on: f
            .cancel_on
            .iter()
            .map(|c| match &c.match_path {
                Some(p) => format!("{} (match {p})", c.event),
                None => c.event.clone(),
            })
            .collect(),
        updated: relative(record.updated_at, now),
        updated_exact: exact(record.updated_at),
        recent,
    }
}

/// Counts the runs of `function_id` created since `since` and the failed ones among them, reading at most
/// [`RECENT_RUNS`] runs.
async fn recent_runs(
    app: &AppState,
    function_id: &str,
    since: Timestamp,
) -> Result<RecentRuns, UiError> {
    let runs = app
        .engine
        .store()
        .run_list(RunListParams {
            function_id: Some(function_id.to_owned()),
            limit: RECENT_RUNS,
            ..RunListParams::default()
        })
        .await?;
    let mut recent = RecentRuns::default();
    for run in &runs {
        if run.created_at < since {
            return Ok(recent);
        }
        recent.runs += 1;
        if run.state == RunState::Failed {
            recent.failed += 1;
        }
    }
    recent.more = runs.len() == RECENT_RUNS as usize;
    Ok(recent)
}

/// `GET /ui/functions`: registered functions by id, one page at a time.
pub(crate) async fn functions(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<FunctionsQuery>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let after = Some(q.after.trim())
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    let paged = after.is_some();
    let records = app
        .engine
        .store()
        .function_list(FunctionListParams {
            app: None,
            after,
            limit: FUNCTION_PAGE,
        })
        .await?;
    let now = app.engine.now();
    let since = now
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap_or(now);
    let app_ref = &app;
    let ids: Vec<String> = records.iter().map(|r| r.function.id.clone()).collect();
    let counts: Vec<Result<RecentRuns, UiError>> = futures::stream::iter(ids)
        .map(|id| async move { recent_runs(app_ref, &id, since).await })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut functions = Vec::with_capacity(records.len());
    for (record, recent) in records.iter().zip(counts) {
        functions.push(function_row(record, recent?, now));
    }
    let next = (records.len() == FUNCTION_PAGE as usize)
        .then(|| records.last())
        .flatten()
        .map(|r| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("after", &r.function.id);
            format!("/ui/functions?{}", q.finish())
        });
    let page = FunctionsPage {
        layout: layout(&app, csrf, "/ui/functions", notice.notice()),
        functions,
        next,
        paged,
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_shown_without_their_query() {
        assert_eq!(
            target_text("https://hooks.example/fn?token=s3cret"),
            "https://hooks.example/fn"
        );
        assert_eq!(
            target_text("http://127.0.0.1:9/x#y"),
            "http://127.0.0.1:9/x"
        );
    }

    #[test]
    fn counts_at_the_bound_say_so() {
        let recent = RecentRuns {
            runs: 100,
            failed: 3,
            more: true,
        };
        assert_eq!(recent.runs_text(), "100+");
        assert_eq!(recent.failed_text(), "3+");
    }
}
