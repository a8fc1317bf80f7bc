//! Runs through their calls over the API, as a pull worker and as a push endpoint would drive them: steps
//! recorded once, a failing step retried with its attempts shown, sleeps resumed, waits resolved by a
//! matching event only, mid-lease step records, cancel and retry.

use std::time::Duration;

use axum::http::StatusCode;
use offload_engine::{AddressPolicy, EngineConfig};
use offload_server::ServerConfig;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::functions::started_app;
use crate::push::push_engine;

/// A pull function on queue `id` whose failed steps are retried after 10 ms.
fn pull_spec() -> Value {
    json!({
        "triggers": [{"event": "shop/order.paid"}],
        "retries": 4,
        "backoff": {"base": "10ms", "cap": "10ms", "jitter": 0},
    })
}

/// Starts one run of the function triggered by `shop/order.paid`; returns its id.
async fn start_run(app: &TestApp, data: Value) -> String {
    let sent = app
        .send_event(json!({"name": "shop/order.paid", "data": data}))
        .await;
    sent["runs"][0][0].as_str().expect("a run").to_owned()
}

#[tokio::test]
async fn a_pull_worker_runs_three_steps_and_the_failing_one_is_retried() {
    let app = started_app().await;
    app.register("checkout", pull_spec()).await;
    let run_id = start_run(&app, json!({"order": 1})).await;

    // Call 1: nothing recorded; the worker runs `charge`.
    let call = app.claim_call("checkout").await;
    assert_eq!(call["name"], "checkout");
    assert_eq!(call["payload"]["run_id"], run_id);
    assert_eq!(call["payload"]["steps"], json!({}));
    assert_eq!(call["payload"]["event"]["data"]["order"], 1);
    app.answer_call(
        &call,
        json!({"steps": [{"id": "charge", "op": "run", "data": {"charged": 100}}]}),
    )
    .await;

    // Calls 2 and 3: `receipt` fails, retryably; `charge` is replayed from its record.
    for _ in 0..2 {
        let call = app.claim_call("checkout").await;
        assert_eq!(
            call["payload"]["steps"]["charge"],
            json!({"data": {"charged": 100}})
        );
        assert!(call["payload"]["steps"].get("receipt").is_none());
        app.answer_call(
            &call,
            json!({"steps": [{"id": "receipt", "op": "run",
                "error": {"name": "MailDown", "message": "smtp refused", "retryable": true}}]}),
        )
        .await;
    }
    // Call 4: `receipt` succeeds; call 5: done.
    let call = app.claim_call("checkout").await;
    app.answer_call(
        &call,
        json!({"steps": [{"id": "receipt", "op": "run", "data": "sent"}]}),
    )
    .await;
    let call = app.claim_call("checkout").await;
    assert_eq!(call["payload"]["steps"]["receipt"], json!({"data": "sent"}));
    app.answer_call(&call, json!({"done": true, "output": {"ok": true}}))
        .await;

    let run = app.await_run_state(&run_id, "succeeded").await;
    assert_eq!(run["output"], json!({"ok": true}));
    assert_eq!(run["steps"], 2);
    assert!(run["ended_at"].is_string());
    let steps = app.get(&format!("/v1/runs/{run_id}/steps")).await.json();
    let steps = steps["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0]["id"], "charge");
    assert_eq!(steps[0]["kind"], "run");
    assert_eq!(steps[0]["failed_attempts"], json!([]));
    assert_eq!(steps[1]["id"], "receipt");
    assert_eq!(steps[1]["result"], json!({"data": "sent"}));
    let attempts = steps[1]["failed_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[1]["error"]["name"], "MailDown");

    // An ended run is not cancelled, nor retried.
    app.post(&format!("/v1/runs/{run_id}/cancel"), "")
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_state", None);
    app.post(&format!("/v1/runs/{run_id}/retry"), "")
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_state", None);
    let listed = app.get("/v1/runs?function=checkout&state=succeeded").await;
    assert_eq!(listed.json()["runs"][0]["id"], run_id.as_str());
}

#[tokio::test]
async fn a_sleep_resumes_after_its_time() {
    let app = started_app().await;
    app.register("nap", json!({"triggers": [{"event": "shop/order.paid"}]}))
        .await;
    let run_id = start_run(&app, json!({})).await;
    let call = app.claim_call("nap").await;
    let until = app.engine.now() + jiff::SignedDuration::from_millis(1200);
    app.answer_call(
        &call,
        json!({"steps": [{"id": "nap", "op": "sleep", "until": until.to_string()}]}),
    )
    .await;
    let run = app.run(&run_id).await;
    assert_eq!(run["state"], "sleeping", "{run}");
    assert!(run["wake_at"].is_string(), "{run}");
    // Nothing before the time; the call after it.
    let early = app
        .post("/v1/queues/nap/claim", r#"{"worker_id":"w"}"#)
        .await;
    assert_eq!(early.json()["jobs"], json!([]));
    let call = app.claim_call("nap").await;
    assert!(app.engine.now() >= until);
    assert_eq!(call["payload"]["steps"]["nap"], json!({"data": null}));
    app.answer_call(&call, json!({"done": true})).await;
    app.await_run_state(&run_id, "succeeded").await;
}

#[tokio::test]
async fn a_wait_is_resolved_by_a_matching_event_only() {
    let app = started_app().await;
    app.register(
        "upsell",
        json!({"triggers": [{"event": "shop/order.paid"}]}),
    )
    .await;
    let run_id = start_run(&app, json!({"user": 7})).await;
    let call = app.claim_call("upsell").await;
    app.answer_call(
        &call,
        json!({"steps": [{"id": "upgrade", "op": "wait_for_event", "event": "shop/user.upgraded",
            "match": "data.user", "timeout": "1h"}]}),
    )
    .await;
    assert_eq!(app.run(&run_id).await["state"], "waiting");

    // Another user's upgrade resolves nothing.
    app.send_event(json!({"name": "shop/user.upgraded", "data": {"user": 8}}))
        .await;
    assert_eq!(app.run(&run_id).await["state"], "waiting");
    let none = app
        .post("/v1/queues/upsell/claim", r#"{"worker_id":"w"}"#)
        .await;
    assert_eq!(none.json()["jobs"], json!([]));

    app.send_event(json!({"name": "shop/user.upgraded", "data": {"user": 7, "plan": "pro"}}))
        .await;
    let call = app.claim_call("upsell").await;
    let resolved = &call["payload"]["steps"]["upgrade"]["data"];
    assert_eq!(resolved["name"], "shop/user.upgraded");
    assert_eq!(resolved["data"]["plan"], "pro");
    app.answer_call(&call, json!({"done": true, "output": "upsold"}))
        .await;
    app.await_run_state(&run_id, "succeeded").await;
}

#[tokio::test]
async fn a_pull_worker_records_steps_within_its_lease() {
    let app = started_app().await;
    app.register("batch", pull_spec()).await;
    let run_id = start_run(&app, json!({})).await;
    let call = app.claim_call("batch").await;
    let job_id = call["id"].as_str().unwrap();
    let record = |token: Value| {
        json!({"job_id": job_id, "lease_token": token,
            "steps": [{"id": "one", "op": "run", "data": 1}]})
        .to_string()
    };
    let path = format!("/v1/runs/{run_id}/steps");
    let reply = app.post(&path, record(call["lease_token"].clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["steps"], 1);
    // A stale lease is refused; a retryable error must end the call; plans are not recorded here.
    app.post(&path, record(json!(uuid::Uuid::new_v4())))
        .await
        .assert_problem(StatusCode::CONFLICT, "lease_mismatch", Some("lease_token"));
    let retryable = json!({"job_id": job_id, "lease_token": call["lease_token"],
        "steps": [{"id": "two", "op": "run", "error": {"name": "E", "message": "m", "retryable": true}}]});
    app.post(&path, retryable.to_string()).await.assert_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("steps[0].error.retryable"),
    );
    let until = app.engine.now() + jiff::SignedDuration::from_hours(1);
    let sleep = json!({"job_id": job_id, "lease_token": call["lease_token"],
        "steps": [{"id": "two", "op": "sleep", "until": until.to_string()}]});
    app.post(&path, sleep.to_string()).await.assert_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("steps"),
    );
    // The call ends; the next one replays the recorded step.
    app.answer_call(
        &call,
        json!({"steps": [{"id": "two", "op": "run", "data": 2}]}),
    )
    .await;
    let call = app.claim_call("batch").await;
    assert_eq!(call["payload"]["steps"]["one"], json!({"data": 1}));
    assert_eq!(call["payload"]["steps"]["two"], json!({"data": 2}));
    app.answer_call(&call, json!({"done": true})).await;
    app.await_run_state(&run_id, "succeeded").await;
}

#[tokio::test]
async fn a_cancelled_run_is_retried_from_where_it_stopped() {
    let app = started_app().await;
    app.register("steady", pull_spec()).await;
    let run_id = start_run(&app, json!({})).await;
    let call = app.claim_call("steady").await;
    app.answer_call(
        &call,
        json!({"steps": [{"id": "first", "op": "run", "data": "kept"}]}),
    )
    .await;
    let reply = app.post(&format!("/v1/runs/{run_id}/cancel"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["state"], "cancelled");
    let none = app
        .post("/v1/queues/steady/claim", r#"{"worker_id":"w"}"#)
        .await;
    assert_eq!(none.json()["jobs"], json!([]));

    let reply = app.post(&format!("/v1/runs/{run_id}/retry"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["state"], "queued");
    let call = app.claim_call("steady").await;
    assert_eq!(call["payload"]["steps"]["first"], json!({"data": "kept"}));
    app.answer_call(&call, json!({"done": true})).await;
    app.await_run_state(&run_id, "succeeded").await;
    app.get("/v1/runs/nope")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
}

/// A push endpoint on 127.0.0.1 that runs the function `step a, step b, done` from each call request.
async fn push_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    async fn call(axum::Json(request): axum::Json<Value>) -> axum::Json<Value> {
        let steps = &request["steps"];
        let answer = if steps.get("a").is_none() {
            json!({"steps": [{"id": "a", "op": "run", "data": 1}]})
        } else if steps.get("b").is_none() {
            json!({"steps": [{"id": "b", "op": "run", "data": 2}]})
        } else {
            json!({"done": true, "output": {"sum": 3}})
        };
        axum::Json(answer)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/fn", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/fn", axum::routing::post(call));
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, task)
}

#[tokio::test]
async fn the_same_function_runs_over_push() {
    let engine = EngineConfig {
        stage_interval: Duration::from_millis(50),
        ..push_engine(Duration::from_millis(100), AddressPolicy::allow_private())
    };
    let app = TestApp::with_engine(ServerConfig::default(), engine).await;
    app.engine.start();
    let (url, endpoint) = push_endpoint().await;
    let view = app
        .register(
            "adder",
            json!({"triggers": [{"event": "shop/order.paid"}], "target": {"url": url}}),
        )
        .await;
    assert_eq!(view["target"]["url"], url.as_str());
    let run_id = start_run(&app, json!({})).await;
    let run = app.await_run_state(&run_id, "succeeded").await;
    assert_eq!(run["output"], json!({"sum": 3}));
    assert_eq!(run["steps"], 2);
    endpoint.abort();
}

#[tokio::test]
async fn a_wait_resolves_to_null_after_its_timeout() {
    let app = started_app().await;
    app.register(
        "patient",
        json!({"triggers": [{"event": "shop/order.paid"}]}),
    )
    .await;
    let run_id = start_run(&app, json!({"user": 1})).await;
    let call = app.claim_call("patient").await;
    app.answer_call(
        &call,
        json!({"steps": [{"id": "reply", "op": "wait_for_event", "event": "shop/user.replied",
            "timeout": "1s"}]}),
    )
    .await;
    assert_eq!(app.run(&run_id).await["state"], "waiting");
    // The wait-timeout service resolves it; the next call sees `null`.
    let call = app.claim_call("patient").await;
    assert_eq!(call["payload"]["steps"]["reply"], json!({"data": null}));
    app.answer_call(&call, json!({"done": true})).await;
    app.await_run_state(&run_id, "succeeded").await;
}

#[tokio::test]
async fn a_cancel_on_event_cancels_a_sleeping_run() {
    let app = started_app().await;
    app.register(
        "follow-up",
        json!({"triggers": [{"event": "shop/order.paid"}],
            "cancel_on": [{"event": "shop/order.refunded", "match": "data.order"}]}),
    )
    .await;
    let run_id = start_run(&app, json!({"order": 5})).await;
    let call = app.claim_call("follow-up").await;
    let until = app.engine.now() + jiff::SignedDuration::from_hours(72);
    app.answer_call(
        &call,
        json!({"steps": [{"id": "three-days", "op": "sleep", "until": until.to_string()}]}),
    )
    .await;
    assert_eq!(app.run(&run_id).await["state"], "sleeping");
    // Another order's refund changes nothing; this order's cancels the run.
    app.send_event(json!({"name": "shop/order.refunded", "data": {"order": 6}}))
        .await;
    assert_eq!(app.run(&run_id).await["state"], "sleeping");
    app.send_event(json!({"name": "shop/order.refunded", "data": {"order": 5}}))
        .await;
    let run = app.run(&run_id).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    assert!(run["ended_at"].is_string());
}
