//! Push delivery with the real binary: a server killed with SIGKILL in the middle of a delivery delivers the
//! job again after restart, with the same `webhook-id` and a signature that verifies with the secret
//! `offload push secret` prints.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use support::{Server, wait_for};
use tokio::sync::{Notify, mpsc};

/// An endpoint that holds its first request forever and answers every later one with 200.
#[derive(Clone)]
struct Endpoint {
    seen: Arc<Mutex<u32>>,
    arrivals: mpsc::UnboundedSender<(HeaderMap, Bytes)>,
    never: Arc<Notify>,
}

async fn handle(State(ep): State<Endpoint>, headers: HeaderMap, body: Bytes) -> &'static str {
    let first = {
        let mut seen = ep.seen.lock().unwrap();
        *seen += 1;
        *seen == 1
    };
    let _ = ep.arrivals.send((headers, body));
    if first {
        ep.never.notified().await;
    }
    "ok"
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_delivery_redelivers_with_the_same_webhook_id() {
    offload_engine::push::install_crypto_provider();
    let (tx, mut arrivals) = mpsc::unbounded_channel();
    let endpoint = Endpoint {
        seen: Arc::default(),
        arrivals: tx,
        never: Arc::new(Notify::new()),
    };
    let app = axum::Router::new().fallback(handle).with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let mut server = Server::start(&db);
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/jobs", server.url))
        .json(&json!({"queue": "hooks", "payload": {"n": 1}, "timeout": "2s", "target": {"url": hook}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let next =
        |arrivals: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>| arrivals.try_recv().ok();
    let (first, first_body) = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(20), "the first delivery", || {
            next(&mut arrivals)
        })
    });
    assert_eq!(header(&first, "webhook-id"), id);
    assert_eq!(header(&first, "offload-attempt"), "1");
    // The delivery is in flight (the endpoint holds it): kill the server.
    server.kill_hard();

    let server = Server::start(&db);
    let (second, second_body) = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(60), "the redelivery", || {
            next(&mut arrivals)
        })
    });
    assert_eq!(
        header(&second, "webhook-id"),
        id,
        "the same message id after the crash"
    );
    assert_eq!(header(&second, "offload-attempt"), "2");
    assert_eq!(first_body, second_body);

    let job = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(20), "the job to succeed", || {
            let job = server.cli_json(&["job", "get", &id]);
            (job["state"] == "succeeded").then_some(job)
        })
    });
    assert_eq!(job["attempts"][0]["outcome"], "lease_expired");
    assert_eq!(job["attempts"][1]["outcome"], "succeeded");

    // The secret generated on the first start survived the crash: both deliveries verify with it.
    let out = std::process::Command::new(support::bin())
        .args(["push", "secret", "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap();
    let webhook = standardwebhooks::Webhook::new(secret.trim()).unwrap();
    webhook.verify(&first_body, &first).unwrap();
    webhook.verify(&second_body, &second).unwrap();
}
