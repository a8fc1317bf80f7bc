//! Everything around the job routes: queues, health, unknown routes and methods, authentication, and the
//! answer when the store is gone.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use offload_core::api::{ClaimResponse, QueueInfo, QueueList};
use offload_core::{JobId, JobState};
use offload_server::ServerConfig;

use crate::common::TestApp;

#[tokio::test]
async fn queues_list_pause_and_resume() {
    let app = TestApp::new().await;
    app.enqueue(r#"{"queue":"alpha"}"#).await;
    app.enqueue(r#"{"queue":"alpha","delay":"1h"}"#).await;

    let reply = app.send(Method::POST, "/v1/queues/alpha/pause").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let info: QueueInfo = reply.parse();
    assert_eq!((info.name.as_str(), info.paused), ("alpha", true));
    let claim: ClaimResponse = app
        .post("/v1/queues/alpha/claim", r#"{"worker_id":"w"}"#)
        .await
        .parse();
    assert!(claim.jobs.is_empty(), "paused queues hand out nothing");

    // A queue can be paused before its first job.
    assert!(
        app.send(Method::POST, "/v1/queues/beta/pause")
            .await
            .parse::<QueueInfo>()
            .paused
    );

    let list: QueueList = app.get("/v1/queues").await.parse();
    let alpha = list
        .queues
        .iter()
        .find(|q| q.name == "alpha")
        .expect("alpha listed");
    assert_eq!(alpha.counts[&JobState::Available], 1);
    assert_eq!(alpha.counts[&JobState::Scheduled], 1);
    assert_eq!(
        alpha.counts.len(),
        JobState::ALL.len(),
        "every state is present"
    );
    assert!(list.queues.iter().any(|q| q.name == "beta" && q.paused));

    let info: QueueInfo = app
        .send(Method::POST, "/v1/queues/alpha/resume")
        .await
        .parse();
    assert!(!info.paused);
    let claim: ClaimResponse = app
        .post("/v1/queues/alpha/claim", r#"{"worker_id":"w"}"#)
        .await
        .parse();
    assert_eq!(claim.jobs.len(), 1);

    let reply = app.send(Method::POST, "/v1/queues/bad%20name/pause").await;
    reply.assert_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("queue"),
    );
}

#[tokio::test]
async fn health_reports_the_store() {
    let app = TestApp::new().await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["status"], "ok");
    assert!(reply.json()["version"].is_string());

    app.engine.stop_claiming();
    let reply = app.get("/healthz").await;
    assert_eq!(
        (reply.status, reply.json()["status"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("draining"))
    );
}

#[tokio::test]
async fn a_closed_store_is_503_never_2xx() {
    let app = TestApp::new().await;
    let job = app.enqueue(r#"{"queue":"q"}"#).await;
    app.engine.shutdown().await;

    let reply = app.post("/v1/jobs", r#"{"queue":"q"}"#).await;
    let problem = reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert!(
        !problem["detail"].as_str().unwrap().contains("sqlite"),
        "no internals leak: {problem}"
    );
    let reply = app
        .post("/v1/jobs/batch", r#"{"jobs":[{"queue":"q"}]}"#)
        .await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    let reply = app
        .send(Method::POST, &format!("/v1/jobs/{}/cancel", job.id))
        .await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = TestApp::new().await;
    for path in ["/", "/v1", "/v1/nope", "/v2/jobs", "/v1/jobs/x/y/z"] {
        let reply = app.get(path).await;
        reply.assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    }
    let reply = app.send(Method::PUT, "/v1/jobs").await;
    reply.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
    let allow = reply
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
    let reply = app.get(&format!("/v1/jobs/{}/cancel", JobId::new())).await;
    reply.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
    let reply = app.send(Method::DELETE, "/healthz").await;
    reply.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
}

#[tokio::test]
async fn tokens_guard_every_v1_route() {
    let config = ServerConfig {
        api_tokens: vec!["s3cret".to_owned(), "other".to_owned()],
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let request = |auth: Option<&str>, path: &str| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        builder.body(Body::from(r#"{"queue":"q"}"#)).unwrap()
    };

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("Basic czNjcmV0"),
        Some("Bearer "),
    ] {
        let reply = app.call(request(auth, "/v1/jobs")).await;
        reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized", None);
        assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    // Unknown /v1 routes do not reveal themselves without a token.
    let reply = app.call(request(None, "/v1/nope")).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized", None);

    assert_eq!(
        app.call(request(Some("Bearer s3cret"), "/v1/jobs"))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.call(request(Some("bearer other"), "/v1/jobs"))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.get("/healthz").await.status,
        StatusCode::OK,
        "health stays open"
    );

    // Without configured tokens, no header is needed.
    let open = TestApp::new().await;
    assert_eq!(
        open.call(request(None, "/v1/jobs")).await.status,
        StatusCode::CREATED
    );
}
