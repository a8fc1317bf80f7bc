//! The push targets page (`/ui/push`): per destination, the deliveries that failed in the last hour.
//!
//! One bounded store read ([`offload_store::Store::push_failures`]: at most [`DESTINATIONS`] destinations,
//! counts stopping at [`COUNT_LIMIT`]); each failure's recorded error is read back into its HTTP status or
//! kind ([`offload_core::push::recorded`]), and only an excerpt of it is shown, escaped by the template.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use offload_core::push::recorded::{self, Recorded};
use offload_store::PushFailuresParams;

use crate::AppState;
use crate::ui::format::{exact, excerpt, relative, short_id};
use crate::ui::layout::{Layout, UiError, layout, render};
use crate::ui::session::Csrf;

/// Destinations shown.
const DESTINATIONS: u32 = 50;
/// Counting one destination's failures stops here (shown as "10000+").
const COUNT_LIMIT: u32 = 10_000;
/// The window the page looks at.
const WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);
/// Characters of a response or error shown.
const EXCERPT: usize = 160;

#[derive(Template)]
#[template(path = "push.html")]
struct PushPage {
    layout: Layout,
    rows: Vec<FailureRow>,
    /// Most destinations shown.
    shown_max: u32,
    /// The page shows as many destinations as it can: there may be more.
    full: bool,
}

/// One destination's line.
struct FailureRow {
    destination: String,
    failures: String,
    last: String,
    last_exact: String,
    /// `HTTP 500`, `timeout`, `connection failed`, `refused by policy` or `error`.
    status: String,
    /// The response body's or the error's start.
    excerpt: String,
    job_id: String,
    short_id: String,
    attempt: u32,
}

/// The status column and the excerpt of one recorded error.
fn status_and_excerpt(error: &str) -> (String, String) {
    let (status, detail) = match recorded::read(error) {
        Recorded::Status { status, detail } => (format!("HTTP {status}"), detail),
        Recorded::Timeout => ("timeout".to_owned(), error),
        Recorded::Connect(why) => ("connection failed".to_owned(), why),
        Recorded::Refused(why) => ("refused by policy".to_owned(), why),
        Recorded::Other(text) => ("error".to_owned(), text),
    };
    (status, excerpt(detail, EXCERPT))
}

/// `GET /ui/push`: push destinations with failed deliveries in the last hour, latest failure first.
pub(crate) async fn push(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    let now = app.engine.now();
    let since = now.checked_sub(WINDOW).unwrap_or(now);
    let failures = app
        .engine
        .push_failures(PushFailuresParams {
            since,
            limit: DESTINATIONS,
            count_limit: COUNT_LIMIT,
        })
        .await?;
    let rows: Vec<FailureRow> = failures
        .into_iter()
        .map(|f| {
            let (status, excerpt) = status_and_excerpt(f.error.as_deref().unwrap_or(""));
            let job_id = f.job_id.to_string();
            FailureRow {
                destination: f.destination,
                failures: if f.failures >= u64::from(COUNT_LIMIT) {
                    format!("{COUNT_LIMIT}+")
                } else {
                    f.failures.to_string()
                },
                last: relative(f.last_failed_at, now),
                last_exact: exact(f.last_failed_at),
                status,
                excerpt,
                short_id: short_id(&job_id),
                job_id,
                attempt: f.attempt,
            }
        })
        .collect();
    let page = PushPage {
        layout: layout(&app, csrf, "/ui/push", None),
        full: rows.len() >= DESTINATIONS as usize,
        rows,
        shown_max: DESTINATIONS,
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_excerpts() {
        assert_eq!(
            status_and_excerpt("HTTP 503: service unavailable\nretry later"),
            ("HTTP 503".to_owned(), "service unavailable…".to_owned())
        );
        assert_eq!(
            status_and_excerpt("HTTP 404"),
            ("HTTP 404".to_owned(), String::new())
        );
        assert_eq!(
            status_and_excerpt("request timed out"),
            ("timeout".to_owned(), "request timed out".to_owned())
        );
        assert_eq!(
            status_and_excerpt("connection failed: tcp connect error: Connection refused"),
            (
                "connection failed".to_owned(),
                "tcp connect error: Connection refused".to_owned()
            )
        );
        let long = format!("HTTP 500: {}", "x".repeat(500));
        let (_, cut) = status_and_excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT + 1, "cut, with an ellipsis");
    }
}
