//! Queue administration: list with counts, read one with its limits and live usage, change its limits, pause
//! and resume.
//!
//! Invariant: a limits change is a JSON object (never an array serde would read by position), validated here ([`QueueLimits::patched`] of the default names the field)
//! before the store sees it, so the store's own check of the merged result never refuses a valid request.

use axum::extract::State;
use offload_core::api::{QueueInfo, QueueList};
use offload_core::flow::limits::{QueueLimits, QueueLimitsPatch, ThrottleSpec};
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{Json, QueuePath};

/// `GET /v1/queues`: every queue with its counts per state.
#[utoipa::path(
    get, path = "/v1/queues", tag = "queues", operation_id = "list_queues",
    responses((status = 200, description = "Every queue with counts by state", body = QueueList))
)]
pub(crate) async fn list(State(app): State<AppState>) -> Result<axum::Json<QueueList>> {
    let queues = app.engine.queues().await?;
    Ok(axum::Json(QueueList { queues }))
}

/// `GET /v1/queues/{queue}`: one queue with its counts, limits and live usage (running jobs, groups running,
/// when the throttle lets the next job start, the groups with most available jobs).
#[utoipa::path(
    get, path = "/v1/queues/{queue}", tag = "queues", operation_id = "get_queue", params(("queue" = String, Path, description = "Queue name: 1 to 128 ASCII letters, digits and `-_.:`")),
    responses((status = 200, description = "The queue with its limits and usage", body = QueueInfo))
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    QueuePath(queue): QueuePath,
) -> Result<axum::Json<QueueInfo>> {
    match app.engine.queue(&queue).await? {
        Some(info) => Ok(axum::Json(info)),
        None => Err(AppError::NotFound(format!("queue {queue} not found"))),
    }
}

/// `PATCH /v1/queues/{queue}`: changes the queue's limits (a queue can be limited before its first job).
/// Absent fields keep their value, `null` removes a limit. A lowered limit lets running jobs finish.
#[utoipa::path(
    patch, path = "/v1/queues/{queue}", tag = "queues", operation_id = "set_queue_limits", params(("queue" = String, Path, description = "Queue name: 1 to 128 ASCII letters, digits and `-_.:`")),
    request_body = LimitsPatchDoc,
    responses((status = 200, description = "The queue afterwards, with its limits and usage", body = QueueInfo))
)]
pub(crate) async fn set_limits(
    State(app): State<AppState>,
    QueuePath(queue): QueuePath,
    Json(body): Json<Map<String, Value>>,
) -> Result<axum::Json<QueueInfo>> {
    let patch = limits_patch(body)?;
    let checked = QueueLimits::default().patched(patch.clone())?;
    app.limits.check_queue_limits(&checked)?;
    Ok(axum::Json(app.engine.set_limits(queue, patch).await?))
}

/// Reads a patch from a JSON object. The limits are integers as JSON Schema counts them: `10` or `10.0` (a
/// client that writes every number as a float sends valid requests); fractions and negatives stay refused,
/// naming the field.
fn limits_patch(mut body: Map<String, Value>) -> Result<QueueLimitsPatch> {
    for field in ["concurrency", "group_concurrency"] {
        whole(body.get_mut(field));
    }
    if let Some(Value::Object(throttle)) = body.get_mut("throttle") {
        for field in ["limit", "burst"] {
            whole(throttle.get_mut(field));
        }
    }
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| AppError::Internal(format!("re-encoding a limits patch: {e}")))?;
    crate::extract::parse_json(&bytes)
}

/// A float without a fractional part, within `u64`, becomes that integer.
fn whole(value: Option<&mut Value>) {
    if let Some(value) = value
        && let Some(f) = value
            .as_f64()
            .filter(|_| !value.is_i64() && !value.is_u64())
        && f.fract() == 0.0
        && (0.0..=u64::MAX as f64).contains(&f)
    {
        *value = Value::from(f as u64);
    }
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
) -> Result<axum::Json<QueueInfo>> {
    Ok(axum::Json(app.engine.set_paused(queue, true).await?))
}

/// `POST /v1/queues/{queue}/resume`: claims hand out the queue's jobs again (and waiting claimers wake).
#[utoipa::path(
    post, path = "/v1/queues/{queue}/resume", tag = "queues", operation_id = "resume_queue", params(("queue" = String, Path, description = "Queue name: 1 to 128 ASCII letters, digits and `-_.:`")),
    responses((status = 200, description = "The queue, resumed", body = QueueInfo))
)]
pub(crate) async fn resume(
    State(app): State<AppState>,
    QueuePath(queue): QueuePath,
) -> Result<axum::Json<QueueInfo>> {
    Ok(axum::Json(app.engine.set_paused(queue, false).await?))
}

/// A change to a queue's limits: an absent field keeps its value, `null` removes the limit. Unknown fields
/// are refused.
// The document's view of the body: `QueueLimitsPatch` (which has no schema) is what parses it.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[schema(as = QueueLimitsPatch)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to be documented
pub(crate) struct LimitsPatchDoc {
    /// Most running jobs of the queue, across every worker and server; `null` removes the limit.
    concurrency: Option<u32>,
    /// Most running jobs per group (jobs without a group are not limited by it); `null` removes the limit.
    group_concurrency: Option<u32>,
    /// Most job starts per period, for the queue or per group (GCRA with `burst`); `null` removes it.
    throttle: Option<ThrottleSpec>,
    /// Claims take groups in turn (`null` or absent: unchanged).
    fair: Option<bool>,
}
