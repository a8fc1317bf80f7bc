//! The runs list (`/ui/runs`): runs of durable functions, newest first, filtered by function, state and the
//! event that started them.
//!
//! Invariant: one keyset page per request (one more row than shown, to know whether an older page exists), and
//! the filters are validated here before the store sees them; a bad filter is reported on the page, never
//! turned into an error page.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use offload_core::Timestamp;
use offload_core::function::event::EventId;
use offload_core::function::names::validate_function_id;
use offload_core::function::protocol::Json;
use offload_core::function::run::{RunId, RunState};
use offload_store::{RunListParams, RunRecord};
use serde::Deserialize;

use crate::AppState;
use crate::ui::format::{duration, exact, excerpt, relative, short_id, span};
use crate::ui::layout::{Layout, NoticeQuery, UiError, layout, render};
use crate::ui::paging::{
    FETCH_LIMIT, PAGE_SIZE, filter_query, older_page, page_cursor, with_query,
};
use crate::ui::session::Csrf;

/// The runs list's query: filters (empty means "any"), a run id to jump to, and the keyset cursor.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsQuery {
    #[serde(default)]
    function: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    cursor: String,
}

/// The filters as the form shows them.
#[derive(Debug, Default, Clone)]
struct Filter {
    function: String,
    state: String,
    event: String,
    id: String,
}

impl Filter {
    /// True when any filter is set (shows the "Clear" link).
    fn any(&self) -> bool {
        [&self.function, &self.state, &self.event, &self.id]
            .iter()
            .any(|f| !f.is_empty())
    }

    /// The filters as a query string (without cursor or notice).
    fn query(&self) -> String {
        filter_query(&[
            ("function", &self.function),
            ("state", &self.state),
            ("event", &self.event),
        ])
    }
}

/// Filters as the store takes them, or why they are not acceptable.
fn list_params(function: &str, state: &str, event: &str) -> Result<RunListParams, String> {
    let function_id = match function.trim() {
        "" => None,
        f => {
            validate_function_id(f).map_err(|m| format!("Function: {m}."))?;
            Some(f.to_owned())
        }
    };
    let state = match state.trim() {
        "" => None,
        s => Some(s.parse::<RunState>().map_err(|e| format!("State: {e}."))?),
    };
    let event_id = match event.trim() {
        "" => None,
        e => Some(
            e.parse::<EventId>()
                .map_err(|_| "Event: write an event id (a UUID).".to_owned())?,
        ),
    };
    Ok(RunListParams {
        function_id,
        state,
        event_id,
        before: None,
        limit: PAGE_SIZE,
    })
}

/// The name of an event stored as `{"name", "data", "id", "ts"}` (its data is skipped, not built).
pub(crate) fn event_name(event: &Json) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    serde_json::from_str::<Named>(event.get())
        .ok()
        .map(|n| n.name)
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    layout: Layout,
    filter: Filter,
    states: Vec<&'static str>,
    rows: Vec<RunRow>,
    error: Option<String>,
    first_url: String,
    next_url: Option<String>,
    paged: bool,
}

struct RunRow {
    id: String,
    short_id: String,
    function_id: String,
    state: &'static str,
    event_id: String,
    event_name: Option<String>,
    steps: u32,
    created: String,
    created_exact: String,
    took: Option<String>,
    error: Option<String>,
}

fn run_row(run: &RunRecord, now: Timestamp) -> RunRow {
    let id = run.id.to_string();
    RunRow {
        short_id: short_id(&id),
        id,
        function_id: run.function_id.clone(),
        state: run.state.as_str(),
        event_id: run.event_id.to_string(),
        event_name: event_name(&run.event),
        steps: run.steps,
        created: relative(run.created_at, now),
        created_exact: exact(run.created_at),
        took: run
            .started_at
            .map(|s| duration(span(s, run.ended_at.unwrap_or(now)))),
        error: run
            .error
            .as_ref()
            .map(|e| excerpt(&format!("{}: {}", e.name, e.message), 120)),
    }
}

/// `GET /ui/runs`: filtered runs, newest first, one keyset page at a time.
pub(crate) async fn runs(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<RunsQuery>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let id = q.id.trim();
    let mut error = None;
    if !id.is_empty() {
        match id.parse::<RunId>() {
            Ok(id) => return Ok(Redirect::to(&format!("/ui/runs/{id}")).into_response()),
            Err(_) => error = Some(format!("`{id}` is not a run id (run ids are UUIDs).")),
        }
    }
    let filter = Filter {
        function: q.function.trim().to_owned(),
        state: q.state.trim().to_owned(),
        event: q.event.trim().to_owned(),
        id: id.to_owned(),
    };
    let now = app.engine.now();
    let mut rows = Vec::new();
    let mut next_url = None;
    let cursor = q.cursor.trim();
    if error.is_none() {
        match list_params(&filter.function, &filter.state, &filter.event) {
            Ok(mut params) => {
                let (before, cursor_error) = page_cursor::<RunId>(cursor, "runs");
                params.before = before;
                error = cursor_error;
                params.limit = FETCH_LIMIT;
                let mut runs = app.engine.store().run_list(params).await?;
                next_url = older_page(&mut runs, "/ui/runs", &filter.query(), |r| r.id);
                rows = runs.iter().map(|r| run_row(r, now)).collect();
            }
            Err(message) => error = Some(message),
        }
    }
    let page = RunsPage {
        layout: layout(&app, csrf, "/ui/runs", notice.notice()),
        first_url: with_query("/ui/runs", &filter.query(), ""),
        filter,
        states: RunState::ALL.iter().map(|s| s.as_str()).collect(),
        rows,
        error,
        next_url,
        paged: !cursor.is_empty(),
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated() {
        assert!(list_params("", "", "").is_ok());
        assert!(
            list_params("bad id", "", "")
                .unwrap_err()
                .starts_with("Function")
        );
        assert!(
            list_params("", "done", "")
                .unwrap_err()
                .starts_with("State")
        );
        assert!(
            list_params("", "", "nope")
                .unwrap_err()
                .starts_with("Event")
        );
        let event = EventId::new();
        let p = list_params("charge", "failed", &event.to_string()).unwrap();
        assert_eq!(p.function_id.as_deref(), Some("charge"));
        assert_eq!(p.state, Some(RunState::Failed));
        assert_eq!(p.event_id, Some(event));
    }

    #[test]
    fn event_names_are_read_without_the_data() {
        let event =
            Json::from_text(r#"{"name":"app/signup","data":{"deep":[[[]]]},"id":"x"}"#).unwrap();
        assert_eq!(event_name(&event).as_deref(), Some("app/signup"));
        assert_eq!(event_name(&Json::null()), None);
    }
}
