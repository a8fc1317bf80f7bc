//! `POST /v1/jobs` and `POST /v1/jobs/batch`: the happy paths, idempotency, and every class of bad input.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use offload_core::spec::Limits;
use offload_core::{Job, JobState};
use offload_server::ServerConfig;

use crate::common::TestApp;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

#[tokio::test]
async fn enqueue_answers_the_stored_job_without_rereading() {
    let app = TestApp::new().await;
    let body = r#"{"queue":"emails","name":"welcome","payload":{"to": "a@example.com", "n": [1,2]},
                   "priority":5,"max_attempts":3,"timeout":"30s","tags":{"tenant":"t1"}}"#;
    let reply = app.post("/v1/jobs", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let created: Job = reply.parse();
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("/v1/jobs/{}", created.id)
    );
    assert_eq!(created.state, JobState::Available);
    assert_eq!(
        created.payload.get(),
        r#"{"to": "a@example.com", "n": [1,2]}"#,
        "payload kept byte for byte"
    );
    assert_eq!(
        (created.priority, created.attempt, created.max_attempts),
        (5, 0, 3)
    );
    assert_eq!(created.timeout.as_millis(), 30_000);

    // The answer is what GET shows, apart from the attempt history GET adds. Times are compared at the
    // store's precision (microseconds).
    let stored = app.job(created.id).await;
    assert_eq!(stored.attempts.as_deref(), Some(&[][..]));
    let in_micros = |t: offload_core::Timestamp| t.as_microsecond();
    assert_eq!(in_micros(created.run_at), in_micros(stored.run_at));
    assert_eq!(in_micros(created.created_at), in_micros(stored.created_at));
    let comparable = |job: &Job| {
        let mut value = serde_json::to_value(job).unwrap();
        let object = value.as_object_mut().unwrap();
        for field in ["attempts", "run_at", "created_at"] {
            object.remove(field);
        }
        value
    };
    assert_eq!(comparable(&created), comparable(&stored));
    assert_eq!(
        reply.json().as_object().unwrap().len(),
        serde_json::to_value(&stored)
            .unwrap()
            .as_object()
            .unwrap()
            .len()
            - 1
    );
}

#[tokio::test]
async fn minimal_and_delayed_jobs() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"q"}"#).await;
    assert_eq!(job.payload.get(), "null");
    assert_eq!((job.max_attempts, job.timeout.as_millis()), (25, 300_000));

    let delayed = app.enqueue(r#"{"queue":"q","delay":"1h"}"#).await;
    assert_eq!(delayed.state, JobState::Scheduled);
    assert_eq!(
        delayed.run_at.duration_since(delayed.created_at).as_secs(),
        3600
    );
    let at_ms = app.enqueue(r#"{"queue":"q","delay":60000}"#).await;
    assert_eq!(at_ms.run_at.duration_since(at_ms.created_at).as_secs(), 60);

    let run_at = app
        .enqueue(r#"{"queue":"q","run_at":"2000-01-01T00:00:00Z"}"#)
        .await;
    assert_eq!(run_at.state, JobState::Available, "a past run_at means now");
}

#[tokio::test]
async fn idempotent_replay_returns_the_first_job_and_conflicts_are_refused() {
    let app = TestApp::new().await;
    let body = r#"{"queue":"q","payload":{"a":1,"b":2},"idempotency_key":"order-7"}"#;
    let first = app.enqueue(body).await;

    // Same request (payload formatted differently): 200 with the first job.
    let replay = app
        .post(
            "/v1/jobs",
            r#"{"queue":"q","payload":{ "b":2, "a":1 },"idempotency_key":"order-7"}"#,
        )
        .await;
    assert_eq!(replay.status, StatusCode::OK, "{replay:?}");
    assert_eq!(replay.parse::<Job>().id, first.id);

    // The key in the header is the same key.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "order-7")
        .body(Body::from(r#"{"queue":"q","payload":{"a":1,"b":2}}"#))
        .unwrap();
    let replay = app.call(request).await;
    assert_eq!(replay.status, StatusCode::OK, "{replay:?}");
    assert_eq!(replay.parse::<Job>().id, first.id);

    // Same key, different request: 409, and nothing new is stored.
    let conflict = app
        .post(
            "/v1/jobs",
            r#"{"queue":"q","payload":{"a":2},"idempotency_key":"order-7"}"#,
        )
        .await;
    let problem = conflict.assert_problem(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        Some("idempotency_key"),
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&first.id.to_string()),
        "{problem}"
    );
    assert_eq!(app.list_ids("queue=q").await, vec![first.id.to_string()]);

    // Header and body keys must agree.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "other")
        .body(Body::from(r#"{"queue":"q","idempotency_key":"order-7"}"#))
        .unwrap();
    app.call(request)
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("idempotency_key"));
}

#[tokio::test]
async fn every_bad_field_is_named() {
    let app = TestApp::new().await;
    let long_queue = format!(r#"{{"queue":"{}"}}"#, "q".repeat(129));
    let cases: Vec<(String, &str)> = [
        (r#"{"queue":"q","qeue":"x"}"#, "qeue"),
        (r#"{"queue":""}"#, "queue"),
        (r#"{"queue":"has space"}"#, "queue"),
        (r#"{"queue":"slash/es"}"#, "queue"),
        (long_queue.as_str(), "queue"),
        (r#"{"name":"x"}"#, "queue"),
        (r#"{"queue":7}"#, "queue"),
        (r#"{"queue":"q","delay":"-5s"}"#, "delay"),
        (r#"{"queue":"q","delay":-5}"#, "delay"),
        (r#"{"queue":"q","delay":"400d"}"#, "delay"),
        (r#"{"queue":"q","delay":1e300}"#, "delay"),
        (r#"{"queue":"q","delay":99999999999999999999}"#, "delay"),
        (r#"{"queue":"q","delay":"soon"}"#, "delay"),
        (r#"{"queue":"q","delay":1.5}"#, "delay"),
        (r#"{"queue":"q","delay":true}"#, "delay"),
        (r#"{"queue":"q","max_attempts":0}"#, "max_attempts"),
        (r#"{"queue":"q","max_attempts":1001}"#, "max_attempts"),
        (
            r#"{"queue":"q","max_attempts":99999999999}"#,
            "max_attempts",
        ),
        (r#"{"queue":"q","max_attempts":-1}"#, "max_attempts"),
        (
            r#"{"queue":"q","run_at":"2026-01-01T00:00:00Z","delay":"5s"}"#,
            "delay",
        ),
        (r#"{"queue":"q","run_at":"tomorrow"}"#, "run_at"),
        (r#"{"queue":"q","run_at":"9999-01-01T00:00:00Z"}"#, "run_at"),
        (r#"{"queue":"q","priority":"high"}"#, "priority"),
        (r#"{"queue":"q","priority":4294967296}"#, "priority"),
        (r#"{"queue":"q","timeout":"1ms"}"#, "timeout"),
        (r#"{"queue":"q","backoff":{"jitter":2}}"#, "backoff.jitter"),
        (
            r#"{"queue":"q","backoff":{"base":"1s","cpa":"1m"}}"#,
            "backoff.cpa",
        ),
        (r#"{"queue":"q","tags":{"k":1}}"#, "tags.k"),
        (r#"{"queue":"q","idempotency_key":""}"#, "idempotency_key"),
    ]
    .into_iter()
    .map(|(body, field)| (body.to_owned(), field))
    .collect();
    for (body, field) in cases {
        let reply = app.post("/v1/jobs", body.clone()).await;
        assert_eq!(reply.status, UNPROCESSABLE, "{body}: {reply:?}");
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    assert!(app.list_ids("").await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::new().await;
    let bodies: [&[u8]; 6] = [
        b"{\"queue\":",
        b"",
        b"{\"queue\":\"q\"} trailing",
        b"{'queue':'q'}",
        b"{\"queue\":\"q\xff\"}",
        b"{\"queue\":\"q\",\"payload\":\"\xc3\x28\"}",
    ];
    for body in bodies {
        let reply = app.post("/v1/jobs", body.to_vec()).await;
        reply.assert_problem(StatusCode::BAD_REQUEST, "malformed_json", None);
    }
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let app = TestApp::new().await;
    let without = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .body(Body::from(r#"{"queue":"q"}"#))
        .unwrap();
    app.call(without).await.assert_problem(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    );
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/jobs")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(r#"{"queue":"q"}"#))
            .unwrap();
        app.call(request).await.assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
    }
    let charset = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(r#"{"queue":"q"}"#))
        .unwrap();
    assert_eq!(app.call(charset).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn payload_and_body_limits_are_413() {
    let limits = Limits {
        max_payload_bytes: 100,
        ..Limits::default()
    };
    let app = TestApp::with_config(ServerConfig {
        limits,
        max_body_bytes: 4096,
        ..ServerConfig::default()
    })
    .await;

    let at_limit = format!(r#"{{"queue":"q","payload":"{}"}}"#, "x".repeat(98));
    app.enqueue(&at_limit).await;
    let over = format!(r#"{{"queue":"q","payload":"{}"}}"#, "x".repeat(99));
    app.post("/v1/jobs", over.clone()).await.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        Some("payload"),
    );

    // The body limit of single-job routes is the payload limit plus 64 KiB.
    let huge = format!(r#"{{"queue":"q","name":"{}"}}"#, "n".repeat(70 * 1024));
    app.post("/v1/jobs", huge).await.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );

    // Batches: each payload is held to the limit, the body to max_body_bytes.
    let batch = format!(r#"{{"jobs":[{{"queue":"q"}},{over}]}}"#);
    app.post("/v1/jobs/batch", batch).await.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        Some("jobs[1].payload"),
    );
    let jobs = vec![r#"{"queue":"q"}"#; 400].join(",");
    app.post("/v1/jobs/batch", format!(r#"{{"jobs":[{jobs}]}}"#))
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None);
    assert_eq!(
        app.list_ids("").await.len(),
        1,
        "only the job within the limit was stored"
    );
}

#[tokio::test]
async fn batch_enqueue_stores_all_or_nothing() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            "/v1/jobs/batch",
            r#"{"jobs":[{"queue":"a"},{"queue":"b","delay":"1m"}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let jobs = reply.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0]["state"].as_str(), jobs[0]["duplicate"].as_bool()),
        (Some("available"), Some(false))
    );
    assert_eq!(jobs[1]["state"], "scheduled");
    assert_eq!(app.job(jobs[1]["id"].as_str().unwrap()).await.queue, "b");

    // One bad job: nothing is stored, and the error names it.
    let bad = r#"{"jobs":[{"queue":"c"},{"queue":"c"},{"queue":"c"},{"queue":""}]}"#;
    app.post("/v1/jobs/batch", bad).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("jobs[3].queue"),
    );
    let bad = r#"{"jobs":[{"queue":"c"},{"queue":"c","delay":"-5s"}]}"#;
    app.post("/v1/jobs/batch", bad).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("jobs[1].delay"),
    );
    let bad = r#"{"jobs":[{"queue":"c"},{"queue":"c","extra":1}]}"#;
    app.post("/v1/jobs/batch", bad).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("jobs[1].extra"),
    );
    assert!(app.list_ids("queue=c").await.is_empty());

    app.post("/v1/jobs/batch", r#"{"jobs":[]}"#)
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("jobs"));
    app.post("/v1/jobs/batch", r#"{}"#).await.assert_problem(
        UNPROCESSABLE,
        "invalid_field",
        Some("jobs"),
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/jobs/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "k")
        .body(Body::from(r#"{"jobs":[{"queue":"c"}]}"#))
        .unwrap();
    app.call(request)
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("Idempotency-Key"));
    let too_many = vec![r#"{"queue":"c"}"#; 10_001].join(",");
    app.post("/v1/jobs/batch", format!(r#"{{"jobs":[{too_many}]}}"#))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("jobs"));
    assert!(app.list_ids("queue=c").await.is_empty());
}

#[tokio::test]
async fn batch_replays_are_flagged() {
    let app = TestApp::new().await;
    let body = r#"{"jobs":[{"queue":"q","idempotency_key":"k1"},{"queue":"q"}]}"#;
    let first = app.post("/v1/jobs/batch", body).await.json();
    let again = app.post("/v1/jobs/batch", body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    let again = again.json();
    assert_eq!(again["jobs"][0]["id"], first["jobs"][0]["id"]);
    assert_eq!(again["jobs"][0]["duplicate"], true);
    assert_ne!(again["jobs"][1]["id"], first["jobs"][1]["id"]);
    assert_eq!(app.list_ids("queue=q").await.len(), 3);
}
