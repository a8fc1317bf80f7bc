//! Crash safety and leases with the real binary: what the API acknowledged survives SIGKILL, a dead
//! worker's job is retried after its lease, and the old worker's late report is refused. A SQLite file is
//! served by one process: a second server on it exits at once.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::Server;

/// POSTs JSON and returns the status with the parsed answer.
async fn post_json(client: &reqwest::Client, url: String, body: &Value) -> (u16, Value) {
    let resp = client.post(url).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// GETs a JSON document.
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

fn http() -> reqwest::Client {
    offload_engine::push::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_job_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let mut server = Server::start(&db);
    let url = server.url.clone();
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = http();

    let mut writers = Vec::new();
    for w in 0..16 {
        let (client, url, accepted) = (client.clone(), url.clone(), accepted.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let batch = i % 4 == 0;
                let resp = if batch {
                    let jobs: Vec<Value> = (0..20)
                        .map(|k| json!({"queue": "crash", "payload": {"w": w, "i": i, "k": k}}))
                        .collect();
                    client
                        .post(format!("{url}/v1/jobs/batch"))
                        .json(&json!({ "jobs": jobs }))
                        .send()
                        .await
                } else {
                    client
                        .post(format!("{url}/v1/jobs"))
                        .json(&json!({"queue": "crash", "payload": {"w": w, "i": i}}))
                        .send()
                        .await
                };
                let Ok(resp) = resp else { return };
                if !resp.status().is_success() {
                    return;
                }
                let Ok(body) = resp.json::<Value>().await else {
                    return;
                };
                let mut acc = accepted.lock().unwrap();
                if batch {
                    acc.extend(
                        body["jobs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|j| j["id"].as_str().unwrap().to_owned()),
                    );
                } else {
                    acc.push(body["id"].as_str().unwrap().to_owned());
                }
            }
        }));
    }
    // Kill the server while requests are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while accepted.lock().unwrap().len() < 3000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few jobs accepted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill_hard();
    for w in writers {
        w.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 3000);

    let server = Server::start(&db);
    let mut missing = Vec::new();
    for id in &accepted {
        let resp = client
            .get(format!("{}/v1/jobs/{id}", server.url))
            .send()
            .await
            .unwrap();
        if resp.status() != 200 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged jobs lost, e.g. {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_retried_after_its_lease_and_its_late_completion_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let url = &server.url;
    let client = http();

    let (_, job) = post_json(
        &client,
        format!("{url}/v1/jobs"),
        &json!({"queue": "leases", "payload": {"x": 1}, "timeout": "1s", "max_attempts": 3,
                      "backoff": {"base": "100ms", "cap": "100ms"}}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();

    // Worker 1 claims, then "dies": it never heartbeats or reports.
    let (_, first) = post_json(
        &client,
        format!("{url}/v1/queues/leases/claim"),
        &json!({"worker_id": "w1", "max_jobs": 1}),
    )
    .await;
    assert_eq!(first["jobs"][0]["attempt"], 1);
    let stale_token = first["jobs"][0]["lease_token"].as_str().unwrap().to_owned();

    // Worker 2 long-polls and gets the job once the lease expired and the retry is due.
    let (_, second) = post_json(
        &client,
        format!("{url}/v1/queues/leases/claim"),
        &json!({"worker_id": "w2", "max_jobs": 1, "wait": "20s"}),
    )
    .await;
    assert_eq!(second["jobs"][0]["id"], id.as_str(), "{second}");
    assert_eq!(second["jobs"][0]["attempt"], 2);
    let token = second["jobs"][0]["lease_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Worker 1 wakes up and tries to report: refused, and nothing changes.
    for (path, body) in [
        (
            "complete",
            json!({"lease_token": stale_token, "result": "late"}),
        ),
        ("fail", json!({"lease_token": stale_token, "error": "late"})),
        ("heartbeat", json!({"lease_token": stale_token})),
    ] {
        let (status, problem) =
            post_json(&client, format!("{url}/v1/jobs/{id}/{path}"), &body).await;
        assert_eq!(status, 409, "{path}");
        assert_eq!(problem["code"], "lease_mismatch");
    }
    let now = get_json(&client, format!("{url}/v1/jobs/{id}")).await;
    assert_eq!(
        (now["state"].as_str(), now["attempt"].as_u64()),
        (Some("running"), Some(2)),
        "{now}"
    );

    let (status, _) = post_json(
        &client,
        format!("{url}/v1/jobs/{id}/complete"),
        &json!({"lease_token": token, "result": {"ok": true}}),
    )
    .await;
    assert_eq!(status, 200);
    let done = get_json(&client, format!("{url}/v1/jobs/{id}")).await;
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["result"], json!({"ok": true}));
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(
        (
            attempts[0]["outcome"].as_str(),
            attempts[0]["worker_id"].as_str()
        ),
        (Some("lease_expired"), Some("w1"))
    );
    assert_eq!(attempts[0]["error"], "lease expired");
    assert_eq!(
        (
            attempts[1]["outcome"].as_str(),
            attempts[1]["worker_id"].as_str()
        ),
        (Some("succeeded"), Some("w2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_long_polls_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("offload.db"));
    let url = server.url.clone();
    let client = http();
    let poll = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(format!("{url}/v1/queues/idle/claim"))
                .json(&json!({"worker_id": "w", "wait": "60s"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let resp = poll
        .await
        .unwrap()
        .expect("the long poll gets an answer before the server exits");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jobs"], json!([]));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_second_server_on_the_same_sqlite_file_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let first = Server::start(&db);
    let started = std::time::Instant::now();
    let second = std::process::Command::new(support::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(&db)
        .output()
        .expect("run a second offload serve");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it exits at once"
    );
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another offload server"),
        "{stderr}"
    );
    // The first one is unharmed.
    assert!(first.cli(&["queue", "ls"]).status.success());
}
