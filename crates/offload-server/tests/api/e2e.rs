//! End to end over a real socket (127.0.0.1:0) with an HTTP client: long-poll claims wake the moment work
//! arrives, not at the next backstop poll.

use std::time::{Duration, Instant};

use offload_core::api::ClaimResponse;
use offload_engine::EngineConfig;
use offload_server::ServerConfig;
use serde_json::json;

use crate::common::TestApp;

/// A server on an ephemeral port whose claimers only poll every 30 s, so a quick answer proves a wake-up.
async fn serve() -> (TestApp, String) {
    let engine_config = EngineConfig {
        claim_poll: Duration::from_secs(30),
        stage_interval: Duration::from_secs(30),
        ..EngineConfig::default()
    };
    let app = TestApp::with_engine(ServerConfig::default(), engine_config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (app, base)
}

#[tokio::test]
async fn long_poll_claim_returns_as_soon_as_a_job_is_enqueued() {
    let (_app, base) = serve().await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    let claim = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = client
                .post(format!("{base}/v1/queues/lp/claim"))
                .json(&json!({"worker_id": "w", "wait": "20s"}))
                .send()
                .await
                .expect("claim request");
            assert_eq!(response.status(), 200);
            response
                .json::<ClaimResponse>()
                .await
                .expect("claim answer")
        }
    });
    let mut claim = std::pin::pin!(claim);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut claim)
            .await
            .is_err(),
        "the claim waits"
    );

    let enqueued = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"queue": "lp", "payload": {"hello": "world"}}))
        .send()
        .await
        .expect("enqueue request");
    assert_eq!(enqueued.status(), 201);
    let id = enqueued.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let claimed = claim.await.expect("claim task");
    assert_eq!(claimed.jobs.len(), 1);
    assert_eq!(claimed.jobs[0].id.to_string(), id);
    assert_eq!(claimed.jobs[0].payload.get(), r#"{"hello":"world"}"#);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken, not polled: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn long_poll_picks_up_a_delayed_job_when_it_becomes_due() {
    let (app, base) = serve().await;
    app.engine.start();
    let client = reqwest::Client::new();

    let enqueued = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"queue": "later", "delay": "300ms"}))
        .send()
        .await
        .expect("enqueue request");
    assert_eq!(enqueued.status(), 201);

    let started = Instant::now();
    let response = client
        .post(format!("{base}/v1/queues/later/claim"))
        .json(&json!({"worker_id": "w", "wait": 20_000}))
        .send()
        .await
        .expect("claim request");
    let claimed: ClaimResponse = response.json().await.expect("claim answer");
    assert_eq!(claimed.jobs.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "staged and woken: {:?}",
        started.elapsed()
    );
    app.engine.shutdown().await;
}

#[tokio::test]
async fn problems_travel_over_the_wire() {
    let (_app, base) = serve().await;
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body("{\"queue\":")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: offload_core::api::Problem = response.json().await.expect("problem body");
    assert_eq!(problem.code, "malformed_json");
}
