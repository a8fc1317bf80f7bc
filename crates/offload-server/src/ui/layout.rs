//! The frame every dashboard page shares: navigation, CSRF token, the server's time and a notice about the
//! last action; and how a failed page, a template or a stored value offered as a download is turned into a
//! response.
//!
//! Invariant: a notice is built from codes in the redirect's query, never from text it carries, so a link
//! cannot make a page claim something the server did not do.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::format::time;
use super::session::Csrf;
use super::{BULK_LIMIT, NAV, NavEntry};
use crate::AppState;
use crate::error::AppError;

/// A failed page: an HTML error page with the error's status.
pub(crate) struct UiError(pub(crate) AppError);

impl From<offload_engine::EngineError> for UiError {
    fn from(e: offload_engine::EngineError) -> Self {
        UiError(e.into())
    }
}

impl From<offload_store::StoreError> for UiError {
    fn from(e: offload_store::StoreError) -> Self {
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

/// A stored value exactly as stored, as a download named `{stem}.json` (JSON) or `{stem}.txt` (text).
///
/// `stem` goes into a header as it is: callers build it from ids and fixed part names only.
pub(crate) fn download(body: String, json: bool, stem: &str) -> Response {
    let (kind, ext) = if json {
        ("application/json", "json")
    } else {
        ("text/plain; charset=utf-8", "txt")
    };
    let disposition = format!("attachment; filename=\"{stem}.{ext}\"");
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
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
    /// What was done: `retry`, `cancel`, `delete`, `pause`, `resume`, `run_cancel`, `run_retry`, ...
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
    /// The notice these codes stand for; `None` for none or unknown codes.
    pub(crate) fn notice(&self) -> Option<Notice> {
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
            "run_cancel" | "run_retry" => return Some(run_notice(self.done.as_deref()?, self)),
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

/// The notice of a run's cancel or retry: done, or refused because of the run's state.
fn run_notice(code: &str, q: &NoticeQuery) -> Notice {
    let cancel = code == "run_cancel";
    if q.n.unwrap_or(0) > 0 {
        return ok(if cancel {
            "Run cancelled: its pending steps will not run."
        } else {
            "Run retried: it resumes from its last recorded step."
        });
    }
    Notice {
        kind: "error",
        text: if cancel {
            "The run was not cancelled: it has already ended."
        } else {
            "The run was not retried: only failed or cancelled runs can be."
        }
        .to_owned(),
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
