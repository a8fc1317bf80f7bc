//! Producers' and operators' job routes: enqueue (one or a batch), read, list, cancel, retry, delete.
//!
//! The enqueue path is hot: it validates, stores and answers without reading the job back and without
//! copying the payload (see [`crate::view`]). Only an idempotent replay, which is rare, reads the existing job.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use offload_core::api::{
    EnqueueBatchRequest, EnqueueBatchResponse, EnqueuedJob, JobPage, ListJobsQuery, MAX_BATCH_JOBS,
    Page,
};
use offload_core::flow::limits::validate_group;
use offload_core::spec::{EnqueueRequest, validate_queue_name};
use offload_core::{Job, JobId};
use offload_store::{Inserted, JobListParams};

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{JobIdPath, Json, Query};
use crate::routes::page::page_limit;
use crate::view::PendingJobView;

/// The header that carries an idempotency key, as an alternative to the body's `idempotency_key`.
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Page size of `GET /v1/jobs` when none is asked for.
const DEFAULT_PAGE: u32 = 50;

/// `POST /v1/jobs`: 201 with the new job; 200 with the existing job for an idempotent replay, and 200 with
/// the waiting job that took this enqueue's payload and start, marked `"debounced": true`, for a debounced
/// enqueue that matched one.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs", operation_id = "enqueue",
    request_body = EnqueueRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "De-duplication key, as an alternative to the body's `idempotency_key`")),
    responses(
        (status = 201, description = "Stored durably", body = Job),
        (status = 200, description = "Idempotent replay: the job created by the same request earlier; or a debounced enqueue: the waiting job with the same debounce key, which took this payload and start, with `\"debounced\": true` added", body = Job),
    )
)]
pub(crate) async fn enqueue(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<EnqueueRequest>,
) -> Result<Response> {
    let header_key = match headers.get(&IDEMPOTENCY_KEY) {
        Some(value) => Some(
            std::str::from_utf8(value.as_bytes())
                .map_err(|_| AppError::invalid("Idempotency-Key", "header is not valid UTF-8"))?,
        ),
        None => None,
    };
    let job = request.validate(&app.limits, header_key, app.engine.now())?;
    app.engine.check_push(&job)?;
    let view =
        PendingJobView::new(&job).map_err(|e| AppError::Internal(format!("job view: {e}")))?;
    let inserted = single(app.engine.enqueue(vec![job]).await?)?;
    if inserted.duplicate {
        let existing = app.engine.get(inserted.id).await?.ok_or_else(|| {
            AppError::NotFound(format!(
                "job {} holds this idempotency key but was just deleted",
                inserted.id
            ))
        })?;
        return Ok((StatusCode::OK, axum::Json(existing)).into_response());
    }
    if inserted.debounced {
        let waiting = app.engine.get(inserted.id).await?.ok_or_else(|| {
            AppError::NotFound(format!(
                "job {} took this debounced enqueue but was just deleted",
                inserted.id
            ))
        })?;
        let body =
            debounced_view(&waiting).map_err(|e| AppError::Internal(format!("job view: {e}")))?;
        let json = HeaderValue::from_static("application/json");
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, json)], body).into_response());
    }
    let body = view
        .finish(&inserted)
        .map_err(|e| AppError::Internal(format!("job view: {e}")))?;
    let location = HeaderValue::try_from(format!("/v1/jobs/{}", inserted.id))
        .map_err(|e| AppError::Internal(format!("location header: {e}")))?;
    let json = HeaderValue::from_static("application/json");
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, json), (header::LOCATION, location)],
        body,
    )
        .into_response())
}

/// A job document with `"debounced": true` added: the answer of a debounced enqueue (the flag belongs to the
/// answer, not to the job).
fn debounced_view(job: &Job) -> serde_json::Result<Vec<u8>> {
    let mut buf = serde_json::to_vec(job)?;
    if buf.pop() != Some(b'}') {
        return Err(serde::ser::Error::custom(
            "a job did not serialize as a JSON object",
        ));
    }
    buf.extend_from_slice(b",\"debounced\":true}");
    Ok(buf)
}

/// The one answer of a one-job insert.
fn single(inserted: Vec<Inserted>) -> Result<Inserted> {
    match <[Inserted; 1]>::try_from(inserted) {
        Ok([one]) => Ok(one),
        Err(all) => Err(AppError::Internal(format!(
            "the store answered {} results for one job",
            all.len()
        ))),
    }
}

/// `POST /v1/jobs/batch`: validates every job, then stores all of them in one transaction or none.
#[utoipa::path(
    post, path = "/v1/jobs/batch", tag = "jobs", operation_id = "enqueue_batch",
    request_body = EnqueueBatchRequest,
    responses((status = 201, description = "Every job stored in one transaction", body = EnqueueBatchResponse))
)]
pub(crate) async fn enqueue_batch(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<EnqueueBatchRequest>,
) -> Result<(StatusCode, axum::Json<EnqueueBatchResponse>)> {
    if headers.contains_key(&IDEMPOTENCY_KEY) {
        return Err(AppError::invalid(
            "Idempotency-Key",
            "header is not accepted on batches; give each job its own `idempotency_key`",
        ));
    }
    let count = request.jobs.len();
    if count == 0 || count > MAX_BATCH_JOBS {
        return Err(AppError::invalid(
            "jobs",
            format!("must hold 1 to {MAX_BATCH_JOBS} jobs, not {count}"),
        ));
    }
    let now = app.engine.now();
    let jobs = request
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            job.validate(&app.limits, None, now)
                .and_then(|job| app.engine.check_push(&job).map(|()| job))
                .map_err(|e| e.within(&format!("jobs[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inserted = app.engine.enqueue(jobs).await?;
    if inserted.len() != count {
        return Err(AppError::Internal(format!(
            "the store answered {} results for {count} jobs",
            inserted.len()
        )));
    }
    let jobs = inserted
        .into_iter()
        .map(|i| EnqueuedJob {
            id: i.id,
            state: i.state,
            duplicate: i.duplicate,
            debounced: i.debounced,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(EnqueueBatchResponse { jobs }),
    ))
}

/// `GET /v1/jobs/{id}`: the job with its attempt history.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "get_job", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    responses((status = 200, description = "The job with its attempt history", body = Job))
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<axum::Json<Job>> {
    match app.engine.get(id).await? {
        Some(job) => Ok(axum::Json(job)),
        None => Err(AppError::NotFound(format!("job {id} not found"))),
    }
}

/// `GET /v1/jobs`: a filtered page, newest first. A full page carries `next_cursor`.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs", operation_id = "list_jobs", params(ListJobsQuery),
    responses((status = 200, description = "A page of jobs, newest first", body = Page<Job>))
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Query(query): Query<ListJobsQuery>,
) -> Result<axum::Json<JobPage>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE)?;
    if let Some(queue) = &query.queue {
        validate_queue_name(queue).map_err(|m| AppError::invalid("queue", m))?;
    }
    if let Some(group) = &query.group {
        validate_group(group).map_err(|m| AppError::invalid("group", m))?;
    }
    let before = match query.cursor.as_deref() {
        Some(cursor) => Some(cursor.parse::<JobId>().map_err(|_| {
            AppError::invalid("cursor", "is not a `next_cursor` of a previous page")
        })?),
        None => None,
    };
    let tag = match query.tag {
        Some(tag) => match tag.split_once(':') {
            Some((key, value)) if !key.is_empty() => Some((key.to_owned(), value.to_owned())),
            _ => return Err(AppError::invalid("tag", "must be written `key:value`")),
        },
        None => None,
    };
    let params = JobListParams {
        queue: query.queue,
        state: query.state,
        name: query.name,
        tag,
        group: query.group,
        before,
        limit,
    };
    let items = app.engine.list(params).await?;
    let full = items.len() >= limit as usize;
    let next_cursor = items.last().filter(|_| full).map(|job| job.id.to_string());
    Ok(axum::Json(JobPage { items, next_cursor }))
}

/// `POST /v1/jobs/{id}/cancel`: at once unless running; a running job gets a cancel request its worker
/// sees on the next heartbeat.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "cancel_job", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    responses((status = 200, description = "The job afterwards (cancelled, or `cancel_requested` when running)", body = Job))
)]
pub(crate) async fn cancel(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<axum::Json<Job>> {
    Ok(axum::Json(app.engine.cancel(id).await?))
}

/// `POST /v1/jobs/{id}/retry`: a dead or cancelled job becomes available again.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "jobs", operation_id = "retry_job", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    responses((status = 200, description = "The job, available again", body = Job))
)]
pub(crate) async fn retry(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<axum::Json<Job>> {
    Ok(axum::Json(app.engine.retry(id).await?))
}

/// `DELETE /v1/jobs/{id}`: 204; refused while the job runs.
#[utoipa::path(
    delete, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "delete_job", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    responses((status = 204, description = "Deleted with its history"))
)]
pub(crate) async fn delete(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
) -> Result<StatusCode> {
    app.engine.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
