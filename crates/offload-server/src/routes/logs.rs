//! Log lines of jobs and runs: `POST` appends 1 to 100 lines, `GET` reads them in pages, oldest first.
//!
//! Lines are validated by [`offload_core::log::validate_lines`] and stored in one store call, all or none. A job's
//! lines may carry the claim's lease token: then it must be the running attempt's (`lease_mismatch` otherwise)
//! and the lines record the attempt. Runs take no token. Each job and run keeps its newest 1,000 lines.

use axum::extract::State;
use offload_core::log::{LogAppendRequest, LogAppended, LogPage, read_limit, validate_lines};
use offload_store::{LogAppendParams, LogOwner, LogReadParams};
use serde::Deserialize;

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{JobIdPath, Json, Query};
use crate::routes::runs::RunIdPath;

/// `GET /v1/jobs/{id}/logs` and `GET /v1/runs/{id}/logs` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Only lines with a greater `seq` (the `next_after` of the previous page); default 0: from the oldest kept.
    after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
}

async fn append(app: &AppState, owner: LogOwner, request: LogAppendRequest) -> Result<LogAppended> {
    let lines = validate_lines(request.lines)?;
    let appended = app
        .engine
        .store()
        .log_append(LogAppendParams {
            owner,
            lease_token: request.lease_token,
            lines,
        })
        .await?;
    Ok(appended)
}

async fn read(app: &AppState, owner: LogOwner, query: LogQuery) -> Result<LogPage> {
    let limit = read_limit(query.limit)?;
    let lines = app
        .engine
        .store()
        .log_read(LogReadParams {
            owner,
            after: query.after.unwrap_or(0),
            limit,
        })
        .await?;
    let next_after = match lines.len() == limit as usize {
        true => lines.last().map(|l| l.seq),
        false => None,
    };
    Ok(LogPage { lines, next_after })
}

/// `POST /v1/jobs/{id}/logs`: append lines to a job.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/logs", tag = "logs", operation_id = "append_job_logs",
    params(("id" = offload_core::JobId, Path, description = "The job's id (a UUID)")),
    request_body = LogAppendRequest,
    responses((status = 200, description = "The numbers the lines got", body = LogAppended))
)]
pub(crate) async fn append_job(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Json(request): Json<LogAppendRequest>,
) -> Result<axum::Json<LogAppended>> {
    Ok(axum::Json(append(&app, LogOwner::Job(id), request).await?))
}

/// `GET /v1/jobs/{id}/logs`: a job's lines, oldest first.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/logs", tag = "logs", operation_id = "list_job_logs",
    params(("id" = offload_core::JobId, Path, description = "The job's id (a UUID)"), LogQuery),
    responses((status = 200, description = "A page of lines, oldest first", body = LogPage))
)]
pub(crate) async fn list_job(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Query(query): Query<LogQuery>,
) -> Result<axum::Json<LogPage>> {
    Ok(axum::Json(read(&app, LogOwner::Job(id), query).await?))
}

/// `POST /v1/runs/{id}/logs`: append lines to a run (no lease token).
#[utoipa::path(
    post, path = "/v1/runs/{id}/logs", tag = "logs", operation_id = "append_run_logs",
    params(("id" = String, Path, description = "Run id")),
    request_body = LogAppendRequest,
    responses((status = 200, description = "The numbers the lines got", body = LogAppended))
)]
pub(crate) async fn append_run(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
    Json(request): Json<LogAppendRequest>,
) -> Result<axum::Json<LogAppended>> {
    if request.lease_token.is_some() {
        return Err(AppError::invalid("lease_token", "runs take no lease token"));
    }
    Ok(axum::Json(append(&app, LogOwner::Run(id), request).await?))
}

/// `GET /v1/runs/{id}/logs`: a run's lines, oldest first.
#[utoipa::path(
    get, path = "/v1/runs/{id}/logs", tag = "logs", operation_id = "list_run_logs",
    params(("id" = String, Path, description = "Run id"), LogQuery),
    responses((status = 200, description = "A page of lines, oldest first", body = LogPage))
)]
pub(crate) async fn list_run(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
    Query(query): Query<LogQuery>,
) -> Result<axum::Json<LogPage>> {
    Ok(axum::Json(read(&app, LogOwner::Run(id), query).await?))
}
