//! `GET /healthz`: liveness and readiness for load balancers; never requires a token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use offload_core::api::Health;

use crate::AppState;

/// 200 `ok` when the store answers; 503 `unavailable` when it does not, `draining` while the server stops
/// (so load balancers send new work elsewhere).
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "healthz", security(()),
    responses(
        (status = 200, description = "The store answers", body = Health),
        (status = 503, description = "Draining, or the store does not answer", body = Health),
    )
)]
pub(crate) async fn healthz(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let (code, status) = if app.engine.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        match app.engine.ping().await {
            Ok(()) => (StatusCode::OK, "ok"),
            Err(error) => {
                tracing::warn!(%error, "health check: store ping failed");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        }
    };
    (
        code,
        Json(Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
    )
}
