//! Events: send one or a batch (`POST /v1/events`), list and read them with the runs each started.
//!
//! A batch is validated whole (names, `data` objects within the size limit and the JSON rule, ids), then
//! stored and fanned out in one transaction: runs started, waits resolved, runs cancelled by `cancel_on`.
//! All or nothing. An event whose `id` was seen within retention is a duplicate: it is answered with the
//! first event's id and runs, and fans out nothing again.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use offload_core::Timestamp;
use offload_core::function::event::{EventId, EventRequest};
use offload_core::function::names::validate_event_name;
use offload_core::function::run::RunId;
use offload_engine::EngineError;
use offload_store::fanout::SkipReason;
use offload_store::{EventListParams, EventRecord};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{Json, Query, parse_json};
use crate::routes::page::{check_filter, next_cursor, page_limit};

/// Page size of `GET /v1/events` when none is asked for.
const DEFAULT_PAGE: u32 = 50;

/// The `{id}` of an event route: a server event id (a UUID); anything else is not found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventIdPath(pub(crate) EventId);

impl<S: Send + Sync> FromRequestParts<S> for EventIdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let not_an_id = || {
            AppError::NotFound(
                "the `id` in the path is not an event id (event ids are UUIDs)".into(),
            )
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_an_id())?;
        raw.parse().map(EventIdPath).map_err(|_| not_an_id())
    }
}

/// `{"events": [...]}`: several events, all or nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBatch {
    events: Vec<EventRequest>,
}

/// What `POST /v1/events` did, in request order.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct EventsSent {
    /// Each event's id (for a duplicate: the first event's).
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub(crate) ids: Vec<EventId>,
    /// The runs each event started (for a duplicate: the runs the first event started).
    #[schema(value_type = Vec<Vec<uuid::Uuid>>)]
    pub(crate) runs: Vec<Vec<RunId>>,
}

/// A stored event, with the runs it started.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    /// The server's id.
    #[schema(value_type = uuid::Uuid)]
    pub(crate) id: EventId,
    /// Its name.
    pub(crate) name: String,
    /// Its data (a JSON object).
    #[schema(value_type = Object)]
    pub(crate) data: Box<RawValue>,
    /// The sender's de-duplication id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    /// When it happened (the sender's `ts`, else when received).
    #[schema(value_type = String, format = DateTime)]
    pub(crate) ts: Timestamp,
    /// When the server stored it.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) received_at: Timestamp,
    /// Runs it started.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub(crate) runs: Vec<RunId>,
    /// Functions it triggered but started no run of, and why (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) skipped: Vec<SkippedView>,
}

/// A function an event triggered but started no run of.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct SkippedView {
    /// The function.
    pub(crate) function_id: String,
    /// Why: its `rate_limit` was reached, or a run of its `singleton` key was live (`mode: skip`).
    pub(crate) reason: SkipReasonView,
}

/// Why an event started no run of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SkipReasonView {
    /// The function's `rate_limit` was reached.
    RateLimit,
    /// A run of the function's singleton key was live.
    Singleton,
}

impl EventView {
    fn of(record: EventRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            data: record.data.0,
            user_id: record.user_id,
            ts: record.ts,
            received_at: record.received_at,
            runs: record.runs,
            skipped: record
                .skipped
                .into_iter()
                .map(|s| SkippedView {
                    function_id: s.function_id,
                    reason: match s.reason {
                        SkipReason::RateLimit => SkipReasonView::RateLimit,
                        SkipReason::Singleton => SkipReasonView::Singleton,
                    },
                })
                .collect(),
        }
    }
}

/// `GET /v1/events`: newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct EventList {
    /// The events.
    pub(crate) events: Vec<EventView>,
    /// Pass as `before` for the next page (only on a full page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub(crate) next_cursor: Option<EventId>,
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListEventsQuery {
    /// Only events of this name.
    name: Option<String>,
    /// Events older than this event id (the `next_cursor` of the previous page).
    #[param(value_type = Option<uuid::Uuid>)]
    before: Option<EventId>,
    /// Page size (default 50).
    limit: Option<u32>,
}

/// The events of a body: `{"events": [...]}` (then `true`) or one event. The JSON rule is checked on each `data`.
fn events_of(body: &RawValue) -> Result<(Vec<EventRequest>, bool)> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        events: Option<&'a RawValue>,
    }
    let batch = matches!(
        serde_json::from_str::<Probe<'_>>(body.get()),
        Ok(Probe { events: Some(_) })
    );
    let (events, prefix) = if batch {
        (
            parse_json::<EventBatch>(body.get().as_bytes())?.events,
            "events",
        )
    } else {
        (vec![parse_json::<EventRequest>(body.get().as_bytes())?], "")
    };
    for (i, event) in events.iter().enumerate() {
        if let Some(data) = &event.data {
            let field = if batch {
                format!("{prefix}[{i}].data")
            } else {
                "data".to_owned()
            };
            offload_core::json_rule::validate(&field, data.get())?;
        }
    }
    Ok((events, batch))
}

/// `POST /v1/events`: 201 with each event's id and the runs it started; 200 when every event was a duplicate.
#[utoipa::path(
    post, path = "/v1/events", tag = "events", operation_id = "send_events",
    request_body = crate::openapi::functions::EventsRequest,
    responses(
        (status = 201, description = "Stored and fanned out", body = EventsSent),
        (status = 200, description = "Every event was a duplicate: the first events' ids and runs", body = EventsSent),
    )
)]
pub(crate) async fn send(
    State(app): State<AppState>,
    Json(body): Json<Box<RawValue>>,
) -> Result<(StatusCode, axum::Json<EventsSent>)> {
    let (events, batch) = events_of(&body)?;
    let report = match app.engine.functions().send_events(events).await {
        Ok(report) => report,
        // One event sent alone: its refusals name its own fields (`name`, not `events[0].name`).
        Err(EngineError::Invalid(mut e)) if !batch => {
            if let Some(field) = e.field.strip_prefix("events[0].") {
                e.field = field.to_owned();
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let status = if report.events.iter().all(|e| e.duplicate) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let (ids, runs) = report.events.into_iter().map(|e| (e.id, e.runs)).unzip();
    Ok((status, axum::Json(EventsSent { ids, runs })))
}

/// `GET /v1/events`: stored events, newest first; a full page carries `next_cursor`.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "list_events", params(ListEventsQuery),
    responses((status = 200, description = "A page of events, newest first", body = EventList))
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Query(query): Query<ListEventsQuery>,
) -> Result<axum::Json<EventList>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE)?;
    check_filter("name", query.name.as_deref(), validate_event_name)?;
    let records = app
        .engine
        .functions()
        .events(EventListParams {
            name: query.name,
            before: query.before,
            limit,
        })
        .await?;
    let next_cursor = next_cursor(&records, limit, |r| r.id);
    Ok(axum::Json(EventList {
        events: records.into_iter().map(EventView::of).collect(),
        next_cursor,
    }))
}

/// `GET /v1/events/{id}`: one event with the runs it started.
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events", operation_id = "get_event",
    params(("id" = String, Path, description = "Event id (the server's)")),
    responses((status = 200, description = "The event", body = EventView))
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    EventIdPath(id): EventIdPath,
) -> Result<axum::Json<EventView>> {
    match app.engine.functions().event(id).await? {
        Some(record) => Ok(axum::Json(EventView::of(record))),
        None => Err(AppError::NotFound(format!("event {id} not found"))),
    }
}
