//! The dashboard's pages: what each shows, read from the engine, shaped for its template.
//!
//! Every read is bounded: queue counts come from maintained counters, the throughput chart from per-minute
//! rows, job lists are one keyset page (one more row than shown, to know whether an older page exists).

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use offload_core::cron::describe;
use offload_core::spec::validate_queue_name;
use offload_core::{AttemptOutcome, Job, JobId, JobState, Timestamp};
use offload_store::JobListParams;
use serde::Deserialize;

use super::format::{self, duration, exact, relative, span, time};
use super::session::Csrf;
use super::{NAV, NavEntry};
use crate::AppState;
use crate::error::AppError;

/// Jobs per page of the jobs list.
pub(crate) const PAGE_SIZE: u32 = 50;
/// Most jobs a "… all" bulk action touches in one request.
pub(crate) const BULK_LIMIT: usize = 10_000;
/// Minutes in the throughput chart.
const CHART_MINUTES: usize = 60;

/// A failed page: an HTML error page with the error's status.
pub(crate) struct UiError(pub(crate) AppError);

impl From<offload_engine::EngineError> for UiError {
    fn from(e: offload_engine::EngineError) -> Self {
        UiError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    heading: String,
    detail: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let detail = if status.is_server_error() {
            tracing::error!(error = ?self.0, "dashboard page failed");
            "The server could not read its database. Try again in a moment; the server log has the details."
                .to_owned()
        } else {
            match &self.0 {
                AppError::NotFound(what) => what.clone(),
                AppError::Engine(e) => e.to_string(),
                other => format!("{other:?}"),
            }
        };
        let page = ErrorPage {
            heading: status
                .canonical_reason()
                .unwrap_or("Something went wrong")
                .to_owned(),
            detail,
        };
        (status, render(&page)).into_response()
    }
}

/// A rendered template; a rendering failure (a bug) becomes a plain 500.
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// What every page's frame shows.
pub(crate) struct Layout {
    pub(crate) csrf: String,
    pub(crate) nav: Vec<NavItem>,
    pub(crate) login: bool,
    pub(crate) version: &'static str,
    pub(crate) now: String,
    pub(crate) notice: Option<Notice>,
}

/// A navigation link and whether it is the current page.
pub(crate) struct NavItem {
    pub(crate) label: &'static str,
    pub(crate) href: &'static str,
    pub(crate) active: bool,
}

/// A message about the last action.
pub(crate) struct Notice {
    /// `ok` or `error` (a CSS class).
    pub(crate) kind: &'static str,
    pub(crate) text: String,
}

/// The outcome of an action, carried in the redirect back as codes (never as text, so a link cannot make the
/// page say something it did not do).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NoticeQuery {
    /// What was done: `retry`, `cancel`, `delete`, `pause`, `resume`.
    #[serde(default)]
    pub(crate) done: Option<String>,
    /// How many jobs it was applied to.
    #[serde(default)]
    pub(crate) n: Option<u64>,
    /// How many were refused.
    #[serde(default)]
    pub(crate) refused: Option<u64>,
    /// More jobs matched than one bulk request handles.
    #[serde(default)]
    pub(crate) more: Option<bool>,
}

impl NoticeQuery {
    fn notice(&self) -> Option<Notice> {
        let verb = match self.done.as_deref()? {
            "retry" => "Retried",
            "cancel" => "Cancelled",
            "delete" => "Deleted",
            "pause" => return Some(ok("Queue paused: claims hand out none of its jobs.")),
            "resume" => return Some(ok("Queue resumed.")),
            "schedule_pause" => {
                return Some(ok("Schedule paused: it fires nothing until resumed."));
            }
            "schedule_resume" => return Some(ok("Schedule resumed.")),
            "trigger" => return Some(ok("Schedule triggered: its job was created.")),
            _ => return None,
        };
        let n = self.n.unwrap_or(0);
        let refused = self.refused.unwrap_or(0);
        let mut text = format!("{verb} {n} job{}.", if n == 1 { "" } else { "s" });
        if refused > 0 {
            text.push_str(&format!(
                " {refused} could not be ({}: its state does not allow it).",
                if refused == 1 {
                    "one job"
                } else {
                    "those jobs"
                }
            ));
        }
        if self.more == Some(true) {
            text.push_str(&format!(
                " More jobs match: run it again for the next {BULK_LIMIT}."
            ));
        }
        Some(Notice {
            kind: if n == 0 && refused > 0 { "error" } else { "ok" },
            text,
        })
    }
}

fn ok(text: &str) -> Notice {
    Notice {
        kind: "ok",
        text: text.to_owned(),
    }
}

/// The frame of a page: navigation with `active` marked, the CSRF token, the server's time.
pub(crate) fn layout(app: &AppState, csrf: Csrf, active: &str, notice: Option<Notice>) -> Layout {
    Layout {
        csrf: csrf.0,
        nav: NAV
            .iter()
            .map(|NavEntry { label, href }| NavItem {
                label,
                href,
                active: *href == active,
            })
            .collect(),
        login: app.sessions.requires_login(),
        version: env!("CARGO_PKG_VERSION"),
        now: time(app.engine.now()),
        notice,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------------------------

/// Schedules per page of the schedules list (each also reads its recent ticks).
const SCHEDULE_PAGE: u32 = 50;
/// Upcoming fire times shown per schedule.
const SCHEDULE_UPCOMING: usize = 3;
/// Recent ticks shown per schedule.
const SCHEDULE_TICKS: u32 = 5;

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    layout: Layout,
    schedules: Vec<ScheduleRow>,
    /// Link to the next page, when this one is full.
    next: Option<String>,
}

struct ScheduleRow {
    name: String,
    cron: String,
    /// The expression in words, when it has an exact short phrase.
    cron_words: Option<String>,
    timezone: String,
    queue: String,
    paused: bool,
    next_fire_times: Vec<String>,
    ticks: Vec<TickRow>,
}

struct TickRow {
    at: String,
    exact: String,
    outcome: &'static str,
    count: u64,
    manual: bool,
    job_id: Option<String>,
}

/// Query of `GET /ui/schedules`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SchedulesQuery {
    /// Continue after this schedule name.
    #[serde(default)]
    after: Option<String>,
    #[serde(flatten)]
    notice: NoticeQuery,
}

/// `GET /ui/schedules`: every schedule with its expression, time zone, next fire times, paused state and
/// recent ticks; pause, resume and trigger.
pub(crate) async fn schedules(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(query): Query<SchedulesQuery>,
) -> Result<Response, UiError> {
    let now = app.engine.now();
    if let Some(after) = &query.after {
        offload_core::cron::schedule::validate_schedule_name(after)
            .map_err(|m| UiError(AppError::invalid("after", m)))?;
    }
    let records = app
        .engine
        .list_schedules(offload_store::ScheduleListParams {
            after: query.after.clone(),
            source: None,
            limit: SCHEDULE_PAGE,
        })
        .await?;
    let next = (records.len() == SCHEDULE_PAGE as usize)
        .then(|| records.last())
        .flatten()
        // Schedule names are ASCII letters, digits and `-_.:`: safe in a query as they are.
        .map(|r| format!("/ui/schedules?after={}", r.schedule.name));
    let detailed = futures::future::join_all(
        records
            .iter()
            .map(|r| app.engine.get_schedule(&r.schedule.name, SCHEDULE_TICKS)),
    )
    .await;
    let mut rows = Vec::with_capacity(records.len());
    for (record, detail) in records.iter().zip(detailed) {
        // A schedule deleted in between is shown without ticks.
        let info = detail?
            .unwrap_or_else(|| record.clone())
            .info(SCHEDULE_UPCOMING);
        rows.push(ScheduleRow {
            cron_words: describe(record.schedule.cadence.expr()),
            queue: info.job.queue.clone(),
            next_fire_times: info
                .next_fire_times
                .iter()
                .map(|t| format!("{} ({})", time(*t), relative(*t, now)))
                .collect(),
            ticks: info
                .recent_ticks
                .unwrap_or_default()
                .iter()
                .map(|t| TickRow {
                    at: relative(t.fire_at, now),
                    exact: exact(t.fire_at),
                    outcome: t.outcome.as_str(),
                    count: t.count,
                    manual: t.manual,
                    job_id: t.job_id.map(|id| id.to_string()),
                })
                .collect(),
            name: info.name,
            cron: info.cron,
            timezone: info.timezone,
            paused: info.paused,
        });
    }
    let page = SchedulesPage {
        layout: layout(&app, csrf, "/ui/schedules", query.notice.notice()),
        schedules: rows,
        next,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    layout: Layout,
    totals: Totals,
    chart: Chart,
    states: Vec<&'static str>,
    queues: Vec<QueueRow>,
}

#[derive(Default)]
struct Totals {
    available: u64,
    running: u64,
    waiting: u64,
    dead: u64,
}

struct QueueRow {
    name: String,
    paused: bool,
    counts: Vec<(&'static str, u64)>,
    oldest: Option<String>,
    done_hour: u64,
    failed_hour: u64,
}

/// The last hour's attempts per minute, as SVG bars.
pub(crate) struct Chart {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bar_width: u32,
    pub(crate) max: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) bars: Vec<Bar>,
}

/// One minute of the chart (y grows downwards in SVG).
pub(crate) struct Bar {
    pub(crate) x: u32,
    pub(crate) ok_y: u32,
    pub(crate) ok_h: u32,
    pub(crate) fail_y: u32,
    pub(crate) fail_h: u32,
    pub(crate) label: String,
}

/// Builds the chart from per-minute `(succeeded, failed)` totals, oldest first, ending with the current
/// minute that starts at `last_minute`.
pub(crate) fn chart(minutes: &[(u64, u64)], last_minute: Timestamp) -> Chart {
    const HEIGHT: u32 = 100;
    const STEP: u32 = 10;
    let max = minutes.iter().map(|(s, f)| s + f).max().unwrap_or(0);
    let scale = |n: u64| -> u32 {
        if max == 0 {
            0
        } else {
            // Any non-zero minute gets at least one pixel, so a lone failure is visible.
            (((n as f64) / (max as f64) * f64::from(HEIGHT)).round() as u32).max(u32::from(n > 0))
        }
    };
    let count = minutes.len();
    let bars = minutes
        .iter()
        .enumerate()
        .map(|(i, &(ok, failed))| {
            let ok_h = scale(ok);
            let fail_h = scale(failed).min(HEIGHT - ok_h.min(HEIGHT));
            let back = (count - 1 - i) as i64;
            let at = last_minute
                .checked_sub(jiff::SignedDuration::from_mins(back))
                .unwrap_or(last_minute);
            Bar {
                x: i as u32 * STEP,
                ok_y: HEIGHT - ok_h,
                ok_h,
                fail_y: HEIGHT - ok_h - fail_h,
                fail_h,
                label: format!(
                    "{}: {ok} succeeded, {failed} failed",
                    at.strftime("%H:%M UTC")
                ),
            }
        })
        .collect();
    Chart {
        width: count as u32 * STEP,
        height: HEIGHT,
        bar_width: STEP - 2,
        max,
        succeeded: minutes.iter().map(|m| m.0).sum(),
        failed: minutes.iter().map(|m| m.1).sum(),
        bars,
    }
}

/// `GET /ui`: every queue with its counts, the last hour's throughput, pause and resume.
pub(crate) async fn overview(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let now = app.engine.now();
    let minute = jiff::SignedDuration::from_mins(1);
    let this_minute = Timestamp::from_second(now.as_second().div_euclid(60) * 60).unwrap_or(now);
    let first_minute = this_minute
        .checked_sub(minute * (CHART_MINUTES as i32 - 1))
        .unwrap_or(this_minute);
    let (queues, throughput) =
        tokio::join!(app.engine.queues(), app.engine.throughput(first_minute));
    let (queues, throughput) = (queues?, throughput?);

    let mut per_minute = vec![(0u64, 0u64); CHART_MINUTES];
    let mut per_queue: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for b in &throughput {
        let offset = b
            .minute
            .duration_since(first_minute)
            .as_secs()
            .div_euclid(60);
        if let Ok(i) = usize::try_from(offset)
            && i < CHART_MINUTES
        {
            per_minute[i].0 += b.succeeded;
            per_minute[i].1 += b.failed;
            let q = per_queue.entry(b.queue.as_str()).or_default();
            q.0 += b.succeeded;
            q.1 += b.failed;
        }
    }
    let mut totals = Totals::default();
    let rows = queues
        .iter()
        .map(|q| {
            let n = |s: JobState| q.counts.get(&s).copied().unwrap_or(0);
            totals.available += n(JobState::Available);
            totals.running += n(JobState::Running);
            totals.waiting += n(JobState::Scheduled) + n(JobState::Retrying);
            totals.dead += n(JobState::Dead);
            let (done_hour, failed_hour) =
                per_queue.get(q.name.as_str()).copied().unwrap_or_default();
            QueueRow {
                name: q.name.clone(),
                paused: q.paused,
                counts: JobState::ALL.iter().map(|s| (s.as_str(), n(*s))).collect(),
                oldest: q
                    .oldest_available_age_ms
                    .map(|ms| duration(std::time::Duration::from_millis(ms))),
                done_hour,
                failed_hour,
            }
        })
        .collect();
    let page = Overview {
        layout: layout(&app, csrf, "/ui", notice.notice()),
        totals,
        chart: chart(&per_minute, this_minute),
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        queues: rows,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------------------
// Jobs and dead jobs
// ---------------------------------------------------------------------------------------------------------

/// The jobs list's query: filters (empty means "any"), the keyset cursor and an action's notice.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsQuery {
    #[serde(default)]
    queue: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    cursor: String,
}

/// The filters as the form shows them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filter {
    pub(crate) queue: String,
    pub(crate) state: String,
    /// The state actually filtered on (`dead` on the dead jobs page).
    pub(crate) effective_state: String,
    pub(crate) name: String,
    pub(crate) tag: String,
    pub(crate) id: String,
}

impl Filter {
    /// True when any filter is set (shows the "Clear" link).
    pub(crate) fn any(&self) -> bool {
        [&self.queue, &self.state, &self.name, &self.tag, &self.id]
            .iter()
            .any(|f| !f.is_empty())
    }

    /// The filters as a query string (without cursor or notice).
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("queue", &self.queue),
            ("state", &self.state),
            ("name", &self.name),
            ("tag", &self.tag),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

/// Filters as the store takes them, or why they are not acceptable.
pub(crate) fn list_params(
    queue: &str,
    state: &str,
    name: &str,
    tag: &str,
) -> Result<JobListParams, String> {
    let queue = match queue.trim() {
        "" => None,
        q => {
            validate_queue_name(q).map_err(|m| format!("Queue: {m}."))?;
            Some(q.to_owned())
        }
    };
    let state = match state.trim() {
        "" => None,
        s => Some(s.parse::<JobState>().map_err(|e| format!("State: {e}."))?),
    };
    let name = Some(name.trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let tag = match tag.trim() {
        "" => None,
        t => match t.split_once(':') {
            Some((k, v)) if !k.is_empty() => Some((k.to_owned(), v.to_owned())),
            _ => return Err("Tag: write it as key:value.".to_owned()),
        },
    };
    Ok(JobListParams {
        queue,
        state,
        name,
        tag,
        before: None,
        limit: PAGE_SIZE,
    })
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    layout: Layout,
    title: &'static str,
    base_path: &'static str,
    dead_view: bool,
    filter: Filter,
    states: Vec<&'static str>,
    queues: Vec<String>,
    rows: Vec<JobRow>,
    error: Option<String>,
    here: String,
    first_url: String,
    next_url: Option<String>,
    paged: bool,
}

struct JobRow {
    id: String,
    short_id: String,
    queue: String,
    name: Option<String>,
    state: &'static str,
    cancel_requested: bool,
    attempt: u32,
    max_attempts: u32,
    created: String,
    created_exact: String,
    due: String,
    due_exact: String,
    last_error: Option<String>,
}

fn job_row(job: &Job, now: Timestamp) -> JobRow {
    let id = job.id.to_string();
    JobRow {
        short_id: id
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        id,
        queue: job.queue.clone(),
        name: job.name.clone(),
        state: job.state.as_str(),
        cancel_requested: job.cancel_requested,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        created: relative(job.created_at, now),
        created_exact: exact(job.created_at),
        due: if job.state.is_finished() {
            "–".to_owned()
        } else {
            relative(job.run_at, now)
        },
        due_exact: exact(job.run_at),
        last_error: job.last_error.as_deref().map(|e| format::excerpt(e, 120)),
    }
}

/// `GET /ui/jobs`: filtered jobs, newest first, one keyset page at a time.
pub(crate) async fn jobs(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<JobsQuery>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    list_page(app, csrf, q, notice, false).await
}

/// `GET /ui/dead`: dead jobs, newest first, with "retry all".
pub(crate) async fn dead(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<JobsQuery>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    list_page(app, csrf, q, notice, true).await
}

async fn list_page(
    app: AppState,
    csrf: Csrf,
    q: JobsQuery,
    notice: NoticeQuery,
    dead_view: bool,
) -> Result<Response, UiError> {
    let id = q.id.trim();
    let mut error = None;
    if !id.is_empty() {
        match id.parse::<JobId>() {
            Ok(id) => return Ok(Redirect::to(&format!("/ui/jobs/{id}")).into_response()),
            Err(_) => error = Some(format!("`{id}` is not a job id (job ids are UUIDs).")),
        }
    }
    let state = if dead_view { "dead" } else { q.state.trim() };
    let filter = Filter {
        queue: q.queue.trim().to_owned(),
        state: if dead_view {
            String::new()
        } else {
            state.to_owned()
        },
        effective_state: state.to_owned(),
        name: q.name.trim().to_owned(),
        tag: q.tag.trim().to_owned(),
        id: id.to_owned(),
    };
    let base_path = if dead_view { "/ui/dead" } else { "/ui/jobs" };
    let now = app.engine.now();
    let queues = app.engine.queues();
    let mut rows = Vec::new();
    let mut next_url = None;
    let cursor = q.cursor.trim();
    if error.is_none() {
        match list_params(&filter.queue, state, &filter.name, &filter.tag) {
            Ok(mut params) => {
                params.before = match cursor {
                    "" => None,
                    c => match c.parse::<JobId>() {
                        Ok(id) => Some(id),
                        Err(_) => {
                            error =
                                Some("The page link is not valid; showing the newest jobs.".into());
                            None
                        }
                    },
                };
                // One more than shown: tells whether an older page exists.
                params.limit = PAGE_SIZE + 1;
                let mut jobs = app.engine.list(params).await?;
                if jobs.len() > PAGE_SIZE as usize {
                    jobs.truncate(PAGE_SIZE as usize);
                    if let Some(last) = jobs.last() {
                        next_url = Some(with_query(
                            base_path,
                            &filter.query(),
                            &format!("cursor={}", last.id),
                        ));
                    }
                }
                rows = jobs.iter().map(|j| job_row(j, now)).collect();
            }
            Err(message) => error = Some(message),
        }
    }
    let queues = queues.await?.into_iter().map(|q| q.name).collect();
    let first_url = with_query(base_path, &filter.query(), "");
    let here = with_query(
        base_path,
        &filter.query(),
        &if cursor.is_empty() {
            String::new()
        } else {
            format!("cursor={cursor}")
        },
    );
    let page = JobsPage {
        layout: layout(&app, csrf, base_path, notice.notice()),
        title: if dead_view { "Dead jobs" } else { "Jobs" },
        base_path,
        dead_view,
        filter,
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        queues,
        rows,
        error,
        here,
        first_url,
        next_url,
        paged: !cursor.is_empty(),
    };
    Ok(render(&page))
}

/// `path?a&b`, leaving out empty parts.
fn with_query(path: &str, a: &str, b: &str) -> String {
    let parts: Vec<&str> = [a, b].into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

// ---------------------------------------------------------------------------------------------------------
// One job
// ---------------------------------------------------------------------------------------------------------

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
    payload: String,
    result: Option<String>,
    last_error: Option<String>,
    attempts: Vec<AttemptRow>,
}

struct ProgressView {
    percent: u8,
    message: Option<String>,
}

/// One line of the state timeline.
struct Event {
    /// `start`, `good`, `bad` or `plain` (the dot's colour).
    kind: &'static str,
    time: String,
    exact: String,
    text: String,
    detail: Option<String>,
    at: Timestamp,
}

struct AttemptRow {
    number: u32,
    worker: Option<String>,
    started: String,
    started_exact: String,
    finished: Option<String>,
    took: String,
    outcome: &'static str,
    error: Option<String>,
}

fn event(kind: &'static str, at: Timestamp, text: String, detail: Option<String>) -> Event {
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
                a.error.clone(),
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
            error: a.error.clone(),
        })
        .collect();
    JobView {
        short_id: id
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
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
            message: p.message.clone(),
        }),
        timeline: timeline(job),
        payload: format::pretty_json(job.payload.get()),
        result: job.result.as_ref().map(|r| format::pretty_json(r.get())),
        last_error: job.last_error.clone(),
        attempts,
    }
}

/// `GET /ui/jobs/{id}`: everything about one job.
pub(crate) async fn job(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let not_found = || UiError(AppError::NotFound(format!("There is no job with id {id}.")));
    let job_id: JobId = id.parse().map_err(|_| not_found())?;
    let job = app.engine.get(job_id).await?.ok_or_else(not_found)?;
    let page = JobPage {
        layout: layout(&app, csrf, "/ui/jobs", notice.notice()),
        job: job_view(&job, app.engine.now()),
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub(crate) next: String,
    pub(crate) failed: bool,
}

/// Where `/ui/login` may send the user afterwards: dashboard paths only, so it is no open redirect.
pub(crate) fn safe_next(next: &str) -> String {
    let ok = (next == "/ui" || next.starts_with("/ui/") || next.starts_with("/ui?"))
        && !next.contains("//")
        && !next.contains('\\');
    if ok {
        next.to_owned()
    } else {
        "/ui".to_owned()
    }
}

/// The login form's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// `GET /ui/login`: the token form (or straight to the dashboard when no login is needed).
pub(crate) async fn login_form(
    State(app): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Response {
    if !app.sessions.requires_login() {
        return Redirect::to("/ui").into_response();
    }
    render(&LoginPage {
        next: safe_next(&q.next),
        failed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_scales_to_the_busiest_minute() {
        let last: Timestamp = "2026-01-01T12:59:00Z".parse().unwrap();
        let c = chart(&[(0, 0), (50, 50), (1, 0)], last);
        assert_eq!((c.max, c.succeeded, c.failed), (100, 51, 50));
        assert_eq!((c.bars[0].ok_h, c.bars[0].fail_h), (0, 0));
        assert_eq!((c.bars[1].ok_h, c.bars[1].fail_h), (50, 50));
        assert_eq!(c.bars[1].fail_y, 0);
        assert_eq!(c.bars[2].ok_h, 1, "a small minute stays visible");
        assert_eq!(c.bars[2].label, "12:59 UTC: 1 succeeded, 0 failed");
        assert_eq!(c.bars[0].label, "12:57 UTC: 0 succeeded, 0 failed");
    }

    #[test]
    fn login_redirects_only_into_the_dashboard() {
        assert_eq!(safe_next("/ui/jobs?queue=a"), "/ui/jobs?queue=a");
        assert_eq!(safe_next("https://evil.example"), "/ui");
        assert_eq!(safe_next("//evil.example"), "/ui");
        assert_eq!(safe_next("/ui//evil"), "/ui");
        assert_eq!(safe_next("/uievil"), "/ui");
    }

    #[test]
    fn filters_are_validated() {
        assert!(list_params("", "", "", "").is_ok());
        assert!(
            list_params("bad queue", "", "", "")
                .unwrap_err()
                .starts_with("Queue")
        );
        assert!(
            list_params("", "nope", "", "")
                .unwrap_err()
                .starts_with("State")
        );
        assert!(
            list_params("", "", "", "novalue")
                .unwrap_err()
                .starts_with("Tag")
        );
        let p = list_params("q", "dead", "n", "k:v").unwrap();
        assert_eq!(p.tag, Some(("k".into(), "v".into())));
        assert_eq!(p.state, Some(JobState::Dead));
    }
}
