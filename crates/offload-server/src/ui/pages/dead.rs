//! The dead jobs page (`/ui/dead`): the jobs list fixed to the `dead` state, newest first, with "Retry all".

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;

use super::jobs::{JobsQuery, list_page};
use crate::AppState;
use crate::ui::layout::{NoticeQuery, UiError};
use crate::ui::session::Csrf;

/// `GET /ui/dead`: dead jobs, newest first, with "retry all".
pub(crate) async fn dead(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<JobsQuery>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    list_page(app, csrf, q, notice, true).await
}
