//! Offload's HTTP API (`/v1`), dashboard (`/ui`), metrics and OpenAPI document: an axum [`Router`] over an
//! [`Engine`].
//!
//! [`router`] builds the whole API; [`serve`] serves it on a bound listener with [`ConnectionLimits`]. Every body size is bounded on purpose:
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
//! | `request_timeout` | 408 | the body did not arrive within the body-read timeout (the connection is then closed) |
//! | `idempotency_conflict` | 409 | the idempotency key is held by a job created from a different request |
//! | `lease_mismatch` | 409 | stale lease token: the attempt was rescued or already finished |
//! | `invalid_state` | 409 | the job's state does not allow the operation |
//! | `payload_too_large` | 413 | a payload or result over the limit, or a body over the route's limit |
//! | `uri_too_long` | 414 | a request line longer than 64 KiB (answered by the connection layer, then closed) |
//! | `unsupported_media_type` | 415 | a body without a JSON `Content-Type`, or with a `Content-Encoding` (e.g. gzip) |
//! | `invalid_field` | 422 | unknown, missing, mistyped or out-of-range field, query or path parameter; a JSON value nested deeper than 128 or with a lone surrogate (`offload_core::json_rule`) |
//! | `internal` | 500 | a bug or an unexpected database error (logged) |
//! | `shutting_down` | 503 | the server is draining and hands out no new jobs |
//! | `unavailable` | 503 | the store cannot be reached; nothing was written |
//!
//! Layout: `serve` (connections: deadlines, cap), `error` (the one error type), `extract` (body, query and
//! path extractors that reject with it),
//! `auth` (bearer tokens), `view` (the enqueue answer), and one module per group of routes; `openapi` (the
//! document at `/openapi.json`, built from the same route list as the router), [`metrics`] (`/metrics`) and
//! `ui` (the dashboard at `/ui`).

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use offload_core::spec::Limits;
use offload_engine::Engine;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod auth;
mod error;
mod extract;
pub mod metrics;
mod openapi;
mod routes;
mod serve;
mod ui;
mod view;

use routes::{apps, events, functions, health, jobs, logs, queues, runs, schedules, workers};
pub use serve::{ConnectionLimits, serve};

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
    /// The installed Prometheus recorder (see [`metrics::recorder`]), rendered at `/metrics` before the
    /// queue metrics read at scrape time. `None`: `/metrics` shows only the latter.
    pub metrics: Option<PrometheusHandle>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            api_tokens: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
            metrics: None,
        }
    }
}

/// What every handler shares: the engine and the limits. Cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    pub(crate) metrics: Option<PrometheusHandle>,
    pub(crate) sessions: Arc<ui::Sessions>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Builds the HTTP API on `engine`. The router carries its state; serve it with [`serve`].
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    let tokens = auth::Tokens::new(&config.api_tokens).map(Arc::new);
    let sessions = Arc::new(ui::Sessions::new(tokens.clone()));
    let state = AppState(Arc::new(Shared {
        engine,
        limits: config.limits.clone(),
        metrics: config.metrics.clone(),
        sessions: sessions.clone(),
    }));
    let (api, paths) = api_routes(&config).split_for_parts();
    // Serialized once: the document never changes while the server runs.
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&openapi::document(paths, &config.limits))
            .expect("the OpenAPI document serializes"),
    );

    let app = Router::new()
        .merge(api)
        .route(
            openapi::PATH,
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .route(metrics::PATH, get(metrics::render))
        .merge(ui::routes(sessions))
        // After every route is added: the 405 fallback is set on the routes that exist.
        .method_not_allowed_fallback(routes::method_not_allowed)
        .fallback(routes::not_found);
    let app = match tokens {
        Some(tokens) => app.layer(axum::middleware::from_fn_with_state(
            tokens,
            auth::require_bearer,
        )),
        None => app,
    };
    app.with_state(state)
}

/// The OpenAPI document of every API route, as `GET /openapi.json` of a server with the default limits serves
/// it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let config = ServerConfig::default();
    let (_, paths) = api_routes(&config).split_for_parts();
    openapi::document(paths, &config.limits)
}

/// Every documented route: the one list both the router and the OpenAPI document are built from. A new
/// route is a handler annotated with `#[utoipa::path]`, named here once.
fn api_routes(config: &ServerConfig) -> OpenApiRouter<AppState> {
    let single_body = config
        .limits
        .max_payload_bytes
        .saturating_add(SINGLE_BODY_OVERHEAD);
    let single = OpenApiRouter::new()
        .routes(routes!(jobs::enqueue, jobs::list))
        .routes(routes!(jobs::get, jobs::delete))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(workers::heartbeat))
        .routes(routes!(workers::complete))
        .routes(routes!(workers::fail))
        .routes(routes!(workers::snooze))
        .routes(routes!(workers::abort))
        .routes(routes!(queues::list))
        .routes(routes!(queues::get, queues::set_limits))
        .routes(routes!(workers::claim))
        .routes(routes!(queues::pause))
        .routes(routes!(queues::resume))
        .routes(routes!(schedules::list))
        .routes(routes!(schedules::get, schedules::put, schedules::delete))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(schedules::trigger))
        .routes(routes!(functions::list))
        .routes(routes!(functions::get, functions::put, functions::delete))
        .routes(routes!(apps::sync))
        .routes(routes!(events::list))
        .routes(routes!(events::get))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::retry))
        .layer(DefaultBodyLimit::max(single_body));
    // Static segments win over `{id}` in axum's matcher, so `/v1/jobs/complete` never reaches `/v1/jobs/{id}`.
    let batch = OpenApiRouter::new()
        .routes(routes!(jobs::enqueue_batch))
        .routes(routes!(workers::complete_batch))
        .routes(routes!(workers::fail_batch))
        .routes(routes!(events::send))
        .routes(routes!(runs::steps, runs::record))
        .routes(routes!(logs::append_job, logs::list_job))
        .routes(routes!(logs::append_run, logs::list_run))
        .layer(DefaultBodyLimit::max(config.max_body_bytes));
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .merge(single)
        .merge(batch)
}
