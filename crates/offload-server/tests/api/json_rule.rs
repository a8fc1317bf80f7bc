//! The JSON rule (depth at most 128, valid Unicode) on every JSON value the API accepts or stores, on SQLite
//! and on PostgreSQL: a value that breaks it is a 422 naming the field, and nothing is stored.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use offload_core::JobState;
use offload_core::json_rule::MAX_DEPTH;
use offload_engine::AddressPolicy;
use offload_server::ServerConfig;

use crate::common::TestApp;
use crate::push::push_engine;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deep_payloads_are_refused_single_and_batch() {
    for (store, app) in TestApp::each_store().await {
        for depth in [MAX_DEPTH + 1, 20_000] {
            let body = format!(r#"{{"queue":"deep","payload":{}}}"#, nested(depth));
            let reply = app.post("/v1/jobs", body).await;
            let problem = reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("payload"));
            assert!(
                problem["detail"].as_str().unwrap().contains("128"),
                "{store}: {reply:?}"
            );
            let batch = format!(
                r#"{{"jobs":[{{"queue":"deep"}},{{"queue":"deep","payload":{{"a":{}}}}}]}}"#,
                nested(depth)
            );
            app.post("/v1/jobs/batch", batch).await.assert_problem(
                UNPROCESSABLE,
                "invalid_field",
                Some("jobs[1].payload"),
            );
        }
        assert!(
            app.list_ids("queue=deep").await.is_empty(),
            "{store}: nothing stored"
        );
        // The limit itself is accepted, stored and read back whole.
        let job = app
            .enqueue(&format!(
                r#"{{"queue":"deep","payload":{}}}"#,
                nested(MAX_DEPTH)
            ))
            .await;
        assert_eq!(
            app.job(job.id).await.payload.get(),
            nested(MAX_DEPTH),
            "{store}"
        );
    }
}

#[tokio::test]
async fn deep_results_are_refused_single_and_batch() {
    for (store, app) in TestApp::each_store().await {
        let job = app.enqueue(r#"{"queue":"deep-result"}"#).await;
        let claimed = app.claim_one("deep-result").await;
        let token = claimed.lease_token;
        let reply = app
            .post(
                &format!("/v1/jobs/{}/complete", job.id),
                format!(r#"{{"lease_token":"{token}","result":{}}}"#, nested(20_000)),
            )
            .await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("result"));
        let reply = app
            .post(
                "/v1/jobs/complete",
                format!(
                    r#"{{"jobs":[{{"id":"{}","lease_token":"{token}","result":{{"r":{}}}}}]}}"#,
                    job.id,
                    nested(MAX_DEPTH)
                ),
            )
            .await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("jobs[0].result"));
        let still = app.job(job.id).await;
        assert_eq!(still.state, JobState::Running, "{store}: nothing stored");
        assert!(still.result.is_none(), "{store}");
    }
}

#[tokio::test]
async fn progress_messages_must_be_short_valid_text() {
    for (store, app) in TestApp::each_store().await {
        let job = app.enqueue(r#"{"queue":"deep-progress"}"#).await;
        let token = app.claim_one("deep-progress").await.lease_token;
        let path = format!("/v1/jobs/{}/heartbeat", job.id);
        for message in [nested(20_000), r#""half \ud800 a pair""#.to_owned()] {
            let body = format!(r#"{{"lease_token":"{token}","progress":5,"message":{message}}}"#);
            let reply = app.post(&path, body).await;
            reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("message"));
        }
        assert!(
            app.job(job.id).await.progress.is_none(),
            "{store}: nothing stored"
        );
    }
}

#[tokio::test]
async fn lone_surrogates_are_refused_in_strings_and_keys() {
    for (store, app) in TestApp::each_store().await {
        for (body, field) in [
            (r#"{"queue":"utf","payload":{"text":"\ud800"}}"#, "payload"),
            (r#"{"queue":"utf","payload":{"\udc00":1}}"#, "payload"),
            (r#"{"queue":"utf","payload":["\ud83d\u0041"]}"#, "payload"),
            (r#"{"queue":"utf","name":"x\ud800"}"#, "name"),
            (r#"{"queue":"utf","tags":{"k":"\udfff"}}"#, "tags.k"),
        ] {
            let reply = app.post("/v1/jobs", body).await;
            let problem = reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
            assert!(
                problem["detail"].as_str().unwrap().contains("surrogate"),
                "{store}: {reply:?}"
            );
        }
        assert!(app.list_ids("queue=utf").await.is_empty(), "{store}");
        // A proper pair is an ordinary character, stored and echoed back.
        let job = app
            .enqueue(r#"{"queue":"utf","payload":{"smile":"\ud83d\ude00"}}"#)
            .await;
        let stored: serde_json::Value =
            serde_json::from_str(app.job(job.id).await.payload.get()).unwrap();
        assert_eq!(stored["smile"], "\u{1f600}", "{store}");

        let job = app.enqueue(r#"{"queue":"utf-result"}"#).await;
        let token = app.claim_one("utf-result").await.lease_token;
        let reply = app
            .post(
                &format!("/v1/jobs/{}/complete", job.id),
                format!(r#"{{"lease_token":"{token}","result":"\ud800"}}"#),
            )
            .await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("result"));
    }
}

#[tokio::test]
async fn deep_schedule_templates_are_named() {
    let app = TestApp::new().await;
    let body = format!(
        r#"{{"cron":"@daily","job":{{"queue":"q","payload":{}}}}}"#,
        nested(20_000)
    );
    let reply = app
        .call(crate::common::json_request(
            axum::http::Method::PUT,
            "/v1/schedules/deep",
            body,
        ))
        .await;
    reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("job.payload"));
    assert_eq!(
        app.get("/v1/schedules/deep").await.status,
        StatusCode::NOT_FOUND
    );
}

/// A push target on 127.0.0.1 that answers 200 with `body`.
async fn target_answering(body: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_push_response_that_breaks_the_rule_is_kept_as_text() {
    let engine = push_engine(Duration::from_millis(100), AddressPolicy::allow_private());
    let mut apps = vec![(
        "sqlite",
        TestApp::with_engine(ServerConfig::default(), engine.clone()).await,
    )];
    if let Some(pg) = TestApp::postgres_with_engine(ServerConfig::default(), engine).await {
        apps.push(("postgres", pg));
    }
    for (store, app) in apps {
        app.engine.start();
        for body in [nested(20_000), r#"{"a":"\ud800"}"#.to_owned()] {
            let addr = target_answering(body.clone()).await;
            let job = app
                .enqueue(&format!(
                    r#"{{"queue":"hooks","target":{{"url":"http://{addr}/hook"}}}}"#
                ))
                .await;
            let deadline = Instant::now() + Duration::from_secs(20);
            let done = loop {
                let job = app.job(job.id).await;
                if job.state.is_finished() {
                    break job;
                }
                assert!(
                    Instant::now() < deadline,
                    "{store}: never delivered: {job:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(done.state, JobState::Succeeded, "{store}");
            let result = done.result.expect("a result");
            assert_eq!(
                offload_core::json_rule::check(result.get()),
                Ok(()),
                "{store}"
            );
            let result: serde_json::Value = serde_json::from_str(result.get()).unwrap();
            assert_eq!(result["status"], 200, "{store}");
            assert_eq!(
                result["body"].as_str(),
                Some(body.as_str()),
                "{store}: kept as text"
            );
        }
        app.engine.shutdown().await;
    }
}
