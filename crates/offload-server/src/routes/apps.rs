//! App sync (`PUT /v1/apps/{app}`): an app registers its whole set of functions in one call.
//!
//! The set is validated whole before anything is written (a refusal names `functions[i].field`); then, in one
//! transaction, new functions are created, changed ones replaced, and the app's functions missing from the set
//! removed. Removed functions start no runs; their runs keep going to their end.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use offload_core::function::definition::FunctionSpec;
use offload_core::function::names::validate_function_id;
use offload_engine::functions::FILE_APP;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{AppError, Result};
use crate::extract::Json;

/// The `{app}` of an app route: named like a function id; the configuration file's app is reserved.
#[derive(Debug, Clone)]
pub(crate) struct AppPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for AppPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::invalid("app", "is not valid UTF-8"))?;
        validate_function_id(&name).map_err(|m| AppError::invalid("app", m))?;
        if name == FILE_APP {
            return Err(AppError::invalid(
                "app",
                format!("`{FILE_APP}` is the configuration file's app; change the file instead"),
            ));
        }
        Ok(AppPath(name))
    }
}

/// `PUT /v1/apps/{app}` body: the app's whole set of functions, each with its `id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppSyncRequest {
    functions: Vec<FunctionSpec>,
}

/// What an app sync did, by function id.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct AppSyncView {
    /// Registered for the first time.
    created: Vec<String>,
    /// Definition changed.
    updated: Vec<String>,
    /// Left as they were (nothing written).
    unchanged: Vec<String>,
    /// The app's functions missing from the set, now removed; their runs keep going.
    removed: Vec<String>,
}

/// Most functions in one app sync.
pub(crate) const MAX_APP_FUNCTIONS: usize = 1000;

/// `PUT /v1/apps/{app}`: 200 with what changed.
#[utoipa::path(
    put, path = "/v1/apps/{app}", tag = "functions", operation_id = "sync_app",
    params(("app" = String, Path, description = "App name")),
    request_body = crate::openapi::functions::AppSyncRequest,
    responses((status = 200, description = "The app's functions now match the set", body = AppSyncView))
)]
pub(crate) async fn sync(
    State(app): State<AppState>,
    AppPath(name): AppPath,
    Json(body): Json<AppSyncRequest>,
) -> Result<axum::Json<AppSyncView>> {
    if body.functions.len() > MAX_APP_FUNCTIONS {
        return Err(AppError::invalid(
            "functions",
            format!("must hold at most {MAX_APP_FUNCTIONS} functions"),
        ));
    }
    let synced = app
        .engine
        .functions()
        .sync_app(&name, body.functions)
        .await?;
    Ok(axum::Json(AppSyncView {
        created: synced.created,
        updated: synced.updated,
        unchanged: synced.unchanged,
        removed: synced.removed,
    }))
}
