//! Handlers, one module per group of routes, and the answers for unknown routes and methods.

use axum::http::{Method, Uri};

use crate::error::AppError;

pub(crate) mod apps;
pub(crate) mod events;
pub(crate) mod functions;
pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod page;
pub(crate) mod queues;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod workers;

/// Fallback for paths no route matches.
pub(crate) async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// Fallback for known paths with a method they do not accept (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
