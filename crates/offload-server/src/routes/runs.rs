//! Function runs: list, read (with the event and every step with its attempts), cancel, retry, and the
//! mid-lease step records of pull workers (`POST /v1/runs/{id}/steps`).
//!
//! A run's state changes only through the store's one-transaction operations; these handlers validate and
//! show. A retry resumes a failed or cancelled run from its failed step (finished steps keep their results);
//! anything else is refused with `invalid_state`.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use offload_core::function::event::EventId;
use offload_core::function::protocol::{Answer, RanOutcome, StepError, StepResult};
use offload_core::function::run::{RunId, RunState};
use offload_core::{JobId, LeaseToken, Timestamp};
use offload_store::{RunListParams, RunRecord, StepAttempt, StepRecord};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{Json, Query};
use crate::routes::page::{check_filter, next_cursor, page_limit};
use offload_core::function::names::validate_function_id;

/// Page size of `GET /v1/runs` when none is asked for.
const DEFAULT_PAGE: u32 = 50;

/// The `{id}` of a run route: a run id (a UUID); anything else is not found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunIdPath(pub(crate) RunId);

impl<S: Send + Sync> FromRequestParts<S> for RunIdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let not_an_id = || {
            AppError::NotFound("the `id` in the path is not a run id (run ids are UUIDs)".into())
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_an_id())?;
        raw.parse().map(RunIdPath).map_err(|_| not_an_id())
    }
}

/// An error a step or a run ended with.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ErrorView {
    /// The error's class.
    pub(crate) name: String,
    /// What went wrong.
    pub(crate) message: String,
}

impl From<StepError> for ErrorView {
    fn from(e: StepError) -> Self {
        Self {
            name: e.name,
            message: e.message,
        }
    }
}

/// The run and step of a parent waiting on this run through `invoke`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct ParentView {
    /// The parent run.
    #[schema(value_type = uuid::Uuid)]
    pub(crate) run_id: RunId,
    /// Its `invoke` step.
    pub(crate) step: String,
}

/// A run.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct RunView {
    /// Its id.
    #[schema(value_type = uuid::Uuid)]
    pub(crate) id: RunId,
    /// The function it runs.
    pub(crate) function_id: String,
    /// `queued`, `running`, `sleeping`, `waiting`, `succeeded`, `failed` or `cancelled`.
    #[schema(value_type = String)]
    pub(crate) state: RunState,
    /// The event that started it.
    #[schema(value_type = uuid::Uuid)]
    pub(crate) event_id: EventId,
    /// That event as the code sees it: `{"name", "data", "id", "ts"}`.
    #[schema(value_type = Object)]
    pub(crate) event: Box<RawValue>,
    /// The run's output, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) output: Option<Box<RawValue>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<ErrorView>,
    /// For a run started by `invoke`: the parent run and step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<ParentView>,
    /// Steps recorded so far.
    pub(crate) steps: u32,
    /// When the run was created.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: Timestamp,
    /// When its first call started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) ended_at: Option<Timestamp>,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) updated_at: Timestamp,
    /// While sleeping or waiting: when the next call is due at the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) wake_at: Option<Timestamp>,
}

impl RunView {
    /// The view of a stored run.
    pub(crate) fn of(r: RunRecord) -> Self {
        Self {
            id: r.id,
            function_id: r.function_id,
            state: r.state,
            event_id: r.event_id,
            event: r.event.0,
            output: r.output.map(|o| o.0),
            error: r.error.map(ErrorView::from),
            parent: r.parent.map(|(run_id, step)| ParentView { run_id, step }),
            steps: r.steps,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            updated_at: r.updated_at,
            wake_at: r.wake_at,
        }
    }
}

/// `GET /v1/runs`: newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct RunList {
    /// The runs.
    pub(crate) runs: Vec<RunView>,
    /// Pass as `before` for the next page (only on a full page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub(crate) next_cursor: Option<RunId>,
}

/// A step's recorded result: `{"data": ...}` or `{"error": {"name", "message"}}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct StepResultView {
    /// The step's JSON result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) data: Option<Box<RawValue>>,
    /// The step's final error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<ErrorView>,
}

/// A failed attempt of a step.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct AttemptView {
    /// 1 for the first.
    pub(crate) attempt: u32,
    /// Its error.
    pub(crate) error: ErrorView,
    /// When it was reported.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) at: Timestamp,
}

/// One step of a run, recorded or pending.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct StepView {
    /// The step's id.
    pub(crate) id: String,
    /// `run`, `sleep`, `wait_for_event`, `send_event` or `invoke`.
    pub(crate) kind: String,
    /// Its result, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<StepResultView>,
    /// Failed attempts, oldest first.
    pub(crate) failed_attempts: Vec<AttemptView>,
    /// When the step was first seen.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) started_at: Timestamp,
    /// When its result was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) recorded_at: Option<Timestamp>,
    /// A pending sleep, wait or invoke: when it resolves at the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) until: Option<Timestamp>,
}

impl StepView {
    fn of(s: StepRecord) -> Self {
        let result = s.result.map(|r| match r {
            StepResult::Data(data) => StepResultView {
                data: Some(data.0),
                error: None,
            },
            StepResult::Error(e) => StepResultView {
                data: None,
                error: Some(e.into()),
            },
        });
        Self {
            id: s.id,
            kind: s.kind.as_str().to_owned(),
            result,
            failed_attempts: s
                .failed_attempts
                .into_iter()
                .map(|a: StepAttempt| AttemptView {
                    attempt: a.attempt,
                    error: a.error.into(),
                    at: a.at,
                })
                .collect(),
            started_at: s.started_at,
            recorded_at: s.recorded_at,
            until: s.until,
        }
    }
}

/// `GET /v1/runs/{id}/steps`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct StepList {
    /// The run's steps in the order they were first seen.
    pub(crate) steps: Vec<StepView>,
}

/// Query of `GET /v1/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListRunsQuery {
    /// Only runs of this function.
    function: Option<String>,
    /// Only runs in this state (`queued`, `running`, `sleeping`, `waiting`, `succeeded`, `failed`,
    /// `cancelled`).
    #[param(value_type = Option<String>)]
    state: Option<RunState>,
    /// Only runs this event started.
    #[param(value_type = Option<uuid::Uuid>)]
    event: Option<EventId>,
    /// Runs older than this run id (the `next_cursor` of the previous page).
    #[param(value_type = Option<uuid::Uuid>)]
    before: Option<RunId>,
    /// Page size (default 50).
    limit: Option<u32>,
}

/// `POST /v1/runs/{id}/steps` body: `run` steps a pull worker ran within its call's lease.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordStepsRequest {
    job_id: JobId,
    lease_token: LeaseToken,
    steps: Box<RawValue>,
}

fn not_found(id: RunId) -> AppError {
    AppError::NotFound(format!("run {id} not found"))
}

/// `GET /v1/runs`: runs newest first, filtered; a full page carries `next_cursor`.
#[utoipa::path(
    get, path = "/v1/runs", tag = "runs", operation_id = "list_runs", params(ListRunsQuery),
    responses((status = 200, description = "A page of runs, newest first", body = RunList))
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Query(query): Query<ListRunsQuery>,
) -> Result<axum::Json<RunList>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE)?;
    check_filter("function", query.function.as_deref(), validate_function_id)?;
    let records = app
        .engine
        .functions()
        .runs(RunListParams {
            function_id: query.function,
            state: query.state,
            event_id: query.event,
            before: query.before,
            limit,
        })
        .await?;
    let next_cursor = next_cursor(&records, limit, |r| r.id);
    Ok(axum::Json(RunList {
        runs: records.into_iter().map(RunView::of).collect(),
        next_cursor,
    }))
}

/// `GET /v1/runs/{id}`: one run.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs", operation_id = "get_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = RunView))
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
) -> Result<axum::Json<RunView>> {
    match app.engine.functions().run(id).await? {
        Some(run) => Ok(axum::Json(RunView::of(run))),
        None => Err(not_found(id)),
    }
}

/// `GET /v1/runs/{id}/steps`: the run's steps with their attempts, in the order first seen.
#[utoipa::path(
    get, path = "/v1/runs/{id}/steps", tag = "runs", operation_id = "list_run_steps",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run's steps", body = StepList))
)]
pub(crate) async fn steps(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
) -> Result<axum::Json<StepList>> {
    let steps = app.engine.functions().steps(id).await?;
    Ok(axum::Json(StepList {
        steps: steps.into_iter().map(StepView::of).collect(),
    }))
}

/// `POST /v1/runs/{id}/cancel`: the cancelled run (409 `invalid_state` once it has ended).
#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", tag = "runs", operation_id = "cancel_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The cancelled run", body = RunView))
)]
pub(crate) async fn cancel(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
) -> Result<axum::Json<RunView>> {
    Ok(axum::Json(RunView::of(
        app.engine.functions().cancel_run(id).await?,
    )))
}

/// `POST /v1/runs/{id}/retry`: the resumed run (409 `invalid_state` unless failed or cancelled).
#[utoipa::path(
    post, path = "/v1/runs/{id}/retry", tag = "runs", operation_id = "retry_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run, queued again from its failed step", body = RunView))
)]
pub(crate) async fn retry(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
) -> Result<axum::Json<RunView>> {
    Ok(axum::Json(RunView::of(
        app.engine.functions().retry_run(id).await?,
    )))
}

/// Most steps one `POST /v1/runs/{id}/steps` records (a run records at most 1,000 in all).
pub(crate) const MAX_RECORDED_STEPS_PER_REQUEST: usize = 1000;

/// `POST /v1/runs/{id}/steps`: records `run` steps a pull worker ran within its call's lease, before it
/// completes the call (a stale `lease_token` is refused with `lease_mismatch`); the run, with its new count.
#[utoipa::path(
    post, path = "/v1/runs/{id}/steps", tag = "runs", operation_id = "record_run_steps",
    params(("id" = String, Path, description = "Run id")),
    request_body = crate::openapi::functions::RecordStepsRequest,
    responses((status = 200, description = "The run, with the steps recorded", body = RunView))
)]
pub(crate) async fn record(
    State(app): State<AppState>,
    RunIdPath(id): RunIdPath,
    Json(body): Json<RecordStepsRequest>,
) -> Result<axum::Json<RunView>> {
    // The steps are call-response steps: parse them with the protocol's own rules.
    let text = format!("{{\"steps\":{}}}", body.steps.get());
    let answer = Answer::parse(&text, app.engine.now())
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    let Answer::Steps { ran, then: None } = answer else {
        return Err(AppError::invalid(
            "steps",
            "only `run` steps with `data` or `error` are recorded here; complete the call to plan the next step",
        ));
    };
    if ran.len() > MAX_RECORDED_STEPS_PER_REQUEST {
        return Err(AppError::invalid(
            "steps",
            format!("must hold at most {MAX_RECORDED_STEPS_PER_REQUEST} steps"),
        ));
    }
    for (i, step) in ran.iter().enumerate() {
        if let RanOutcome::Error {
            retryable: true, ..
        } = step.outcome
        {
            return Err(AppError::invalid(
                format!("steps[{i}].error.retryable"),
                "a retryable error ends the call: complete the call with it (or record it with `retryable: false`)",
            ));
        }
    }
    let run = app
        .engine
        .functions()
        .record_steps(id, body.job_id, body.lease_token, ran)
        .await?;
    Ok(axum::Json(RunView::of(run)))
}
