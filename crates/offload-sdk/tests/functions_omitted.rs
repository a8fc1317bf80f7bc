//! A call whose recorded steps did not fit in the request (`steps_omitted`): the SDK fetches them from
//! `GET /v1/runs/{id}/steps` (here a small fake server on 127.0.0.1:0) before replaying.

use axum::Json;
use axum::extract::Path;
use axum::routing::get;
use offload_sdk::Client;
use offload_sdk::function::{BoxError, CallOutcome, Ctx, Function, spec};
use serde_json::{Value, json};

const RUN: &str = "0193a5c0-0000-7000-8000-000000000001";

async fn steps(Path(id): Path<String>) -> Json<Value> {
    assert_eq!(id, RUN);
    Json(json!({"steps": [
        {"id": "big", "kind": "run", "result": {"data": "x".repeat(1000)}, "failed_attempts": [],
         "started_at": "2026-12-03T10:00:00Z", "recorded_at": "2026-12-03T10:00:01Z"},
        {"id": "pending", "kind": "sleep", "failed_attempts": [], "started_at": "2026-12-03T10:00:01Z",
         "until": "2026-12-03T11:00:00Z"}
    ]}))
}

fn call() -> offload_sdk::function::Call {
    serde_json::from_value(json!({
        "run_id": RUN, "function_id": "f", "attempt": 1,
        "event": {"name": "app/x", "data": {}}, "events": [],
        "steps": {}, "steps_omitted": true,
    }))
    .unwrap()
}

#[tokio::test]
async fn omitted_steps_are_fetched_before_the_replay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/v1/runs/{id}/steps", get(steps));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let f = Function::new(spec("f", "app/x"), |ctx: Ctx| async move {
        let big: String = ctx
            .step
            .run("big", || async { Ok::<_, BoxError>(String::new()) })
            .await?;
        Ok(big.len())
    })
    .unwrap();
    let client = Client::new(&url).unwrap();
    assert_eq!(
        f.call_with(call(), Some(&client)).await,
        CallOutcome::Response(json!({"done": true, "output": 1000}))
    );
    // Without a client the call cannot replay: it fails, to be retried.
    assert!(matches!(
        f.call(call()).await,
        CallOutcome::Failed {
            retryable: true,
            ..
        }
    ));
}
