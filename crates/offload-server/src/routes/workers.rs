//! Pull workers' routes: claim (with long poll), heartbeat, complete and fail, one at a time or in batches;
//! snooze and abort, one at a time.
//!
//! These are the hot path next to enqueue: each request is validated, then makes exactly one engine call
//! (no reads before or after), and results stay raw JSON from the body to the store. A stale lease token is
//! refused with `lease_mismatch` and changes nothing.

use axum::extract::State;
use offload_core::api::{
    AbortRequest, ClaimRequest, ClaimResponse, CompleteBatchRequest, CompleteRequest,
    FailBatchRequest, FailRequest, FinishBatchResponse, FinishResult, HeartbeatRequest,
    HeartbeatResponse, MAX_BATCH_JOBS, MAX_CLAIM_JOBS, MAX_CLAIM_WAIT_MS, MAX_ERROR_LEN,
    MAX_PROGRESS, MAX_PROGRESS_MESSAGE_LEN, SnoozeRequest, validate_worker_id,
};
use offload_core::spec::{Limits, ValidationError, ValidationKind};
use offload_core::state::{Failure, FailureCause};
use offload_core::{DurationSpec, JobId, JobState, LeaseToken, Progress};
use offload_store::{
    Finish, FinishItem, FinishOutcome, JobClaimParams, JobFinishParams, JobHeartbeatParams,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{JobIdPath, Json, QueuePath};

/// Answer of a single completion or failure: the job's state afterwards.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FinishedJob {
    /// The job.
    id: JobId,
    /// Its state afterwards.
    state: JobState,
}

/// `POST /v1/queues/{queue}/claim`: up to `max_jobs` jobs, long-polling up to `wait` when none is available.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/claim", tag = "workers", operation_id = "claim", params(("queue" = String, Path, description = "Queue name: 1 to 128 ASCII letters, digits and `-_.:`")),
    request_body = ClaimRequest,
    responses((status = 200, description = "The claimed jobs (possibly none)", body = ClaimResponse))
)]
pub(crate) async fn claim(
    State(app): State<AppState>,
    QueuePath(queue): QueuePath,
    Json(request): Json<ClaimRequest>,
) -> Result<axum::Json<ClaimResponse>> {
    let worker_id = request.worker_id;
    validate_worker_id(&worker_id).map_err(|m| AppError::invalid("worker_id", m))?;
    let max_jobs = request.max_jobs.unwrap_or(1);
    if !(1..=MAX_CLAIM_JOBS).contains(&max_jobs) {
        return Err(AppError::invalid(
            "max_jobs",
            format!("must be between 1 and {MAX_CLAIM_JOBS}"),
        ));
    }
    let wait = request.wait.unwrap_or_default();
    if wait.as_millis() > MAX_CLAIM_WAIT_MS {
        return Err(AppError::invalid(
            "wait",
            format!("must be at most {MAX_CLAIM_WAIT_MS} ms"),
        ));
    }
    let jobs = app
        .engine
        .claim(
            JobClaimParams {
                queue,
                worker_id,
                max_jobs,
            },
            wait.0,
        )
        .await?;
    Ok(axum::Json(ClaimResponse { jobs }))
}

/// `POST /v1/jobs/{id}/heartbeat`: extends the lease, records progress, tells whether a cancel was asked.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/heartbeat", tag = "workers", operation_id = "heartbeat", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    request_body = HeartbeatRequest,
    responses((status = 200, description = "The extended lease", body = HeartbeatResponse))
)]
pub(crate) async fn heartbeat(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Json(request): Json<HeartbeatRequest>,
) -> Result<axum::Json<HeartbeatResponse>> {
    let progress = match (request.progress, request.message) {
        (Some(percent), _) if percent > MAX_PROGRESS => {
            return Err(AppError::invalid(
                "progress",
                format!("must be between 0 and {MAX_PROGRESS}"),
            ));
        }
        (_, Some(message)) if message.chars().count() > MAX_PROGRESS_MESSAGE_LEN => {
            return Err(AppError::invalid(
                "message",
                format!("must be at most {MAX_PROGRESS_MESSAGE_LEN} characters"),
            ));
        }
        (None, Some(_)) => {
            return Err(AppError::invalid("message", "needs a `progress` alongside"));
        }
        (Some(percent), message) => Some(Progress { percent, message }),
        (None, None) => None,
    };
    let params = JobHeartbeatParams {
        id,
        lease_token: request.lease_token,
        progress,
    };
    Ok(axum::Json(app.engine.heartbeat(params).await?))
}

/// `POST /v1/jobs/{id}/complete`: the attempt succeeded, with an optional JSON result.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/complete", tag = "workers", operation_id = "complete", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    request_body = CompleteRequest,
    responses((status = 200, description = "The job's state afterwards", body = FinishedJob))
)]
pub(crate) async fn complete(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Json(request): Json<CompleteRequest>,
) -> Result<axum::Json<FinishedJob>> {
    check_result(&app.limits, request.result.as_deref())?;
    let finish = Finish::Complete {
        result: request.result,
    };
    finish_one(&app, id, request.lease_token, finish).await
}

/// `POST /v1/jobs/{id}/fail`: the attempt failed; the retry policy decides between retrying and dead.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/fail", tag = "workers", operation_id = "fail", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    request_body = FailRequest,
    responses((status = 200, description = "The job's state afterwards (retrying, available, dead or cancelled)", body = FinishedJob))
)]
pub(crate) async fn fail(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Json(request): Json<FailRequest>,
) -> Result<axum::Json<FinishedJob>> {
    let failure = failure(
        &app.limits,
        request.error,
        request.retry_after,
        request.retryable,
    )?;
    finish_one(&app, id, request.lease_token, Finish::Fail(failure)).await
}

/// `POST /v1/jobs/{id}/snooze`: run the job again after `delay` without using up an attempt.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/snooze", tag = "workers", operation_id = "snooze", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    request_body = SnoozeRequest,
    responses((status = 200, description = "The job's state afterwards (scheduled, available, or cancelled when a cancel was requested)", body = FinishedJob))
)]
pub(crate) async fn snooze(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Json(request): Json<SnoozeRequest>,
) -> Result<axum::Json<FinishedJob>> {
    if request.delay > app.limits.max_delay {
        return Err(AppError::invalid(
            "delay",
            format!("must be at most {}", app.limits.max_delay),
        ));
    }
    let finish = Finish::Snooze {
        delay: request.delay.0,
    };
    finish_one(&app, id, request.lease_token, finish).await
}

/// `POST /v1/jobs/{id}/abort`: the worker ends the job as cancelled, with no further attempt. An over-long
/// reason is cut to [`MAX_ERROR_LEN`], like a failure's error.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/abort", tag = "workers", operation_id = "abort", params(("id" = JobId, Path, description = "The job's id (a UUID)")),
    request_body = AbortRequest,
    responses((status = 200, description = "The job's state afterwards (cancelled)", body = FinishedJob))
)]
pub(crate) async fn abort(
    State(app): State<AppState>,
    JobIdPath(id): JobIdPath,
    Json(request): Json<AbortRequest>,
) -> Result<axum::Json<FinishedJob>> {
    let mut reason = request
        .reason
        .unwrap_or_else(|| "cancelled by the worker".to_owned());
    if reason.len() > MAX_ERROR_LEN {
        reason.truncate(reason.floor_char_boundary(MAX_ERROR_LEN));
    }
    finish_one(&app, id, request.lease_token, Finish::Cancel { reason }).await
}

/// `POST /v1/jobs/complete`: many completions in one commit, answered per item.
#[utoipa::path(
    post, path = "/v1/jobs/complete", tag = "workers", operation_id = "complete_batch",
    request_body = CompleteBatchRequest,
    responses((status = 200, description = "One answer per item, in order", body = FinishBatchResponse))
)]
pub(crate) async fn complete_batch(
    State(app): State<AppState>,
    Json(request): Json<CompleteBatchRequest>,
) -> Result<axum::Json<FinishBatchResponse>> {
    let items = batch_items(request.jobs, |item| {
        check_result(&app.limits, item.result.as_deref())?;
        Ok(FinishItem {
            id: item.id,
            lease_token: item.lease_token,
            finish: Finish::Complete {
                result: item.result,
            },
        })
    })?;
    finish_many(&app, items).await
}

/// `POST /v1/jobs/fail`: many failures in one commit, answered per item.
#[utoipa::path(
    post, path = "/v1/jobs/fail", tag = "workers", operation_id = "fail_batch",
    request_body = FailBatchRequest,
    responses((status = 200, description = "One answer per item, in order", body = FinishBatchResponse))
)]
pub(crate) async fn fail_batch(
    State(app): State<AppState>,
    Json(request): Json<FailBatchRequest>,
) -> Result<axum::Json<FinishBatchResponse>> {
    let items = batch_items(request.jobs, |item| {
        let failure = failure(&app.limits, item.error, item.retry_after, item.retryable)?;
        Ok(FinishItem {
            id: item.id,
            lease_token: item.lease_token,
            finish: Finish::Fail(failure),
        })
    })?;
    finish_many(&app, items).await
}

/// Checks a batch's size and turns each item into a finish, naming the item (`jobs[i]`) in any refusal.
fn batch_items<T>(
    jobs: Vec<T>,
    each: impl Fn(T) -> Result<FinishItem, ValidationError>,
) -> Result<Vec<FinishItem>> {
    check_batch_len(jobs.len())?;
    let items = jobs
        .into_iter()
        .enumerate()
        .map(|(i, item)| each(item).map_err(|e| e.within(&format!("jobs[{i}]"))))
        .collect::<Result<Vec<_>, ValidationError>>()?;
    Ok(items)
}

fn check_batch_len(count: usize) -> Result<()> {
    if count == 0 || count > MAX_BATCH_JOBS {
        return Err(AppError::invalid(
            "jobs",
            format!("must hold 1 to {MAX_BATCH_JOBS} items, not {count}"),
        ));
    }
    Ok(())
}

/// A result is held to the payload limit and the JSON rule (`offload_core::json_rule`).
fn check_result(limits: &Limits, result: Option<&RawValue>) -> Result<(), ValidationError> {
    match result {
        Some(result) if result.get().len() > limits.max_payload_bytes => Err(ValidationError {
            field: "result".to_owned(),
            message: format!(
                "is {} bytes; the limit is {} bytes",
                result.get().len(),
                limits.max_payload_bytes
            ),
            kind: ValidationKind::TooLarge,
        }),
        Some(result) => offload_core::json_rule::validate("result", result.get()),
        None => Ok(()),
    }
}

/// A worker's failure report. Over-long errors are cut to [`MAX_ERROR_LEN`], at a character boundary.
fn failure(
    limits: &Limits,
    mut error: String,
    retry_after: Option<DurationSpec>,
    retryable: Option<bool>,
) -> Result<Failure, ValidationError> {
    if let Some(delay) = retry_after
        && delay > limits.max_delay
    {
        return Err(ValidationError::invalid(
            "retry_after",
            format!("must be at most {}", limits.max_delay),
        ));
    }
    if error.len() > MAX_ERROR_LEN {
        error.truncate(error.floor_char_boundary(MAX_ERROR_LEN));
    }
    Ok(Failure {
        error,
        retry_after: retry_after.map(|d| d.0),
        retryable: retryable.unwrap_or(true),
        cause: FailureCause::Worker,
    })
}

async fn finish_one(
    app: &AppState,
    id: JobId,
    lease_token: LeaseToken,
    finish: Finish,
) -> Result<axum::Json<FinishedJob>> {
    let item = FinishItem {
        id,
        lease_token,
        finish,
    };
    let outcomes = app
        .engine
        .finish(JobFinishParams { items: vec![item] })
        .await?;
    match <[FinishOutcome; 1]>::try_from(outcomes) {
        Ok([Ok(finished)]) => Ok(axum::Json(FinishedJob {
            id: finished.id,
            state: finished.state,
        })),
        Ok([Err(e)]) => Err(e.into()),
        Err(all) => Err(AppError::Internal(format!(
            "the store answered {} outcomes for one item",
            all.len()
        ))),
    }
}

/// Applies the items in one engine call. Refusals (stale token, unknown job) are answered per item; a
/// server-side failure fails the request, so no 2xx ever reports a write that did not commit.
async fn finish_many(
    app: &AppState,
    items: Vec<FinishItem>,
) -> Result<axum::Json<FinishBatchResponse>> {
    let ids: Vec<JobId> = items.iter().map(|item| item.id).collect();
    let outcomes = app.engine.finish(JobFinishParams { items }).await?;
    if outcomes.len() != ids.len() {
        return Err(AppError::Internal(format!(
            "the store answered {} outcomes for {} items",
            outcomes.len(),
            ids.len()
        )));
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        jobs.push(match outcome {
            Ok(finished) => FinishResult {
                id,
                ok: true,
                state: Some(finished.state),
                code: None,
            },
            Err(e) => {
                let e = AppError::from(e);
                if e.is_server_error() {
                    return Err(e);
                }
                FinishResult {
                    id,
                    ok: false,
                    state: None,
                    code: Some(e.code().to_owned()),
                }
            }
        });
    }
    Ok(axum::Json(FinishBatchResponse { jobs }))
}
