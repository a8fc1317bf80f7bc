//! The schedules page (`/ui/schedules`): every schedule with its expression (in words when it has a short
//! exact phrase), time zone, next fire times and recent ticks; pause, resume and trigger.
//!
//! Invariant: one page of schedules per request ([`SCHEDULE_PAGE`]), each with at most [`SCHEDULE_TICKS`]
//! ticks read, so the page costs the same however many schedules exist.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use offload_core::cron::describe;
use serde::Deserialize;

use crate::AppState;
use crate::error::AppError;
use crate::ui::format::{exact, relative, time};
use crate::ui::layout::{Layout, NoticeQuery, UiError, layout, render};
use crate::ui::session::Csrf;

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
