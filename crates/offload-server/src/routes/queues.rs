//! Queue administration: list with counts, pause and resume.

use axum::Json;
use axum::extract::State;
use offload_core::api::{QueueInfo, QueueList};

use crate::AppState;
use crate::error::Result;
use crate::extract::QueuePath;

/// `GET /v1/queues`: every queue with its counts per state.
#[utoipa::path(
    get, path = "/v1/queues", tag = "queues", operation_id = "list_queues",
    responses((status = 200, description = "Every queue with counts by state", body = QueueList))
)]
pub(crate) async fn list(State(app): State<AppState>) -> Result<Json<QueueList>> {
    let queues = app.engine.queues().await?;
    Ok(Json(QueueList { queues }))
}

/// `POST /v1/queues/{queue}/pause`: claims of the queue return nothing until it is resumed. A queue can be
/// paused before its first job.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/pause", tag = "queues", operation_id = "pause_queue", params(("queue" = String, Path, description = "Queue name: 1 to 128 ASCII letters, digits and `-_.:`")),
    responses((status = 200, description = "The queue, paused", body = QueueInfo))
)]
pub(crate) async fn pause(
    State(app): State<AppState>,
    QueuePath(queue): QueuePath,
) -> Result<Json<QueueInfo>> {
    Ok(Json(app.engine.set_paused(queue, true).await?))
}

/// `POST /v1/queues/{queue}/resume`: claims hand out the queue's jobs again (and waiting claimers wake).
#[utoipa::path(
    post, path = "/v1/queues/{queue}/resume", tag = "queues", operation_id = "resume_queue", params(("queue" = String, Path, description = "Queue name: 1 to 128 ASCII letters, digits and `-_.:`")),
    responses((status = 200, description = "The queue, resumed", body = QueueInfo))
)]
pub(crate) async fn resume(
    State(app): State<AppState>,
    QueuePath(queue): QueuePath,
) -> Result<Json<QueueInfo>> {
    Ok(Json(app.engine.set_paused(queue, false).await?))
}
