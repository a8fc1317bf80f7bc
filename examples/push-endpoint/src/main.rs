//! An axum endpoint that receives jobs Offload pushes to it. Every request's Standard Webhooks signature is
//! verified (with the secret Offload shows, `whsec_...`) before the handler runs; forged, altered or replayed
//! requests get `401`.
//!
//! ```sh
//! OFFLOAD_PUSH_SECRETS=whsec_... cargo run -p offload-example-push-endpoint
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::post;
use offload_sdk::push::{Delivery, Verifier};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Welcome {
    user: u64,
}

/// What the handlers share: the verifier (which the extractor takes from here) and the ids already handled.
#[derive(Clone)]
struct AppState {
    verifier: Verifier,
    seen: Arc<Mutex<HashSet<String>>>,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.verifier.clone()
    }
}

/// Any 2xx completes the job; a 5xx (or no answer) makes Offload retry it with the same `webhook-id`.
async fn welcome(
    axum::extract::State(state): axum::extract::State<AppState>,
    delivery: Delivery<Welcome>,
) -> StatusCode {
    let first_time = state
        .seen
        .lock()
        .map(|mut seen| seen.insert(delivery.id.clone()))
        .unwrap_or(true);
    if first_time {
        println!("welcome user {} ({})", delivery.payload.user, delivery.id);
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Several secrets, comma-separated, while the server's secret is being rotated.
    let secrets = std::env::var("OFFLOAD_PUSH_SECRETS")
        .map_err(|_| "set OFFLOAD_PUSH_SECRETS to the server's push secret(s), whsec_...")?;
    let verifier = Verifier::with_secrets(secrets.split(','))?;
    let state = AppState {
        verifier,
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/jobs/welcome", post(welcome))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
