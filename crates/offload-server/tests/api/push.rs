//! Push jobs through the API: targets are validated field by field, refused addresses that can be known
//! at enqueue time get a 422, and the job view shows the target.

use std::time::Duration;

use axum::http::StatusCode;
use offload_engine::{AddressPolicy, EngineConfig, PushConfig, SigningSecret};
use offload_server::ServerConfig;

use crate::common::TestApp;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// An engine that delivers push jobs (it has a signing secret), with `policy`, claiming every `claim_poll`.
pub(crate) fn push_engine(claim_poll: Duration, policy: AddressPolicy) -> EngineConfig {
    EngineConfig {
        claim_poll,
        push: PushConfig {
            signing_secrets: vec![SigningSecret::generate().unwrap()],
            policy,
            ..PushConfig::default()
        },
        ..EngineConfig::default()
    }
}

/// A server that delivers push jobs (it has a signing secret), with `policy`.
pub(crate) async fn app(policy: AddressPolicy) -> TestApp {
    let engine = push_engine(Duration::from_millis(200), policy);
    TestApp::with_engine(ServerConfig::default(), engine).await
}

#[tokio::test]
async fn a_push_job_shows_its_target() {
    let app = app(AddressPolicy::default()).await;
    let job = app
        .enqueue(
            r#"{"queue":"hooks","payload":{"a":1},"target":{"url":"HTTPS://App.Example/hook","method":"put",
                "headers":{"Authorization":"Bearer x"},"timeout":"15m","callback_url":"https://app.example/done"}}"#,
        )
        .await;
    let target = job.target.clone().expect("target in the answer");
    assert_eq!(target.url, "https://app.example/hook");
    assert_eq!(target.method, "PUT");
    assert_eq!(target.headers["authorization"], "Bearer x");
    assert_eq!(target.timeout.unwrap().as_millis(), 900_000);
    assert_eq!(app.job(job.id).await.target, Some(target));
    let reply = app.get("/v1/jobs?queue=hooks").await;
    assert_eq!(reply.json()["items"][0]["target"]["method"], "PUT");
    // A worker never gets it.
    let reply = app
        .post(
            "/v1/queues/hooks/claim",
            r#"{"worker_id":"w","max_jobs":10}"#,
        )
        .await;
    assert_eq!(reply.json()["jobs"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_targets_are_named() {
    let app = app(AddressPolicy::allow_private()).await;
    let cases = [
        (r#"{"url":"ftp://x"}"#, "target.url"),
        (r#"{"url":"http://u:p@example.com"}"#, "target.url"),
        (
            r#"{"url":"http://example.com","method":"GET"}"#,
            "target.method",
        ),
        (
            r#"{"url":"http://example.com","headers":{"Connection":"close"}}"#,
            "target.headers.Connection",
        ),
        (
            r#"{"url":"http://example.com","headers":{"Webhook-Signature":"v1,x"}}"#,
            "target.headers.Webhook-Signature",
        ),
        (
            r#"{"url":"http://example.com","timeout":"2h"}"#,
            "target.timeout",
        ),
        (
            r#"{"url":"http://example.com","callback_url":"x"}"#,
            "target.callback_url",
        ),
        // Cloud metadata is refused even where internal addresses are allowed.
        (r#"{"url":"http://169.254.169.254/latest"}"#, "target.url"),
    ];
    for (target, field) in cases {
        let reply = app
            .post("/v1/jobs", format!(r#"{{"queue":"q","target":{target}}}"#))
            .await;
        reply.assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    let reply = app
        .post(
            "/v1/jobs",
            r#"{"queue":"q","target":{"url":"http://x","retries":1}}"#,
        )
        .await;
    reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("target.retries"));
    let reply = app
        .post("/v1/jobs", r#"{"queue":"offload.callbacks"}"#)
        .await;
    reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("queue"));
}

#[tokio::test]
async fn refused_addresses_are_refused_at_enqueue() {
    let app = app(AddressPolicy::default()).await;
    for url in [
        "http://10.0.0.1/x",
        "http://[::1]:3000/x",
        "http://127.0.0.1:3000/x",
        "http://localhost:3000/x",
    ] {
        let reply = app
            .post(
                "/v1/jobs",
                format!(r#"{{"queue":"q","target":{{"url":"{url}"}}}}"#),
            )
            .await;
        let problem = reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("target.url"));
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("allow_private"),
            "{problem}"
        );
    }
    let batch = r#"{"jobs":[{"queue":"q","target":{"url":"https://example.com/ok"}},
                            {"queue":"q","target":{"url":"http://192.168.1.10/x"}}]}"#;
    let reply = app.post("/v1/jobs/batch", batch).await;
    reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("jobs[1].target.url"));
    assert!(
        app.list_ids("queue=q").await.is_empty(),
        "nothing stored half-way"
    );
}

#[tokio::test]
async fn push_jobs_need_a_signing_secret() {
    let app = TestApp::new().await;
    let reply = app
        .post(
            "/v1/jobs",
            r#"{"queue":"q","target":{"url":"https://example.com/x"}}"#,
        )
        .await;
    let problem = reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("target"));
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("signing secret")
    );
}

#[tokio::test]
async fn a_schedule_template_carries_a_push_target() {
    let app = app(AddressPolicy::default()).await;
    let refused =
        r#"{"cron":"@daily","job":{"queue":"hooks","target":{"url":"http://10.0.0.1/x"}}}"#;
    let reply = app
        .call(crate::common::json_request(
            axum::http::Method::PUT,
            "/v1/schedules/refused",
            refused,
        ))
        .await;
    reply.assert_problem(UNPROCESSABLE, "invalid_field", Some("job.target.url"));
    let list = app.get("/v1/schedules").await.json();
    assert_eq!(list["schedules"], serde_json::json!([]), "nothing stored");

    let body =
        r#"{"cron":"@daily","job":{"queue":"hooks","target":{"url":"https://App.Example/tick"}}}"#;
    let reply = app
        .call(crate::common::json_request(
            axum::http::Method::PUT,
            "/v1/schedules/nightly-hook",
            body,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(
        reply.json()["job"]["target"]["url"],
        "https://app.example/tick"
    );
    let triggered = app
        .send(
            axum::http::Method::POST,
            "/v1/schedules/nightly-hook/trigger",
        )
        .await
        .json();
    let id = triggered["job_id"]
        .as_str()
        .expect("the triggered job's id");
    let job = app.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!(job["target"]["url"], "https://app.example/tick");
    assert_eq!(job["schedule"]["name"], "nightly-hook");
}
