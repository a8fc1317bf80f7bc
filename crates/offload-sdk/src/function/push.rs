//! Serving functions from a push endpoint (axum): Offload delivers each call as a signed request whose body is
//! the call request; the endpoint answers the call response with status 200.
//!
//! ```
//! use offload_sdk::function::{BoxError, Ctx, Function, push, spec};
//! use offload_sdk::push::Verifier;
//!
//! async fn hello(ctx: Ctx) -> Result<String, BoxError> {
//!     let name: String = ctx.step.run("name", || async { Ok::<_, BoxError>("world".to_owned()) }).await?;
//!     Ok(format!("hello {name}"))
//! }
//!
//! # fn app() -> Result<axum::Router, Box<dyn std::error::Error>> {
//! let function = Function::new(spec("hello", "app/hello"), hello)?;
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! // The function's `target` is this endpoint, e.g. https://app.example/offload/functions.
//! let app = axum::Router::new().nest("/offload/functions", push::router(verifier, [function], None));
//! # Ok(app) }
//! ```
//!
//! Answers: 200 with the call response; 500 for a failure another attempt may fix (Offload retries the call
//! with the function's backoff); 422 for a failure no retry can fix (the call dies, and the run fails); 503 for
//! a function this endpoint does not serve (retried, e.g. until a deploy reaches every instance); 401 for a
//! request that is not a verified Offload delivery.
//!
//! Invariant: a call is run only after its signature was verified.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{Call, CallOutcome, Function};
use crate::Client;
use crate::push::{Delivery, Verifier};

/// Largest call request accepted: a request carries every recorded step, up to the server's state limit
/// (16 MiB by default) plus the events.
pub const MAX_CALL_BYTES: usize = 24 * 1024 * 1024;

/// Bytes of `run` step results a push answer gathers before the call ends (the server reads at most 64 KiB
/// of an endpoint's answer); the rest of the code continues in the next call.
pub const ANSWER_BUDGET: usize = 32 * 1024;

/// What the push handler needs: the verifier, the functions by id, and optionally a client (to fetch a run's
/// steps when a call omitted them).
#[derive(Clone)]
pub struct PushState {
    verifier: Verifier,
    functions: Arc<HashMap<String, Function>>,
    client: Option<Client>,
}

impl PushState {
    /// The state of [`handle`].
    pub fn new(
        verifier: Verifier,
        functions: impl IntoIterator<Item = Function>,
        client: Option<Client>,
    ) -> Self {
        let functions = functions
            .into_iter()
            .map(|f| (f.id().to_owned(), f))
            .collect();
        Self {
            verifier,
            functions: Arc::new(functions),
            client,
        }
    }
}

impl FromRef<PushState> for Verifier {
    fn from_ref(state: &PushState) -> Self {
        state.verifier.clone()
    }
}

/// A router serving `functions` at its root (nest it where the functions' `target` points; any path below
/// is served too): one endpoint for all of them, dispatching on the call's `function_id`.
pub fn router(
    verifier: Verifier,
    functions: impl IntoIterator<Item = Function>,
    client: Option<Client>,
) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/{*rest}", post(handle))
        .layer(DefaultBodyLimit::max(MAX_CALL_BYTES))
        .with_state(PushState::new(verifier, functions, client))
}

/// The handler behind [`router`], for routers of your own (with [`PushState`] as their state).
pub async fn handle(State(state): State<PushState>, delivery: Delivery<Call>) -> Response {
    let call = delivery.payload;
    let Some(function) = state.functions.get(&call.function_id) else {
        let message = format!(
            "this endpoint does not serve function `{}`",
            call.function_id
        );
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    };
    match function
        .call_within(call, state.client.as_ref(), ANSWER_BUDGET)
        .await
    {
        CallOutcome::Response(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        CallOutcome::Failed { message, retryable } => {
            let status = if retryable {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, message).into_response()
        }
    }
}
