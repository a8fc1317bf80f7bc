//! The jobs list (`/ui/jobs`, and the dead jobs page built on it): filters, keyset paging, bulk actions.
//!
//! Invariant: one keyset page per request (one more row than shown, to know whether an older page exists),
//! and filters are validated here, in [`list_params`], for the page and for the bulk actions alike.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use offload_core::spec::validate_queue_name;
use offload_core::{Job, JobId, JobState, Timestamp};
use offload_store::JobListParams;
use serde::Deserialize;

use crate::AppState;
use crate::ui::format::{exact, excerpt, relative, short_id};
use crate::ui::layout::{Layout, NoticeQuery, UiError, layout, render};
use crate::ui::paging::{
    FETCH_LIMIT, PAGE_SIZE, filter_query, older_page, page_cursor, with_query,
};
use crate::ui::session::Csrf;

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
        filter_query(&[
            ("queue", &self.queue),
            ("state", &self.state),
            ("name", &self.name),
            ("tag", &self.tag),
        ])
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
        group: None,
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
        short_id: short_id(&id),
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
        last_error: job.last_error.as_deref().map(|e| excerpt(e, 120)),
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

/// The jobs list or, with `dead_view`, the dead jobs page.
pub(crate) async fn list_page(
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
                let (before, cursor_error) = page_cursor::<JobId>(cursor, "jobs");
                params.before = before;
                error = cursor_error;
                params.limit = FETCH_LIMIT;
                let mut jobs = app.engine.list(params).await?;
                next_url = older_page(&mut jobs, base_path, &filter.query(), |j| j.id);
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

#[cfg(test)]
mod tests {
    use super::*;

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
