//! The dashboard at `/ui`: server-rendered HTML (askama templates, escaped by default), htmx for partial
//! updates, every asset embedded in the binary. No Node, no build step.
//!
//! Pages, one module each under [`pages`]: overview (queues, counts, throughput chart, pause/resume), jobs
//! (filters, keyset paging, bulk actions), job detail (payload, timeline, attempts, actions, the whole stored
//! values as downloads), dead jobs, schedules (expressions in words, next fire times, recent ticks,
//! pause/resume/trigger), push targets (recent failed deliveries per destination), and for durable functions:
//! functions (triggers, recent runs and failures), runs (filters, keyset paging), run detail (a timeline of
//! steps, cancel/retry) and events (the runs each started). They share the frame in [`layout`], the
//! formatting in [`format`] and the list pages' keyset paging in [`paging`]. Navigation is one list, [`NAV`]:
//! a new page is a module, a template and one line there.
//!
//! Invariants: every page reads bounded data (maintained counters, index walks that stop after a page,
//! per-minute throughput rows), so it renders in the same time with a million jobs as with ten; every stored
//! value is shown cut to a bounded size, in time linear in the value, however it nests; everything
//! that came from users is escaped by the templates and the pages forbid inline scripts (CSP), so a payload
//! can never run in the browser; every POST passes [`session::guard`] (session and CSRF token).

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::AppState;

mod actions;
mod format;
mod layout;
mod pages;
mod paging;
pub(crate) mod session;

pub(crate) use session::Sessions;

/// Most jobs a "… all" bulk action touches in one request (the notice says when more remain).
pub(crate) const BULK_LIMIT: usize = 10_000;

/// One entry of the navigation bar.
pub(crate) struct NavEntry {
    /// Shown text.
    pub(crate) label: &'static str,
    /// Where it leads.
    pub(crate) href: &'static str,
}

/// The navigation bar, in order. Pages of features still to come add their entry here.
pub(crate) const NAV: &[NavEntry] = &[
    NavEntry {
        label: "Overview",
        href: "/ui",
    },
    NavEntry {
        label: "Jobs",
        href: "/ui/jobs",
    },
    NavEntry {
        label: "Dead",
        href: "/ui/dead",
    },
    NavEntry {
        label: "Schedules",
        href: "/ui/schedules",
    },
    NavEntry {
        label: "Functions",
        href: "/ui/functions",
    },
    NavEntry {
        label: "Runs",
        href: "/ui/runs",
    },
    NavEntry {
        label: "Events",
        href: "/ui/events",
    },
    NavEntry {
        label: "Push targets",
        href: "/ui/push",
    },
];

/// The content security policy of every dashboard response: only our own scripts and styles run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, guarded by sessions.
pub(crate) fn routes(sessions: Arc<Sessions>) -> Router<AppState> {
    let guarded = Router::new()
        .route("/ui", get(pages::overview::overview))
        .route("/ui/", get(pages::overview::overview))
        .route("/ui/jobs", get(pages::jobs::jobs))
        .route("/ui/dead", get(pages::dead::dead))
        .route("/ui/jobs/{id}", get(pages::job::job))
        .route("/ui/jobs/{id}/raw/{part}", get(pages::job::raw))
        .route("/ui/jobs/{id}/{action}", post(actions::job_action))
        .route("/ui/jobs/bulk", post(actions::bulk))
        .route("/ui/queues/{queue}", get(pages::queue::queue))
        .route("/ui/queues/{queue}/{action}", post(actions::queue_action))
        .route("/ui/schedules", get(pages::schedules::schedules))
        .route(
            "/ui/schedules/{name}/{action}",
            post(actions::schedule_action),
        )
        .route("/ui/push", get(pages::push::push))
        .route("/ui/functions", get(pages::functions::functions))
        .route("/ui/runs", get(pages::runs::runs))
        .route("/ui/runs/{id}", get(pages::run::run))
        .route("/ui/runs/{id}/raw/{part}", get(pages::run::raw))
        .route("/ui/runs/{id}/{action}", post(actions::run_action))
        .route("/ui/events", get(pages::events::events))
        .route("/ui/events/{id}", get(pages::events::event))
        .route("/ui/logout", post(actions::logout))
        .layer(middleware::from_fn_with_state(sessions, session::guard));
    Router::new()
        .route(
            "/ui/login",
            get(pages::login::login_form).post(actions::login),
        )
        .route("/ui/assets/{file}", get(asset))
        .merge(guarded)
        .layer(middleware::map_response(security_headers))
}

/// Headers every dashboard response carries.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The embedded assets: htmx (2.0.11, 0BSD licence, see `assets/htmx.LICENSE`), our script and stylesheet.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> axum::response::Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "htmx.min.js" => (include_str!("assets/htmx.min.js"), "text/javascript"),
        "app.js" => (include_str!("assets/app.js"), "text/javascript"),
        "app.css" => (include_str!("assets/app.css"), "text/css"),
        _ => return (axum::http::StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
