//! What the dashboard's buttons do: retry, cancel or delete one job, a selection or every job matching a
//! filter; cancel or retry a run of a durable function; pause and resume queues; log in and out.
//!
//! Every action answers with a redirect back to the page it came from (post/redirect/get), carrying what
//! happened as codes the page turns into a notice. Bulk actions apply one engine call per job, many at once,
//! so the store's writer commits them in shared groups; a job whose state does not allow the action is
//! counted as refused and the others go on.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use offload_core::JobId;
use offload_core::cron::schedule::validate_schedule_name;
use offload_core::function::run::RunId;
use offload_core::spec::validate_queue_name;
use offload_engine::EngineError;
use offload_store::StoreError;

use super::BULK_LIMIT;
use super::layout::{UiError, render};
use super::pages::jobs::list_params;
use super::pages::login::{LoginPage, safe_next};
use super::session;
use crate::AppState;
use crate::error::AppError;

/// Engine calls of one bulk action in flight at once.
const BULK_CONCURRENCY: usize = 64;

/// A job action the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Cancel,
    Delete,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "retry" => Some(Action::Retry),
            "cancel" => Some(Action::Cancel),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }

    /// Applies the action to one job: `Ok(true)` done, `Ok(false)` refused (state, or already gone).
    async fn apply(self, app: &AppState, id: JobId) -> Result<bool, EngineError> {
        let result = match self {
            Action::Retry => app.engine.retry(id).await.map(drop),
            Action::Cancel => app.engine.cancel(id).await.map(drop),
            Action::Delete => app.engine.delete(id).await,
        };
        match result {
            Ok(()) => Ok(true),
            Err(EngineError::Store(StoreError::Transition(_) | StoreError::NotFound(_))) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// The fields of a urlencoded form; repeated fields (`id`) keep every value.
struct Form(HashMap<String, Vec<String>>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Form(map)
    }

    fn one(&self, key: &str) -> &str {
        self.0
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("")
    }

    fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// `back` with the outcome's codes appended.
fn back_with(back: &str, action: &str, done: u64, refused: u64, more: bool) -> Redirect {
    let separator = if back.contains('?') { '&' } else { '?' };
    let mut target = format!("{back}{separator}done={action}&n={done}");
    if refused > 0 {
        target.push_str(&format!("&refused={refused}"));
    }
    if more {
        target.push_str("&more=true");
    }
    Redirect::to(&target)
}

/// `POST /ui/jobs/{id}/{retry|cancel|delete}`.
pub(crate) async fn job_action(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = Form::parse(&body);
    let action = Action::parse(&action)
        .ok_or_else(|| UiError(AppError::NotFound(format!("No action `{action}`."))))?;
    let id: JobId = id
        .parse()
        .map_err(|_| UiError(AppError::NotFound(format!("There is no job with id {id}."))))?;
    let done = action.apply(&app, id).await?;
    let default = if action == Action::Delete && done {
        "/ui/jobs".to_owned()
    } else {
        format!("/ui/jobs/{id}")
    };
    let back = match form.one("back") {
        "" => default,
        b => safe_next(b),
    };
    Ok(back_with(
        &back,
        action.code(),
        u64::from(done),
        u64::from(!done),
        false,
    )
    .into_response())
}

/// `POST /ui/jobs/bulk`: `action` is `retry`, `cancel` or `delete` for the selected `id`s, or `retry-all`,
/// `cancel-all`, `delete-all` for every job matching the filter fields (up to [`BULK_LIMIT`] per request).
pub(crate) async fn bulk(State(app): State<AppState>, body: Bytes) -> Result<Response, UiError> {
    let form = Form::parse(&body);
    let back = safe_next(match form.one("back") {
        "" => "/ui/jobs",
        b => b,
    });
    let requested = form.one("action");
    let (action, everything) = match requested.strip_suffix("-all") {
        Some(a) => (Action::parse(a), true),
        None => (Action::parse(requested), false),
    };
    let action = action.ok_or_else(|| {
        UiError(AppError::invalid(
            "action",
            format!("no bulk action `{requested}`"),
        ))
    })?;
    let (ids, more) = if everything {
        matching(&app, &form).await?
    } else {
        let mut ids: Vec<JobId> = form
            .all("id")
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(BULK_LIMIT);
        (ids, false)
    };
    let app = &app;
    let mut results = futures::stream::iter(ids)
        .map(|id| async move { action.apply(app, id).await })
        .buffer_unordered(BULK_CONCURRENCY);
    let (mut done, mut refused) = (0, 0);
    while let Some(result) = results.next().await {
        match result? {
            true => done += 1,
            false => refused += 1,
        }
    }
    Ok(back_with(&back, action.code(), done, refused, more).into_response())
}

/// Ids of the jobs matching the form's filter, newest first, at most [`BULK_LIMIT`]; and whether more match.
async fn matching(app: &AppState, form: &Form) -> Result<(Vec<JobId>, bool), UiError> {
    let mut params = list_params(
        form.one("queue"),
        form.one("state"),
        form.one("name"),
        form.one("tag"),
    )
    .map_err(|m| UiError(AppError::invalid("filter", m)))?;
    params.limit = 500;
    let mut ids = Vec::new();
    loop {
        let page = app.engine.list(params.clone()).await?;
        let full = page.len() == params.limit as usize;
        ids.extend(page.iter().map(|j| j.id));
        if ids.len() > BULK_LIMIT {
            ids.truncate(BULK_LIMIT);
            return Ok((ids, true));
        }
        match page.last() {
            Some(last) if full => params.before = Some(last.id),
            _ => return Ok((ids, false)),
        }
    }
}

/// `POST /ui/runs/{id}/{cancel|retry}`: cancels a run that has not ended, or resumes a failed or cancelled
/// one; a run whose state does not allow it is reported on its page as refused.
pub(crate) async fn run_action(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let not_found = || UiError(AppError::NotFound(format!("There is no run with id {id}.")));
    let run_id: RunId = id.parse().map_err(|_| not_found())?;
    let functions = app.engine.functions();
    let (result, code) = match action.as_str() {
        "cancel" => (functions.cancel_run(run_id).await.map(drop), "run_cancel"),
        "retry" => (functions.retry_run(run_id).await.map(drop), "run_retry"),
        _ => {
            return Err(UiError(AppError::NotFound(format!(
                "No action `{action}`."
            ))));
        }
    };
    let done = match result {
        Ok(()) => true,
        Err(EngineError::Store(StoreError::RunState { .. })) => false,
        Err(EngineError::Store(StoreError::NotFound(_))) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    Ok(back_with(
        &format!("/ui/runs/{run_id}"),
        code,
        u64::from(done),
        u64::from(!done),
        false,
    )
    .into_response())
}

/// `POST /ui/queues/{queue}/{pause|resume}`.
pub(crate) async fn queue_action(
    State(app): State<AppState>,
    Path((queue, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = Form::parse(&body);
    validate_queue_name(&queue).map_err(|m| UiError(AppError::invalid("queue", m)))?;
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => {
            return Err(UiError(AppError::NotFound(format!(
                "No action `{action}`."
            ))));
        }
    };
    app.engine.set_paused(queue, paused).await?;
    let back = safe_next(match form.one("back") {
        "" => "/ui",
        b => b,
    });
    let separator = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{separator}done={action}")).into_response())
}

/// `POST /ui/schedules/{name}/{action}`: pause, resume or trigger a schedule.
pub(crate) async fn schedule_action(
    State(app): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, UiError> {
    validate_schedule_name(&name).map_err(|m| UiError(AppError::invalid("name", m)))?;
    let done = match action.as_str() {
        "pause" | "resume" => {
            app.engine
                .set_schedule_paused(&name, action == "pause")
                .await?;
            if action == "pause" {
                "schedule_pause"
            } else {
                "schedule_resume"
            }
        }
        "trigger" => {
            app.engine.trigger_schedule(&name).await?;
            "trigger"
        }
        _ => {
            return Err(UiError(AppError::NotFound(format!(
                "No action `{action}`."
            ))));
        }
    };
    Ok(Redirect::to(&format!("/ui/schedules?done={done}")).into_response())
}

/// `POST /ui/login`: a valid API token opens a session.
pub(crate) async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.sessions.requires_login() {
        return Redirect::to("/ui").into_response();
    }
    if !session::same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "403 Forbidden: the form was sent from another site\n",
        )
            .into_response();
    }
    let form = Form::parse(&body);
    let next = safe_next(form.one("next"));
    if !app.sessions.token_accepted(form.one("token")) {
        let mut response = render(&LoginPage { next, failed: true });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let (id, _) = app.sessions.open();
    let mut response = Redirect::to(&next).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::cookie(&id));
    response
}

/// `POST /ui/logout`: ends the session.
pub(crate) async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session::session_id(&headers) {
        app.sessions.close(&id);
    }
    let target = if app.sessions.requires_login() {
        "/ui/login"
    } else {
        "/ui"
    };
    let mut response = Redirect::to(target).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields() {
        let form = Form::parse(b"id=a&id=b&action=retry&back=%2Fui%2Fjobs%3Fqueue%3Dq");
        assert_eq!(form.all("id"), ["a", "b"]);
        assert_eq!(form.one("action"), "retry");
        assert_eq!(form.one("back"), "/ui/jobs?queue=q");
        assert_eq!(form.one("missing"), "");
    }

    #[test]
    fn outcomes_ride_on_the_redirect() {
        let r = back_with("/ui/jobs?queue=q", "retry", 3, 1, true).into_response();
        assert_eq!(
            r.headers()[header::LOCATION],
            "/ui/jobs?queue=q&done=retry&n=3&refused=1&more=true"
        );
        let r = back_with("/ui/dead", "delete", 2, 0, false).into_response();
        assert_eq!(r.headers()[header::LOCATION], "/ui/dead?done=delete&n=2");
    }

    #[test]
    fn unknown_actions_are_none() {
        assert_eq!(Action::parse("retry"), Some(Action::Retry));
        assert_eq!(Action::parse("explode"), None);
    }
}
