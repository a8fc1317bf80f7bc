//! Durable functions over the API: registration, reading, removal and app sync, with refusals that name
//! their field; helpers the event and run tests share.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use offload_engine::EngineConfig;
use offload_server::ServerConfig;
use serde_json::{Value, json};

use crate::common::{TestApp, json_request};

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// A server whose maintenance loops run (the stager makes retries and sleeps due, the wait-timeout service
/// resolves waits).
pub(crate) async fn started_app() -> TestApp {
    let engine = EngineConfig {
        stage_interval: Duration::from_millis(50),
        claim_poll: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    let app = TestApp::with_engine(ServerConfig::default(), engine).await;
    app.engine.start();
    app
}

impl TestApp {
    /// A PUT with a JSON body.
    pub(crate) async fn put_json(&self, path: &str, body: Value) -> crate::common::Reply {
        self.call(json_request(Method::PUT, path, body.to_string()))
            .await
    }

    /// Registers `spec` as function `id`, expecting 201 or 200; returns the view.
    pub(crate) async fn register(&self, id: &str, spec: Value) -> Value {
        let reply = self.put_json(&format!("/v1/functions/{id}"), spec).await;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "{reply:?}"
        );
        reply.json()
    }

    /// Sends one event, expecting 201 or 200; returns the answer.
    pub(crate) async fn send_event(&self, event: Value) -> Value {
        let reply = self.post("/v1/events", event.to_string()).await;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "{reply:?}"
        );
        reply.json()
    }

    /// The run as `GET /v1/runs/{id}` shows it.
    pub(crate) async fn run(&self, id: &str) -> Value {
        let reply = self.get(&format!("/v1/runs/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.json()
    }

    /// Waits (up to 10 s) until the run is in `state`.
    pub(crate) async fn await_run_state(&self, id: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let run = self.run(id).await;
            if run["state"] == state {
                return run;
            }
            if tokio::time::Instant::now() >= deadline {
                let jobs = self.get("/v1/jobs").await.json();
                panic!("run never became {state}: {run}; jobs: {jobs}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Long-polls `queue` (up to 5 s) for one call job; returns the job as the API shows it.
    pub(crate) async fn claim_call(&self, queue: &str) -> Value {
        let reply = self
            .post(
                &format!("/v1/queues/{queue}/claim"),
                r#"{"worker_id":"w","wait":"5s"}"#,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let jobs = reply.json()["jobs"].clone();
        assert_eq!(jobs.as_array().map(Vec::len), Some(1), "no call: {reply:?}");
        jobs[0].clone()
    }

    /// Completes a claimed call with `response` as the job's result.
    pub(crate) async fn answer_call(&self, job: &Value, response: Value) {
        let body = json!({"lease_token": job["lease_token"], "result": response});
        let reply = self
            .post(
                &format!("/v1/jobs/{}/complete", job["id"].as_str().unwrap()),
                body.to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
}

#[tokio::test]
async fn a_function_is_registered_read_listed_replaced_and_removed() {
    let app = TestApp::new().await;
    let spec = json!({"name": "Welcome", "triggers": [{"event": "app/user.signup"}], "retries": 2});
    let reply = app.put_json("/v1/functions/welcome", spec.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let view = reply.json();
    assert_eq!(view["id"], "welcome");
    assert_eq!(view["queue"], "welcome");
    assert_eq!(view["retries"], 2);
    assert_eq!(view["triggers"], json!([{"event": "app/user.signup"}]));
    assert!(view.get("target").is_none());

    let reply = app.put_json("/v1/functions/welcome", spec).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let reply = app.get("/v1/functions/welcome").await;
    assert_eq!(reply.json()["name"], "Welcome");
    let reply = app.get("/v1/functions").await;
    assert_eq!(reply.json()["functions"][0]["id"], "welcome");

    assert_eq!(
        app.delete("/v1/functions/welcome").await.status,
        StatusCode::NO_CONTENT
    );
    app.get("/v1/functions/welcome")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(
        app.get("/v1/functions").await.json()["functions"],
        json!([])
    );
}

#[tokio::test]
async fn bad_definitions_are_refused_with_their_field() {
    let app = TestApp::new().await;
    let cases = [
        (
            "f",
            json!({"triggers": [{"event": "a"}], "retry": 1}),
            "retry",
        ),
        ("f", json!({"triggers": []}), "triggers"),
        (
            "f",
            json!({"triggers": [{"cron": "61 * * * *"}]}),
            "triggers[0].cron",
        ),
        (
            "f",
            json!({"triggers": [{"event": "bad name"}]}),
            "triggers[0].event",
        ),
        ("f", json!({"id": "g", "triggers": [{"event": "a"}]}), "id"),
        ("-f", json!({"triggers": [{"event": "a"}]}), "id"),
        // Push is off on a server without a signing secret.
        (
            "f",
            json!({"triggers": [{"event": "a"}], "target": {"url": "https://example.com/fn"}}),
            "target",
        ),
    ];
    for (id, spec, field) in cases {
        app.put_json(&format!("/v1/functions/{id}"), spec)
            .await
            .assert_problem(UNPROCESSABLE, "invalid_field", Some(field));
    }
    assert_eq!(
        app.get("/v1/functions").await.json()["functions"],
        json!([])
    );
}

#[tokio::test]
async fn an_app_sync_creates_updates_and_removes_its_functions() {
    let app = TestApp::new().await;
    let a = json!({"id": "a", "triggers": [{"event": "shop/order.paid"}]});
    let b = json!({"id": "b", "triggers": [{"event": "shop/order.paid"}]});
    let reply = app
        .put_json("/v1/apps/shop", json!({"functions": [a.clone(), b]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let mut created: Vec<String> = serde_json::from_value(reply.json()["created"].clone()).unwrap();
    created.sort();
    assert_eq!(created, ["a", "b"]);
    let reply = app.get("/v1/functions/a").await;
    assert_eq!(reply.json()["app"], "shop");

    // `b` is gone from the set: removed; `a` unchanged.
    let reply = app
        .put_json("/v1/apps/shop", json!({"functions": [a]}))
        .await;
    let synced = reply.json();
    assert_eq!(synced["unchanged"], json!(["a"]), "{reply:?}");
    assert_eq!(synced["removed"], json!(["b"]), "{reply:?}");
    app.get("/v1/functions/b")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", None);
    // A removed function starts nothing.
    let sent = app
        .send_event(json!({"name": "shop/order.paid", "data": {"order": 1}}))
        .await;
    assert_eq!(sent["runs"][0].as_array().unwrap().len(), 1, "{sent}");

    // Refusals name the entry; the file's app is reserved.
    app.put_json(
        "/v1/apps/shop",
        json!({"functions": [{"id": "a", "triggers": [{"event": "x"}]}, {"triggers": [{"event": "x"}]}]}),
    )
    .await
    .assert_problem(UNPROCESSABLE, "invalid_field", Some("functions[1].id"));
    app.put_json("/v1/apps/offload.toml", json!({"functions": []}))
        .await
        .assert_problem(UNPROCESSABLE, "invalid_field", Some("app"));
}
