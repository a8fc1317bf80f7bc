//! `/metrics`: parsed with a Prometheus text parser after real enqueues, claims, completions, failures and
//! a lease expiry. This test binary installs the process's one global recorder (the binary's job in
//! production); the other tests' metrics land in it too, so these tests use queues of their own.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::http::{Method, Request, StatusCode, header};
use offload_core::JobState;
use offload_engine::EngineConfig;
use offload_server::ServerConfig;
use offload_server::metrics::PrometheusHandle;
use prometheus_parse::{Sample, Scrape, Value};

use crate::common::TestApp;

/// The recorder, installed once per test process.
fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = offload_server::metrics::recorder()
                .unwrap()
                .install_recorder()
                .unwrap();
            offload_engine::describe_metrics();
            handle
        })
        .clone()
}

pub(crate) async fn app() -> TestApp {
    let config = ServerConfig {
        metrics: Some(handle()),
        ..ServerConfig::default()
    };
    let engine = EngineConfig {
        stage_interval: Duration::from_millis(50),
        rescue_interval: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    TestApp::with_engine(config, engine).await
}

pub(crate) async fn scrape(app: &TestApp) -> Scrape {
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The one sample of `metric` whose labels include all of `labels`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    found[0]
}

pub(crate) fn number(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match &sample(scrape, metric, labels).value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric} is not a number: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_count_what_happened_to_jobs() {
    let app = app().await;
    let q = "metrics-flow";
    for _ in 0..4 {
        app.enqueue(&format!(r#"{{"queue":"{q}","max_attempts":1}}"#))
            .await;
    }
    // An idempotent replay stores nothing and is not counted.
    let keyed = format!(r#"{{"queue":"{q}","max_attempts":1,"idempotency_key":"k"}}"#);
    app.enqueue(&keyed).await;
    let replay = app.post("/v1/jobs", keyed).await;
    assert_eq!(replay.status, StatusCode::OK);

    let done = app.claim_one(q).await;
    let failed = app.claim_one(q).await;
    let reply = app
        .post(
            &format!("/v1/jobs/{}/complete", done.id),
            format!(r#"{{"lease_token":"{}"}}"#, done.lease_token.0),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let reply = app
        .post(
            &format!("/v1/jobs/{}/fail", failed.id),
            format!(
                r#"{{"lease_token":"{}","error":"boom"}}"#,
                failed.lease_token.0
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    app.post(&format!("/v1/queues/{q}/pause"), "").await;

    let s = scrape(&app).await;
    let queue = [("queue", q)];
    assert_eq!(number(&s, "offload_jobs_enqueued_total", &queue), 5.0);
    assert_eq!(
        number(
            &s,
            "offload_jobs_finished_total",
            &[("queue", q), ("state", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        number(
            &s,
            "offload_jobs_finished_total",
            &[("queue", q), ("state", "dead")]
        ),
        1.0
    );
    assert_eq!(number(&s, "offload_job_wait_seconds_count", &queue), 2.0);
    assert_eq!(number(&s, "offload_job_run_seconds_count", &queue), 2.0);
    // Explicit buckets, 5 ms to an hour, plus +Inf.
    let Value::Histogram(buckets) = &sample(&s, "offload_job_wait_seconds", &queue).value else {
        panic!("offload_job_wait_seconds is not a histogram");
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    assert_eq!(bounds.first(), Some(&0.005));
    assert!(
        bounds.contains(&3600.0) && bounds.last() == Some(&f64::INFINITY),
        "{bounds:?}"
    );
    assert_eq!(buckets.last().unwrap().count, 2.0);

    // Read from the store at scrape time.
    let depth = |state: JobState| {
        number(
            &s,
            "offload_queue_depth",
            &[("queue", q), ("state", state.as_str())],
        )
    };
    assert_eq!(depth(JobState::Available), 3.0);
    assert_eq!(depth(JobState::Succeeded), 1.0);
    assert_eq!(depth(JobState::Dead), 1.0);
    assert_eq!(depth(JobState::Running), 0.0);
    let age = number(&s, "offload_queue_oldest_available_age_seconds", &queue);
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(number(&s, "offload_queue_paused", &queue), 1.0);
    assert!(s.docs.contains_key("offload_queue_depth"));
    assert!(s.docs.contains_key("offload_jobs_enqueued_total"));
}

#[tokio::test]
async fn lease_expiries_are_counted() {
    let app = app().await;
    app.engine.start();
    let q = "metrics-lease";
    let job = app
        .enqueue(&format!(r#"{{"queue":"{q}","timeout":"1s"}}"#))
        .await;
    app.claim_one(q).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.job(job.id).await.state == JobState::Running {
        assert!(Instant::now() < deadline, "the lease was never rescued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = scrape(&app).await;
    assert_eq!(
        number(&s, "offload_lease_expiries_total", &[("queue", q)]),
        1.0
    );
    assert_eq!(
        number(
            &s,
            "offload_jobs_finished_total",
            &[("queue", q), ("state", "retrying")]
        ),
        1.0
    );
    app.engine.shutdown().await;
}

#[tokio::test]
async fn metrics_need_a_token_when_tokens_are_configured() {
    let config = ServerConfig {
        api_tokens: vec!["s3cret".to_owned()],
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let request = |token: Option<&str>| {
        let mut builder = Request::builder().method(Method::GET).uri("/metrics");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(axum::body::Body::empty()).unwrap()
    };
    assert_eq!(
        app.call(request(None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(request(Some("s3cret"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn runs_and_their_steps_are_counted() {
    let app = app().await;
    let f = "metrics-run";
    app.register(
        f,
        serde_json::json!({"triggers": [{"event": "metrics/run.test"}], "retries": 0}),
    )
    .await;
    let event = serde_json::json!({"name": "metrics/run.test"});

    // One run records a step with data, then succeeds.
    let sent = app.send_event(event.clone()).await;
    let succeeded = sent["runs"][0][0].as_str().unwrap().to_owned();
    let call = app.claim_call(f).await;
    app.answer_call(
        &call,
        serde_json::json!({"steps": [{"id": "a", "op": "run", "data": 1}]}),
    )
    .await;
    let call = app.claim_call(f).await;
    app.answer_call(&call, serde_json::json!({"done": true, "output": "ok"}))
        .await;
    assert_eq!(app.run(&succeeded).await["state"], "succeeded");

    // The other records a step's error (no retries), then its call dies: the run fails.
    let sent = app.send_event(event).await;
    let failed = sent["runs"][0][0].as_str().unwrap().to_owned();
    let call = app.claim_call(f).await;
    app.answer_call(
        &call,
        serde_json::json!({"steps": [{"id": "b", "op": "run", "error": {"name": "E", "message": "m"}}]}),
    )
    .await;
    let call = app.claim_call(f).await;
    let reply = app
        .post(
            &format!("/v1/jobs/{}/fail", call["id"].as_str().unwrap()),
            serde_json::json!({"lease_token": call["lease_token"], "error": "boom"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(app.run(&failed).await["state"], "failed");

    let s = scrape(&app).await;
    let function = ("function", f);
    assert_eq!(number(&s, "offload_runs_started_total", &[function]), 2.0);
    let finished = |state| {
        number(
            &s,
            "offload_runs_finished_total",
            &[function, ("state", state)],
        )
    };
    assert_eq!(finished("succeeded"), 1.0);
    assert_eq!(finished("failed"), 1.0);
    let steps = |outcome| number(&s, "offload_steps_total", &[function, ("outcome", outcome)]);
    assert_eq!(steps("data"), 1.0);
    assert_eq!(steps("error"), 1.0);
    for state in ["succeeded", "failed"] {
        let labels = [function, ("state", state)];
        assert_eq!(number(&s, "offload_run_seconds_count", &labels), 1.0);
        let Value::Histogram(buckets) = &sample(&s, "offload_run_seconds", &labels).value else {
            panic!("offload_run_seconds is not a histogram");
        };
        assert_eq!(buckets.first().map(|b| b.less_than), Some(0.005));
        assert_eq!(buckets.last().map(|b| b.count), Some(1.0));
    }
    assert!(s.docs.contains_key("offload_runs_started_total"));
}

#[tokio::test]
async fn metrics_count_jobs_held_by_each_kind_of_limit() {
    let app = app().await;
    let q = "metrics-held";
    let reply = app
        .call(
            Request::builder()
                .method(Method::PATCH)
                .uri(format!("/v1/queues/{q}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(r#"{"group_concurrency":1}"#.into())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    for _ in 0..3 {
        app.enqueue(&format!(r#"{{"queue":"{q}","group":"a"}}"#))
            .await;
    }
    app.claim_one(q).await;
    let s = scrape(&app).await;
    let held = |kind| {
        number(
            &s,
            "offload_queue_held_jobs",
            &[("queue", q), ("kind", kind)],
        )
    };
    assert_eq!(held("group_concurrency"), 2.0);
    assert_eq!(held("concurrency"), 0.0);
    assert_eq!(held("throttle"), 0.0);
    assert!(
        !s.samples
            .iter()
            .any(|x| x.metric == "offload_queue_held_jobs"
                && x.labels.get("queue") == Some("metrics-flow")),
        "queues without limits have no held-jobs gauge"
    );
}
