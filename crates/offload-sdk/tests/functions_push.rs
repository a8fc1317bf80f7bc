//! The push handler for durable functions: a signed call request in, the call response out; unsigned, unknown
//! and failing calls answered with the statuses that make Offload refuse, retry or end them.
#![cfg(feature = "axum")]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use offload_sdk::function::{BoxError, Ctx, Function, NonRetriable, push, spec};
use offload_sdk::push::Verifier;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn call(function: &str, steps: Value) -> String {
    json!({
        "run_id": "0193a5c0-0000-7000-8000-000000000001",
        "function_id": function,
        "attempt": 1,
        "event": {"name": "app/hello", "data": {"name": "ada"}},
        "events": [{"name": "app/hello", "data": {"name": "ada"}}],
        "steps": steps,
    })
    .to_string()
}

fn signed(path: &str, body: &str, secret: &str) -> Request<Body> {
    let sig = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign("msg_1", now(), body.as_bytes())
        .unwrap();
    Request::post(path)
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", now().to_string())
        .header("webhook-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn app() -> axum::Router {
    let hello = Function::new(spec("hello", "app/hello"), |ctx: Ctx| async move {
        let name = ctx.event.data["name"].as_str().unwrap_or("?").to_owned();
        let greeting: String = ctx
            .step
            .run("greet", || async move {
                Ok::<_, BoxError>(format!("hello {name}"))
            })
            .await?;
        Ok(greeting)
    })
    .unwrap();
    let broken = Function::new(spec("broken", "app/hello"), |ctx: Ctx| async move {
        if ctx.attempt > 0 {
            return Err::<(), BoxError>(NonRetriable::new("Config", "no key").into());
        }
        Ok(())
    })
    .unwrap();
    let flaky = Function::new(spec("flaky", "app/hello"), |_ctx: Ctx| async move {
        Err::<(), BoxError>("database unavailable".into())
    })
    .unwrap();
    axum::Router::new().nest(
        "/offload",
        push::router(Verifier::new(SECRET).unwrap(), [hello, broken, flaky], None),
    )
}

async fn answer(request: Request<Body>) -> (StatusCode, String) {
    let res = app().oneshot(request).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_signed_call_is_answered_with_the_call_response() {
    let (status, body) = answer(signed("/offload", &call("hello", json!({})), SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"steps": [{"id": "greet", "op": "run", "data": "hello ada"}]})
    );
    let recorded = call("hello", json!({"greet": {"data": "hello ada"}}));
    let (status, body) = answer(signed("/offload/any/path", &recorded, SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"done": true, "output": "hello ada"})
    );
}

#[tokio::test]
async fn unsigned_unknown_and_failing_calls_get_their_statuses() {
    let body = call("hello", json!({}));
    let wrong = "whsec_c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1zYW1l";
    assert_eq!(
        answer(signed("/offload", &body, wrong)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, text) = answer(signed("/offload", &call("nope", json!({})), SECRET)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("`nope`"), "{text}");
    let (status, text) = answer(signed("/offload", &call("broken", json!({})), SECRET)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    let (status, text) = answer(signed("/offload", &call("flaky", json!({})), SECRET)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("database unavailable"), "{text}");
}
