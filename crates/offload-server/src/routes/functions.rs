//! Durable functions: register or replace one (`PUT /v1/functions/{id}`), list, read and remove them.
//!
//! Every definition is validated (triggers, filters, cron, queue, push target against the outbound address
//! policy) before anything is written, so a refused request stores nothing. A removed function starts no runs;
//! its runs keep going to their end.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use offload_core::DurationSpec;
use offload_core::function::definition::FunctionSpec;
use offload_core::function::names::validate_function_id;
use offload_core::{Backoff, Timestamp};
use offload_store::{FunctionListParams, FunctionRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::{Json, Query};
use crate::routes::page::{check_cursor, check_filter, next_cursor, page_limit};

/// Page size of `GET /v1/functions` when none is asked for.
const DEFAULT_PAGE: u32 = 100;

/// The `{id}` of a function route, validated like a function id.
#[derive(Debug, Clone)]
pub(crate) struct FunctionIdPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for FunctionIdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::invalid("id", "is not valid UTF-8"))?;
        validate_function_id(&id).map_err(|m| AppError::invalid("id", m))?;
        Ok(FunctionIdPath(id))
    }
}

/// A registered function: its definition as registered, with the values the server resolved (`queue`,
/// `retries`, `timeout`), the app that synced it and its times.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct FunctionView {
    /// Stable id.
    pub(crate) id: String,
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// What starts a run, as registered.
    #[schema(value_type = Vec<crate::openapi::functions::TriggerSpec>)]
    pub(crate) triggers: Value,
    /// Push endpoint of the calls, for a push function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<offload_core::push::Target>,
    /// Queue of the calls (pull workers claim them there).
    pub(crate) queue: String,
    /// Retries of a failed step or call.
    pub(crate) retries: u32,
    /// Delay between retries.
    pub(crate) backoff: Backoff,
    /// Lease of one call.
    pub(crate) timeout: DurationSpec,
    /// Events that cancel runs, as registered.
    #[schema(value_type = Vec<crate::openapi::functions::CancelOnSpec>)]
    pub(crate) cancel_on: Value,
    /// The app that registered it through `PUT /v1/apps/{app}` (`offload.toml` for the configuration file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) app: Option<String>,
    /// First registration.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: Timestamp,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) updated_at: Timestamp,
}

impl FunctionView {
    /// The view of a stored function.
    pub(crate) fn of(record: &FunctionRecord) -> Self {
        let f = &record.function;
        let target = match &f.runs_on {
            offload_core::function::definition::RunsOn::Push(t) => Some(t.clone()),
            offload_core::function::definition::RunsOn::Pull => None,
        };
        Self {
            id: f.id.clone(),
            name: f.name.clone(),
            triggers: record
                .spec
                .get("triggers")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
            target,
            queue: f.queue.clone(),
            retries: f.retries,
            backoff: f.backoff,
            timeout: DurationSpec(f.timeout),
            cancel_on: record
                .spec
                .get("cancel_on")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
            app: record.app.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// `GET /v1/functions`: a page of functions by id.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct FunctionList {
    /// The functions.
    pub(crate) functions: Vec<FunctionView>,
    /// Pass as `cursor` for the next page (only on a full page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next_cursor: Option<String>,
}

/// Query of `GET /v1/functions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListFunctionsQuery {
    /// Only functions synced by this app.
    app: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 100).
    limit: Option<u32>,
}

fn not_found(id: &str) -> AppError {
    AppError::NotFound(format!("function {id} not found"))
}

/// `PUT /v1/functions/{id}`: 201 with the new function, 200 with the replaced one.
#[utoipa::path(
    put, path = "/v1/functions/{id}", tag = "functions", operation_id = "put_function",
    params(("id" = String, Path, description = "Function id")),
    request_body = crate::openapi::functions::FunctionSpec,
    responses(
        (status = 201, description = "The function was registered", body = FunctionView),
        (status = 200, description = "The function was replaced", body = FunctionView),
    )
)]
pub(crate) async fn put(
    State(app): State<AppState>,
    FunctionIdPath(id): FunctionIdPath,
    Json(spec): Json<FunctionSpec>,
) -> Result<(StatusCode, axum::Json<FunctionView>)> {
    let put = app.engine.functions().put(spec, &id).await?;
    let status = if put.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(FunctionView::of(&put.record))))
}

/// `GET /v1/functions`: registered functions by id; a full page carries `next_cursor`.
#[utoipa::path(
    get, path = "/v1/functions", tag = "functions", operation_id = "list_functions", params(ListFunctionsQuery),
    responses((status = 200, description = "A page of functions by id", body = FunctionList))
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Query(query): Query<ListFunctionsQuery>,
) -> Result<axum::Json<FunctionList>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE)?;
    check_cursor(query.cursor.as_deref(), validate_function_id)?;
    check_filter("app", query.app.as_deref(), validate_function_id)?;
    let records = app
        .engine
        .functions()
        .list(FunctionListParams {
            app: query.app,
            after: query.cursor,
            limit,
        })
        .await?;
    let next_cursor = next_cursor(&records, limit, |r| r.function.id.clone());
    Ok(axum::Json(FunctionList {
        functions: records.iter().map(FunctionView::of).collect(),
        next_cursor,
    }))
}

/// `GET /v1/functions/{id}`: one registered function.
#[utoipa::path(
    get, path = "/v1/functions/{id}", tag = "functions", operation_id = "get_function",
    params(("id" = String, Path, description = "Function id")),
    responses((status = 200, description = "The function", body = FunctionView))
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    FunctionIdPath(id): FunctionIdPath,
) -> Result<axum::Json<FunctionView>> {
    match app.engine.functions().get(&id).await? {
        Some(record) => Ok(axum::Json(FunctionView::of(&record))),
        None => Err(not_found(&id)),
    }
}

/// `DELETE /v1/functions/{id}`: 204; the function starts no more runs, its runs keep going.
#[utoipa::path(
    delete, path = "/v1/functions/{id}", tag = "functions", operation_id = "delete_function",
    params(("id" = String, Path, description = "Function id")),
    responses((status = 204, description = "The function was removed; its runs keep going"))
)]
pub(crate) async fn delete(
    State(app): State<AppState>,
    FunctionIdPath(id): FunctionIdPath,
) -> Result<StatusCode> {
    app.engine.functions().delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
