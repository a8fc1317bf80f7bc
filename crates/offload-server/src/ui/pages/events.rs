//! The events pages: recent events (`/ui/events`, newest first, filtered by name) with the runs each started,
//! and one event (`/ui/events/{id}`) with its data and runs.
//!
//! Invariant: one keyset page of events per request, each event's data cut to a short excerpt in the list and
//! to a bounded size on its own page, and at most [`RUNS_LISTED`] run links per event in the list.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use offload_core::Timestamp;
use offload_core::function::event::EventId;
use offload_core::function::names::validate_event_name;
use offload_store::{EventListParams, EventRecord};
use serde::Deserialize;

use crate::AppState;
use crate::error::AppError;
use crate::ui::format::{Shown, clip, exact, pretty_json, relative, short_id, time};
use crate::ui::layout::{Layout, NoticeQuery, UiError, layout, render};
use crate::ui::paging::{FETCH_LIMIT, filter_query, older_page, page_cursor, with_query};
use crate::ui::session::Csrf;

/// Bytes of an event's data shown in the list.
const DATA_EXCERPT: usize = 160;
/// Bytes of an event's data shown on its page.
const DATA_SHOWN: usize = 64 * 1024;
/// Run links listed per event in the list (the count says how many there are).
const RUNS_LISTED: usize = 5;

/// The events list's query: the name filter and the keyset cursor.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    name: String,
    rows: Vec<EventRow>,
    error: Option<String>,
    first_url: String,
    next_url: Option<String>,
    paged: bool,
}

struct EventRow {
    id: String,
    short_id: String,
    name: String,
    user_id: Option<String>,
    ts: String,
    ts_exact: String,
    received: String,
    received_exact: String,
    data: Shown,
    /// Run ids: short, full.
    runs: Vec<(String, String)>,
    run_count: usize,
}

fn run_link(id: &offload_core::function::run::RunId) -> (String, String) {
    let id = id.to_string();
    (short_id(&id), id)
}

fn event_row(event: &EventRecord, now: Timestamp) -> EventRow {
    let id = event.id.to_string();
    EventRow {
        short_id: short_id(&id),
        id,
        name: event.name.clone(),
        user_id: event.user_id.clone(),
        ts: time(event.ts),
        ts_exact: exact(event.ts),
        received: relative(event.received_at, now),
        received_exact: exact(event.received_at),
        data: clip(event.data.get(), DATA_EXCERPT),
        runs: event.runs.iter().take(RUNS_LISTED).map(run_link).collect(),
        run_count: event.runs.len(),
    }
}

/// `GET /ui/events`: recent events, newest first, one keyset page at a time.
pub(crate) async fn events(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<EventsQuery>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let name = q.name.trim().to_owned();
    let cursor = q.cursor.trim();
    let mut rows = Vec::new();
    let mut next_url = None;
    let filter = filter_query(&[("name", &name)]);
    let (before, mut error) = page_cursor::<EventId>(cursor, "events");
    if let Err(m) = (!name.is_empty())
        .then(|| validate_event_name(&name))
        .transpose()
    {
        error = Some(format!("Name: {m}."));
    } else {
        let mut events = app
            .engine
            .store()
            .event_list(EventListParams {
                name: Some(name.clone()).filter(|n| !n.is_empty()),
                before,
                limit: FETCH_LIMIT,
            })
            .await?;
        next_url = older_page(&mut events, "/ui/events", &filter, |e| e.id);
        let now = app.engine.now();
        rows = events.iter().map(|e| event_row(e, now)).collect();
    }
    let page = EventsPage {
        layout: layout(&app, csrf, "/ui/events", notice.notice()),
        name,
        rows,
        error,
        first_url: with_query("/ui/events", &filter, ""),
        next_url,
        paged: !cursor.is_empty(),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    layout: Layout,
    event: EventRow,
    data: Shown,
    /// Functions the event triggered but started no run of: (function id, why).
    skipped: Vec<(String, &'static str)>,
}

/// `GET /ui/events/{id}`: one event, its data and every run it started.
pub(crate) async fn event(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let not_found = || {
        UiError(AppError::NotFound(format!(
            "There is no event with id {id}."
        )))
    };
    let event_id: EventId = id.parse().map_err(|_| not_found())?;
    let record = app
        .engine
        .store()
        .event_get(event_id)
        .await?
        .ok_or_else(not_found)?;
    let mut event = event_row(&record, app.engine.now());
    event.runs = record.runs.iter().map(run_link).collect();
    let page = EventPage {
        layout: layout(&app, csrf, "/ui/events", None),
        data: pretty_json(record.data.get(), DATA_SHOWN),
        event,
        skipped: record
            .skipped
            .iter()
            .map(|s| {
                let why = match s.reason {
                    offload_store::fanout::SkipReason::RateLimit => "rate limit reached",
                    offload_store::fanout::SkipReason::Singleton => {
                        "a run of its singleton key was live"
                    }
                };
                (s.function_id.clone(), why)
            })
            .collect(),
    };
    Ok(render(&page))
}
