//! Offload's HTTP API (`/v1`): an axum [`Router`] over an [`Engine`].
//!
//! [`router`] builds the whole API; the binary binds and serves it. Every body size is bounded on purpose:
//! single-job routes accept the payload limit plus 64 KiB, batch routes [`ServerConfig::max_body_bytes`].
//!
//! Every failure, from a malformed body to a store outage, is answered as `application/problem+json`
//! (`offload_core::api::Problem`) with `type` `urn:offload:problem:{code}`, a stable `code`, a `detail` naming
//! the field or object concerned and, when one field is to blame, its JSON path in `field` (`jobs[3].queue`):
//!
//! | code | status | when |
//! | --- | --- | --- |
//! | `malformed_json` | 400 | the body is not JSON: syntax error, invalid UTF-8, truncated, unreadable |
//! | `unauthorized` | 401 | missing or unknown bearer token (with `WWW-Authenticate: Bearer`) |
//! | `not_found` | 404 | unknown job, schedule or route; a path `id` that is not a job id |
//! | `method_not_allowed` | 405 | the route exists, the method does not |
//! | `idempotency_conflict` | 409 | the idempotency key is held by a job created from a different request |
//! | `lease_mismatch` | 409 | stale lease token: the attempt was rescued or already finished |
//! | `invalid_state` | 409 | the job's state does not allow the operation |
//! | `payload_too_large` | 413 | a payload or result over the limit, or a body over the route's limit |
//! | `unsupported_media_type` | 415 | a body without a JSON `Content-Type` |
//! | `invalid_field` | 422 | unknown, missing, mistyped or out-of-range field, query or path parameter |
//! | `internal` | 500 | a bug or an unexpected database error (logged) |
//! | `shutting_down` | 503 | the server is draining and hands out no new jobs |
//! | `unavailable` | 503 | the store cannot be reached; nothing was written |
//!
//! Layout: `error` (the one error type), `extract` (body, query and path extractors that reject with it),
//! `auth` (bearer tokens), `view` (the enqueue answer), and one module per group of routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use offload_core::spec::Limits;
use offload_engine::Engine;

mod auth;
mod error;
mod extract;
mod routes;
mod view;

use routes::{health, jobs, queues, schedules, workers};

/// Extra room, beyond the payload limit, that single-job bodies may take for the other fields.
const SINGLE_BODY_OVERHEAD: usize = 64 * 1024;

/// How the API is served.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Limits applied to every enqueued job (payload size, delays, attempts, timeouts).
    pub limits: Limits,
    /// Bearer tokens accepted on `/v1` routes. Empty: no authentication (only safe on loopback). Empty
    /// strings never match.
    pub api_tokens: Vec<String>,
    /// Largest body of a batch request (`POST /v1/jobs/batch`, `/v1/jobs/complete`, `/v1/jobs/fail`); default
    /// 64 MiB.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            api_tokens: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What every handler shares: the engine and the limits. Cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Builds the HTTP API on `engine`. The router carries its state; serve it with `axum::serve`.
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    let single_body = config
        .limits
        .max_payload_bytes
        .saturating_add(SINGLE_BODY_OVERHEAD);
    let state = AppState(Arc::new(Shared {
        engine,
        limits: config.limits,
    }));

    let single = Router::new()
        .route("/v1/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/heartbeat", post(workers::heartbeat))
        .route("/v1/jobs/{id}/complete", post(workers::complete))
        .route("/v1/jobs/{id}/fail", post(workers::fail))
        .route("/v1/queues", get(queues::list))
        .route("/v1/queues/{queue}/claim", post(workers::claim))
        .route("/v1/queues/{queue}/pause", post(queues::pause))
        .route("/v1/queues/{queue}/resume", post(queues::resume))
        .route("/v1/schedules", get(schedules::list))
        .route(
            "/v1/schedules/{name}",
            get(schedules::get)
                .put(schedules::put)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/v1/schedules/{name}/trigger", post(schedules::trigger))
        .layer(DefaultBodyLimit::max(single_body));
    // Static segments win over `{id}` in axum's matcher, so `/v1/jobs/complete` never reaches `/v1/jobs/{id}`.
    let batch = Router::new()
        .route("/v1/jobs/batch", post(jobs::enqueue_batch))
        .route("/v1/jobs/complete", post(workers::complete_batch))
        .route("/v1/jobs/fail", post(workers::fail_batch))
        .layer(DefaultBodyLimit::max(config.max_body_bytes));

    let app = Router::new()
        .route("/healthz", get(health::healthz))
        .merge(single)
        .merge(batch)
        // After every route is added: the 405 fallback is set on the routes that exist.
        .method_not_allowed_fallback(routes::method_not_allowed)
        .fallback(routes::not_found);
    let app = match auth::Tokens::new(&config.api_tokens) {
        Some(tokens) => app.layer(axum::middleware::from_fn_with_state(
            Arc::new(tokens),
            auth::require_bearer,
        )),
        None => app,
    };
    app.with_state(state)
}
