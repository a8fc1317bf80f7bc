//! The login page (`/ui/login`): the token form, shown only when API tokens are configured.
//!
//! Invariant: after login the user is only ever sent to a dashboard path ([`safe_next`]), so the form is no
//! open redirect.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::ui::layout::render;

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
    fn login_redirects_only_into_the_dashboard() {
        assert_eq!(safe_next("/ui/jobs?queue=a"), "/ui/jobs?queue=a");
        assert_eq!(safe_next("https://evil.example"), "/ui");
        assert_eq!(safe_next("//evil.example"), "/ui");
        assert_eq!(safe_next("/ui//evil"), "/ui");
        assert_eq!(safe_next("/uievil"), "/ui");
    }
}
