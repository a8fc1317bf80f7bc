//! Flow control over HTTP: queue limits (`PATCH`/`GET /v1/queues/{queue}`) and their validation, a job's
//! group (stored, shown, filtered), why a job waits, and debounced enqueues; on SQLite, and on PostgreSQL when
//! its tests run.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use offload_core::Job;
use offload_engine::EngineConfig;
use offload_server::ServerConfig;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{TestApp, json_request};

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

async fn patch(app: &TestApp, queue: &str, body: Value) -> crate::common::Reply {
    app.call(json_request(
        Method::PATCH,
        &format!("/v1/queues/{queue}"),
        body.to_string(),
    ))
    .await
}

#[tokio::test]
async fn bad_limits_are_refused_with_the_field_named_and_nothing_stored() {
    for (store, app) in TestApp::each_store().await {
        eprintln!("on {store}");
        bad_limits_are_refused_with_the_field_named_and_nothing_stored_on(&app).await;
    }
}

async fn bad_limits_are_refused_with_the_field_named_and_nothing_stored_on(app: &TestApp) {
    let cases = [
        (json!({"concurrency": 0}), "concurrency"),
        (json!({"group_concurrency": 0}), "group_concurrency"),
        (
            json!({"throttle": {"limit": 0, "period": "1s"}}),
            "throttle.limit",
        ),
        (
            json!({"throttle": {"limit": 5, "period": 0}}),
            "throttle.period",
        ),
        (
            json!({"throttle": {"limit": 5, "period": "1s", "burst": 0}}),
            "throttle.burst",
        ),
        (
            json!({"throttle": {"limit": 5, "period": "366d"}}),
            "throttle.period",
        ),
    ];
    for (body, field) in cases {
        patch(app, "emails", body).await.assert_problem(
            UNPROCESSABLE,
            "invalid_field",
            Some(field),
        );
    }
    // Shapes serde refuses: a negative limit, a throttle without period, unknown fields.
    for body in [
        json!({"concurrency": -1}),
        json!({"throttle": {"limit": 5}}),
        json!({"throttle": {"limit": 5, "period": "1s", "per_tenant": true}}),
        json!({"max": 3}),
        json!([null, null]),
        json!({"concurrency": 2.5}),
    ] {
        let reply = patch(app, "emails", body.clone()).await;
        assert!(reply.status.is_client_error(), "{body}: {reply:?}");
    }
    // Nothing was stored: the queue does not exist.
    app.get("/v1/queues/emails")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    patch(app, "bad%20name", json!({"concurrency": 1}))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("queue"));
}

#[tokio::test]
async fn limits_are_set_kept_cleared_and_read_with_usage() {
    for (store, app) in TestApp::each_store().await {
        eprintln!("on {store}");
        limits_are_set_kept_cleared_and_read_with_usage_on(&app).await;
    }
}

async fn limits_are_set_kept_cleared_and_read_with_usage_on(app: &TestApp) {
    let reply = patch(
        app,
        "emails",
        json!({"concurrency": 10, "group_concurrency": 2,
               "throttle": {"limit": 100, "period": "1s", "burst": 5, "per_group": true}, "fair": true}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let queue = reply.json();
    assert_eq!(queue["name"], "emails");
    assert_eq!(
        queue["limits"],
        json!({"concurrency": 10, "group_concurrency": 2,
               "throttle": {"limit": 100, "period": 1000, "burst": 5, "per_group": true}, "fair": true})
    );
    assert_eq!(queue["usage"]["running"], 0, "{queue}");

    // Whole numbers written as floats are integers, as JSON Schema counts them.
    let reply = patch(
        app,
        "emails",
        json!({"concurrency": 10.0, "throttle": {"limit": 100.0, "period": 1000, "burst": 5.0, "per_group": true}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["limits"]["concurrency"], 10);

    // Absent fields keep their value, null clears.
    let reply = patch(app, "emails", json!({"concurrency": null, "fair": false})).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let limits = &reply.json()["limits"];
    assert!(limits.get("concurrency").is_none(), "{limits}");
    assert_eq!(limits["group_concurrency"], 2);
    assert_eq!(limits["fair"], false);

    // A running job shows in the usage of GET, its group among the top groups when it has waiting jobs.
    for _ in 0..3 {
        app.enqueue(r#"{"queue":"emails","group":"acme"}"#).await;
    }
    app.claim_one("emails").await;
    let reply = app.get("/v1/queues/emails").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let queue = reply.json();
    assert_eq!(queue["usage"]["running"], 1, "{queue}");
    assert_eq!(queue["usage"]["groups_running"], 1, "{queue}");
    assert_eq!(
        queue["usage"]["top_groups"][0],
        json!({"group": "acme", "available": 2, "running": 1}),
        "{queue}"
    );
    // Every limit removed: the queue lists without limits.
    let reply = patch(
        app,
        "emails",
        json!({"group_concurrency": null, "throttle": null}),
    )
    .await;
    assert!(reply.json().get("limits").is_none(), "{reply:?}");
}

#[tokio::test]
async fn a_job_waiting_for_its_group_says_so() {
    for (store, app) in TestApp::each_store().await {
        eprintln!("on {store}");
        a_job_waiting_for_its_group_says_so_on(&app).await;
    }
}

async fn a_job_waiting_for_its_group_says_so_on(app: &TestApp) {
    let reply = patch(app, "sync", json!({"group_concurrency": 1})).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let first = app
        .enqueue(r#"{"queue":"sync","group":"customer-1"}"#)
        .await;
    let second = app
        .enqueue(r#"{"queue":"sync","group":"customer-1"}"#)
        .await;
    assert_eq!(first.group.as_deref(), Some("customer-1"));
    let claimed = app.claim_one("sync").await;
    assert_eq!(claimed.id, first.id);
    // The second job of the group is held while the first runs; a claim finds nothing.
    let reply = app
        .post("/v1/queues/sync/claim", r#"{"worker_id":"w2"}"#)
        .await;
    assert_eq!(reply.json()["jobs"], json!([]), "{reply:?}");
    let held = app.job(second.id).await;
    assert_eq!(held.group.as_deref(), Some("customer-1"));
    let shown = serde_json::to_value(&held).unwrap();
    assert_eq!(
        shown["waiting_for"],
        json!({"reason": "group_concurrency"}),
        "{shown}"
    );
}

#[tokio::test]
async fn jobs_list_by_group_and_bad_groups_are_refused() {
    for (store, app) in TestApp::each_store().await {
        eprintln!("on {store}");
        jobs_list_by_group_and_bad_groups_are_refused_on(&app).await;
    }
}

async fn jobs_list_by_group_and_bad_groups_are_refused_on(app: &TestApp) {
    let a = app.enqueue(r#"{"queue":"q","group":"a"}"#).await;
    app.enqueue(r#"{"queue":"q","group":"b"}"#).await;
    app.enqueue(r#"{"queue":"q"}"#).await;
    assert_eq!(app.list_ids("group=a").await, vec![a.id.to_string()]);
    assert_eq!(app.list_ids("group=a&queue=q").await.len(), 1);
    assert_eq!(app.list_ids("queue=q").await.len(), 3);

    let long = "g".repeat(129);
    app.post("/v1/jobs", format!(r#"{{"queue":"q","group":"{long}"}}"#))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("group"));
    app.post("/v1/jobs", r#"{"queue":"q","group":""}"#)
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("group"));
    // 128 bytes of two-byte characters are 64 characters: accepted; 65 are refused.
    let ok = "é".repeat(64);
    app.enqueue(&format!(r#"{{"queue":"q","group":"{ok}"}}"#))
        .await;
    let over = "é".repeat(65);
    app.post("/v1/jobs", format!(r#"{{"queue":"q","group":"{over}"}}"#))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("group"));
    app.post(
        "/v1/jobs/batch",
        format!(r#"{{"jobs":[{{"queue":"q"}},{{"queue":"q","group":"{long}"}}]}}"#),
    )
    .await
    .assert_problem(UNPROCESSABLE, "invalid_field", Some("jobs[1].group"));
    app.get(&format!("/v1/jobs?group={long}"))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("group"));
    // Nothing of the refused requests was stored.
    assert_eq!(app.list_ids("queue=q").await.len(), 4);
}

#[tokio::test]
async fn debounced_enqueues_answer_the_waiting_job() {
    for (store, app) in TestApp::each_store().await.into_iter().rev() {
        eprintln!("on {store}");
        debounced_enqueues_answer_the_waiting_job_on(&app).await;
    }
}

async fn debounced_enqueues_answer_the_waiting_job_on(app: &TestApp) {
    let body = |n: u32| {
        format!(
            r#"{{"queue":"search","payload":{{"n":{n}}},"debounce":{{"key":"reindex","period":"1h","max_wait":"2h"}}}}"#
        )
    };
    let first = app.enqueue(&body(1)).await;
    assert_eq!(first.debounce_key.as_deref(), Some("reindex"));
    assert!(
        first.run_at > first.created_at,
        "a debounced job starts a period later"
    );
    let reply = app.post("/v1/jobs", body(2)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let answer = reply.json();
    assert_eq!(answer["debounced"], true, "{answer}");
    let job: Job = reply.parse();
    assert_eq!(job.id, first.id);
    assert_eq!(job.payload.get(), r#"{"n":2}"#);
    assert!(job.run_at >= first.run_at, "the start never moves earlier");
    assert_eq!(app.list_ids("queue=search").await.len(), 1);

    // In a batch, each entry says whether it was debounced.
    let reply = app
        .post(
            "/v1/jobs/batch",
            format!(r#"{{"jobs":[{},{{"queue":"search"}}]}}"#, body(3)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let jobs = reply.json()["jobs"].clone();
    assert_eq!(jobs[0]["id"], first.id.to_string());
    assert_eq!(jobs[0]["debounced"], true, "{jobs}");
    assert!(jobs[1].get("debounced").is_none(), "{jobs}");

    // Bad debounces name the field.
    for (debounce, field) in [
        (
            r#"{"key":"k","period":"1m","max_wait":"1s"}"#,
            "debounce.max_wait",
        ),
        (r#"{"key":"k","period":0}"#, "debounce.period"),
        (r#"{"key":"","period":"1s"}"#, "debounce.key"),
    ] {
        app.post(
            "/v1/jobs",
            format!(r#"{{"queue":"q","debounce":{debounce}}}"#),
        )
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    app.post(
        "/v1/jobs",
        r#"{"queue":"q","delay":"1s","debounce":{"key":"k","period":"1s"}}"#,
    )
    .await
    .assert_problem(UNPROCESSABLE, "invalid_field", Some("debounce"));
}

/// A server whose claimers' backstop poll is longer than any wait of these tests: a long poll that returns a
/// job was woken by the engine.
async fn without_poll() -> TestApp {
    let engine = EngineConfig {
        claim_poll: Duration::from_secs(120),
        ..EngineConfig::default()
    };
    TestApp::with_engine(ServerConfig::default(), engine).await
}

/// Starts a long-polling claim of `queue` (waiting up to 30 s) and returns once it waits.
async fn long_poll(app: &TestApp, queue: &str) -> tokio::task::JoinHandle<Value> {
    let seen = app.engine.signals().long_polls.count();
    let router = app.router.clone();
    let request = json_request(
        Method::POST,
        &format!("/v1/queues/{queue}/claim"),
        r#"{"worker_id":"w2","wait":"30s"}"#,
    );
    let handle = tokio::spawn(async move {
        let response = router.oneshot(request).await.expect("infallible");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&body).expect("JSON")
    });
    app.engine.signals().long_polls.past(seen).await;
    handle
}

#[tokio::test]
async fn a_job_that_ends_wakes_a_claimer_waiting_for_its_slot() {
    let app = without_poll().await;
    let reply = patch(&app, "sync", json!({"group_concurrency": 1})).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    app.enqueue(r#"{"queue":"sync","group":"c1"}"#).await;
    let second = app.enqueue(r#"{"queue":"sync","group":"c1"}"#).await;
    let first = app.claim_one("sync").await;
    let waiting = long_poll(&app, "sync").await;
    let reply = app
        .post(
            &format!("/v1/jobs/{}/complete", first.id),
            format!(r#"{{"lease_token":"{}"}}"#, first.lease_token),
        )
        .await;
    assert!(reply.status.is_success(), "{reply:?}");
    let claimed = waiting.await.unwrap();
    assert_eq!(claimed["jobs"][0]["id"], second.id.to_string(), "{claimed}");
}

#[tokio::test]
async fn a_throttled_claimer_tries_again_when_the_throttle_allows() {
    let app = without_poll().await;
    let reply = patch(
        &app,
        "mail",
        json!({"throttle": {"limit": 1, "period": "1s"}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    app.enqueue(r#"{"queue":"mail"}"#).await;
    let second = app.enqueue(r#"{"queue":"mail"}"#).await;
    app.claim_one("mail").await;
    let held = serde_json::to_value(app.job(second.id).await).unwrap();
    assert_eq!(held["waiting_for"]["reason"], "throttle", "{held}");
    let claimed = long_poll(&app, "mail").await.await.unwrap();
    assert_eq!(claimed["jobs"][0]["id"], second.id.to_string(), "{claimed}");
}
