//! Cron schedules: create or replace, list, read (with upcoming fire times and recent ticks), delete, pause,
//! resume and run now.
//!
//! Every body is validated into a schedule before anything is written (the expression, the time zone, that
//! it still fires, the job template, the jitter), so a refused request stores nothing.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use offload_core::cron::{
    ListSchedulesQuery, ScheduleInfo, ScheduleList, ScheduleSource, ScheduleSpec, Triggered,
    schedule::validate_schedule_name,
};
use offload_store::ScheduleListParams;

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{Json, Query, parse_json};
use crate::routes::page::{check_cursor, next_cursor, page_limit};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Upcoming fire times shown by `GET /v1/schedules/{name}` and after a change.
const UPCOMING: usize = 5;
/// Recent ticks shown by `GET /v1/schedules/{name}`.
const RECENT_TICKS: u32 = 20;
/// Page size of `GET /v1/schedules` when none is asked for.
const DEFAULT_PAGE: u32 = 100;

/// The `{name}` of a schedule route, validated like a schedule's name.
#[derive(Debug, Clone)]
pub(crate) struct NamePath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for NamePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::invalid("name", "is not valid UTF-8"))?;
        validate_schedule_name(&name).map_err(|m| AppError::invalid("name", m))?;
        Ok(NamePath(name))
    }
}

/// Holds a schedule body's `job.payload` to the JSON rule before the body is parsed into a tree, so a deep
/// payload is named (`job.payload`) rather than failing the whole parse. Bodies of another shape are left to
/// the full parse to refuse.
fn check_template_payload(body: &RawValue) -> Result<()> {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        job: Option<Job<'a>>,
    }
    #[derive(Deserialize)]
    struct Job<'a> {
        #[serde(borrow)]
        payload: Option<&'a RawValue>,
    }
    if let Ok(Body {
        job: Some(Job {
            payload: Some(payload),
        }),
    }) = serde_json::from_str::<Body<'_>>(body.get())
    {
        offload_core::json_rule::validate("job.payload", payload.get())?;
    }
    Ok(())
}

fn not_found(name: &str) -> AppError {
    AppError::NotFound(format!("schedule {name} not found"))
}

/// `PUT /v1/schedules/{name}`: 201 with the new schedule, 200 with the replaced one.
#[utoipa::path(
    put, path = "/v1/schedules/{name}", tag = "schedules", operation_id = "put_schedule", params(("name" = String, Path, description = "Schedule name")),
    request_body = ScheduleSpec,
    responses(
        (status = 201, description = "The schedule was created", body = ScheduleInfo),
        (status = 200, description = "The schedule was replaced", body = ScheduleInfo),
    )
)]
pub(crate) async fn put(
    State(app): State<AppState>,
    NamePath(name): NamePath,
    Json(body): Json<Box<RawValue>>,
) -> Result<(StatusCode, axum::Json<ScheduleInfo>)> {
    check_template_payload(&body)?;
    let spec: ScheduleSpec = parse_json(body.get().as_bytes())?;
    let schedule = spec.validate(Some(&name), &app.limits, app.engine.now())?;
    if schedule.job.target.is_some() {
        // What the outbound address policy can tell before any tick: push on, no refused literal address.
        let job = schedule
            .job
            .new_job(app.engine.now())
            .map_err(|e| e.within("job"))?;
        app.engine.check_push(&job).map_err(|e| e.within("job"))?;
    }
    let upserted = app
        .engine
        .put_schedule(schedule, ScheduleSource::Api)
        .await?;
    let status = if upserted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(upserted.record.info(UPCOMING))))
}

/// `GET /v1/schedules`: schedules in name order; a full page carries `next_cursor`.
#[utoipa::path(
    get, path = "/v1/schedules", tag = "schedules", operation_id = "list_schedules", params(ListSchedulesQuery),
    responses((status = 200, description = "A page of schedules in name order", body = ScheduleList))
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Query(query): Query<ListSchedulesQuery>,
) -> Result<axum::Json<ScheduleList>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE)?;
    check_cursor(query.cursor.as_deref(), validate_schedule_name)?;
    let records = app
        .engine
        .list_schedules(ScheduleListParams {
            after: query.cursor,
            source: None,
            limit,
        })
        .await?;
    let next_cursor = next_cursor(&records, limit, |r| r.schedule.name.clone());
    Ok(axum::Json(ScheduleList {
        schedules: records.iter().map(|r| r.info(0)).collect(),
        next_cursor,
    }))
}

/// `GET /v1/schedules/{name}`: the schedule with its next fire times and recent ticks (with their jobs).
#[utoipa::path(
    get, path = "/v1/schedules/{name}", tag = "schedules", operation_id = "get_schedule", params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule with its next fire times and recent ticks", body = ScheduleInfo))
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    NamePath(name): NamePath,
) -> Result<axum::Json<ScheduleInfo>> {
    match app.engine.get_schedule(&name, RECENT_TICKS).await? {
        Some(record) => Ok(axum::Json(record.info(UPCOMING))),
        None => Err(not_found(&name)),
    }
}

/// `DELETE /v1/schedules/{name}`: 204; the schedule's jobs stay.
#[utoipa::path(
    delete, path = "/v1/schedules/{name}", tag = "schedules", operation_id = "delete_schedule", params(("name" = String, Path, description = "Schedule name")),
    responses((status = 204, description = "The schedule was deleted; its jobs stay"))
)]
pub(crate) async fn delete(
    State(app): State<AppState>,
    NamePath(name): NamePath,
) -> Result<StatusCode> {
    app.engine.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/schedules/{name}/pause`: the schedule fires nothing until resumed.
#[utoipa::path(
    post, path = "/v1/schedules/{name}/pause", tag = "schedules", operation_id = "pause_schedule", params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The paused schedule", body = ScheduleInfo))
)]
pub(crate) async fn pause(
    State(app): State<AppState>,
    NamePath(name): NamePath,
) -> Result<axum::Json<ScheduleInfo>> {
    let record = app.engine.set_schedule_paused(&name, true).await?;
    Ok(axum::Json(record.info(UPCOMING)))
}

/// `POST /v1/schedules/{name}/resume`: fires again; ticks due while paused follow the catch-up policy.
#[utoipa::path(
    post, path = "/v1/schedules/{name}/resume", tag = "schedules", operation_id = "resume_schedule", params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The resumed schedule", body = ScheduleInfo))
)]
pub(crate) async fn resume(
    State(app): State<AppState>,
    NamePath(name): NamePath,
) -> Result<axum::Json<ScheduleInfo>> {
    let record = app.engine.set_schedule_paused(&name, false).await?;
    Ok(axum::Json(record.info(UPCOMING)))
}

/// `POST /v1/schedules/{name}/trigger`: 201 with the job created now, whatever the overlap policy and pause.
#[utoipa::path(
    post, path = "/v1/schedules/{name}/trigger", tag = "schedules", operation_id = "trigger_schedule", params(("name" = String, Path, description = "Schedule name")),
    responses((status = 201, description = "The job created now", body = Triggered))
)]
pub(crate) async fn trigger(
    State(app): State<AppState>,
    NamePath(name): NamePath,
) -> Result<(StatusCode, axum::Json<Triggered>)> {
    let triggered = app.engine.trigger_schedule(&name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Triggered {
            job_id: triggered.inserted.id,
            fire_at: triggered.tick.fire_at,
        }),
    ))
}
