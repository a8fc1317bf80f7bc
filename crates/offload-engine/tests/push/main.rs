//! Push delivery end to end inside one process: the engine's dispatcher on a real SQLite store (or two engines
//! on one PostgreSQL schema, when `OFFLOAD_TEST_POSTGRES_URL` is set) delivers to a real HTTP endpoint on
//! 127.0.0.1 that records what it gets and answers from a script.

mod endpoint;

use std::sync::Arc;
use std::time::{Duration, Instant};

use endpoint::{Answer, Endpoint, Received};
use offload_core::push::CALLBACK_QUEUE;
use offload_core::spec::{EnqueueRequest, Limits};
use offload_core::{Job, JobId, JobState, NewJob};
use offload_engine::{AddressPolicy, Engine, EngineConfig, PushConfig, SigningSecret};
use offload_store::JobListParams;
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};

struct Fixture {
    engine: Engine,
    secrets: Vec<SigningSecret>,
    _dir: tempfile::TempDir,
}

fn push_config(policy: AddressPolicy) -> PushConfig {
    PushConfig {
        signing_secrets: vec![SigningSecret::generate().unwrap()],
        policy,
        default_timeout: Duration::from_secs(10),
        ..PushConfig::default()
    }
}

async fn fixture(push: PushConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path().join("push.db")))
        .await
        .unwrap();
    let secrets = push.signing_secrets.clone();
    let config = EngineConfig {
        stage_interval: Duration::from_millis(20),
        rescue_interval: Duration::from_millis(50),
        // Only wake-ups can explain prompt deliveries.
        claim_poll: Duration::from_secs(30),
        push,
        ..EngineConfig::default()
    };
    let engine = Engine::new(Arc::new(store), config);
    engine.start();
    Fixture {
        engine,
        secrets,
        _dir: dir,
    }
}

/// The usual fixture: internal addresses allowed, as for local development.
async fn dev() -> Fixture {
    fixture(push_config(AddressPolicy::allow_private())).await
}

fn new_job(json: Value) -> NewJob {
    serde_json::from_value::<EnqueueRequest>(json)
        .unwrap()
        .validate(&Limits::default(), None, offload_core::Timestamp::now())
        .unwrap()
}

impl Fixture {
    /// Validates, checks against the policy and enqueues; returns the job id.
    async fn enqueue(&self, json: Value) -> JobId {
        let job = new_job(json);
        self.engine.check_push(&job).unwrap();
        let id = job.id;
        self.engine.enqueue(vec![job]).await.unwrap();
        id
    }

    async fn wait_for(&self, id: JobId, state: JobState) -> Job {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let job = self.engine.get(id).await.unwrap().unwrap();
            if job.state == state {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} stayed {} instead of {state}: {:?}",
                job.state,
                job.last_error
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn verify(&self, r: &Received) {
        for secret in &self.secrets {
            let wh = standardwebhooks::Webhook::new(secret.expose()).unwrap();
            wh.verify(&r.body, &r.headers)
                .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
        }
    }
}

fn quick_retries(max_attempts: u32) -> Value {
    json!({"max_attempts": max_attempts, "backoff": {"base": "10ms", "cap": "10ms", "jitter": 0}})
}

fn with(mut base: Value, extra: Value) -> Value {
    let (Value::Object(b), Value::Object(e)) = (&mut base, extra) else {
        panic!("objects")
    };
    b.extend(e);
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_signed_requests_and_keeps_the_answer() {
    let ep = Endpoint::start().await;
    let mut push = push_config(AddressPolicy::allow_private());
    // Two active secrets, as during a rotation: receivers holding either one verify.
    push.signing_secrets
        .push(SigningSecret::generate().unwrap());
    let f = fixture(push).await;
    ep.script(
        "/hook",
        [Answer::Reply(
            200,
            vec![("content-type", "application/json".into())],
            br#"{"sent": true}"#.to_vec(),
        )],
    );
    let id = f
        .enqueue(json!({
            "queue": "emails", "name": "welcome", "payload": {"to": "ada@example.com"},
            "target": {"url": ep.url("/hook?x=1"), "method": "PUT", "headers": {"Authorization": "Bearer t0k"}}
        }))
        .await;
    let r = ep.next().await;
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/hook");
    assert_eq!(
        &r.body[..],
        br#"{"to":"ada@example.com"}"#,
        "the payload is the body, as sent"
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("authorization"), "Bearer t0k");
    assert_eq!(r.header("webhook-id"), id.to_string());
    assert_eq!(r.header("offload-job-id"), id.to_string());
    assert_eq!(r.header("offload-queue"), "emails");
    assert_eq!(r.header("offload-job-name"), "welcome");
    assert_eq!(r.header("offload-attempt"), "1");
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    f.verify(&r);

    let job = f.wait_for(id, JobState::Succeeded).await;
    let result: Value = serde_json::from_str(job.result.unwrap().get()).unwrap();
    assert_eq!(result, json!({"status": 200, "body": {"sent": true}}));
    let attempts = job.attempts.unwrap();
    assert!(
        attempts[0]
            .worker_id
            .as_deref()
            .unwrap()
            .starts_with("push:")
    );
    assert_eq!(job.target.unwrap().headers["authorization"], "Bearer t0k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_answers_retry_with_the_same_webhook_id() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    ep.script(
        "/flaky",
        [
            Answer::status(408, "slow"),
            Answer::status(429, "later"),
            Answer::status(500, "boom"),
            Answer::status(503, "down"),
            Answer::status(200, "fine"),
        ],
    );
    let id = f
        .enqueue(with(
            json!({"queue": "q", "target": {"url": ep.url("/flaky")}}),
            quick_retries(5),
        ))
        .await;
    let job = f.wait_for(id, JobState::Succeeded).await;
    let seen = ep.seen("/flaky");
    assert_eq!(seen.len(), 5);
    for (n, r) in seen.iter().enumerate() {
        assert_eq!(
            r.header("webhook-id"),
            id.to_string(),
            "stable across retries"
        );
        assert_eq!(r.header("offload-attempt"), (n + 1).to_string());
        f.verify(r);
    }
    let errors: Vec<String> = job
        .attempts
        .unwrap()
        .iter()
        .filter_map(|a| a.error.clone())
        .collect();
    assert_eq!(
        errors,
        [
            "HTTP 408: slow",
            "HTTP 429: later",
            "HTTP 500: boom",
            "HTTP 503: down"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_client_errors_fail_without_retry() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    for status in [400u16, 401, 404, 410, 422] {
        let path = format!("/e{status}");
        ep.script(&path, [Answer::status(status, "nope")]);
        let id = f
            .enqueue(with(
                json!({"queue": "q", "target": {"url": ep.url(&path)}}),
                quick_retries(5),
            ))
            .await;
        let job = f.wait_for(id, JobState::Dead).await;
        assert_eq!(job.attempt, 1, "{status}");
        assert_eq!(job.last_error.unwrap(), format!("HTTP {status}: nope"));
        assert_eq!(ep.seen(&path).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_decides_the_next_attempt() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    let in_5_minutes = std::time::SystemTime::now() + Duration::from_secs(300);
    ep.script(
        "/seconds",
        [Answer::Reply(
            503,
            vec![("retry-after", "120".into())],
            Vec::new(),
        )],
    );
    ep.script(
        "/date",
        [Answer::Reply(
            429,
            vec![("retry-after", httpdate::fmt_http_date(in_5_minutes))],
            Vec::new(),
        )],
    );
    for (path, expected) in [("/seconds", 120.0), ("/date", 300.0)] {
        let id = f
            .enqueue(with(
                json!({"queue": "q", "target": {"url": ep.url(path)}}),
                quick_retries(5),
            ))
            .await;
        let job = f.wait_for(id, JobState::Retrying).await;
        let wait = job
            .run_at
            .duration_since(job.attempts.unwrap()[0].finished_at.unwrap());
        let wait = wait.as_secs_f64();
        assert!(
            (expected - 2.0..=expected + 1.0).contains(&wait),
            "{path}: retry in {wait}s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_time_out_and_retry() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    ep.script("/slow", [Answer::Slow(Duration::from_secs(4))]);
    let id = f
        .enqueue(with(
            json!({"queue": "q", "target": {"url": ep.url("/slow"), "timeout": "1s"}}),
            quick_retries(2),
        ))
        .await;
    let job = f.wait_for(id, JobState::Succeeded).await;
    let attempts = job.attempts.unwrap();
    assert_eq!(attempts[0].error.as_deref(), Some("request timed out"));
    assert_eq!(attempts.len(), 2, "the timeout was retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_64_kib_of_a_huge_body_is_kept() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    let huge = vec![b'a'; 1 << 20];
    ep.script("/ok", [Answer::Reply(200, Vec::new(), huge.clone())]);
    ep.script("/err", [Answer::Reply(500, Vec::new(), huge)]);
    let ok = f
        .enqueue(json!({"queue": "q", "target": {"url": ep.url("/ok")}}))
        .await;
    let job = f.wait_for(ok, JobState::Succeeded).await;
    let result: Value = serde_json::from_str(job.result.unwrap().get()).unwrap();
    assert_eq!(result["body"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(result["truncated"], true);
    let err = f
        .enqueue(with(
            json!({"queue": "q", "target": {"url": ep.url("/err")}}),
            quick_retries(1),
        ))
        .await;
    let job = f.wait_for(err, JobState::Dead).await;
    let error = job.last_error.unwrap();
    assert!(error.starts_with("HTTP 500: aaaa"));
    assert_eq!(
        error.matches('a').count(),
        64 * 1024 + 1,
        "64 KiB of body (+ the note's 'a')"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    ep.script(
        "/moved",
        [Answer::Reply(
            302,
            vec![("location", ep.url("/landing"))],
            Vec::new(),
        )],
    );
    let id = f
        .enqueue(with(
            json!({"queue": "q", "target": {"url": ep.url("/moved")}}),
            quick_retries(5),
        ))
        .await;
    let job = f.wait_for(id, JobState::Dead).await;
    assert_eq!(job.attempt, 1, "a redirect is final");
    assert!(job.last_error.unwrap().contains("not followed"));
    assert!(
        ep.seen("/landing").is_empty(),
        "the redirect target saw no request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried() {
    let f = dev().await;
    // A server that reads the request and closes the connection without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                drop(socket);
            }
        }
    });
    let id = f
        .enqueue(with(
            json!({"queue": "q", "target": {"url": format!("http://{addr}/reset")}}),
            quick_retries(2),
        ))
        .await;
    let job = f.wait_for(id, JobState::Dead).await;
    assert_eq!(job.attempt, 2, "a broken connection is retried");
    assert!(job.last_error.unwrap().starts_with("connection failed"));
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_policy_refuses_internal_targets() {
    let ep = Endpoint::start().await;
    let f = fixture(push_config(AddressPolicy::default())).await;
    // Known at enqueue time: IP literals, whichever URL of the target holds them.
    for (target, field) in [
        (
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            "target.url",
        ),
        (json!({"url": "http://10.0.0.1/hook"}), "target.url"),
        (json!({"url": "http://[::1]:8080/hook"}), "target.url"),
        (json!({"url": "http://localhost:3000/hook"}), "target.url"),
        (
            json!({"url": "https://example.com/", "callback_url": "http://10.0.0.1/done"}),
            "target.callback_url",
        ),
    ] {
        let job = new_job(json!({"queue": "q", "target": target}));
        let err = f.engine.check_push(&job).unwrap_err();
        assert_eq!(err.field, field, "{target}");
        assert!(
            err.message
                .contains("refused by the outbound address policy"),
            "{err}"
        );
    }
    // Known only at delivery: a name resolving to 127.0.0.1 (and literals, had the policy changed since).
    let port = ep.addr.port();
    for url in [
        format!("http://localhost:{port}/named"),
        format!("http://127.0.0.1:{port}/literal"),
        format!("http://[::1]:{port}/v6"),
    ] {
        let job = new_job(with(
            json!({"queue": "q", "target": {"url": url}}),
            quick_retries(5),
        ));
        let id = job.id;
        f.engine.enqueue(vec![job]).await.unwrap();
        let job = f.wait_for(id, JobState::Dead).await;
        assert_eq!(job.attempt, 1, "{url}: refusals are final");
        let error = job.last_error.unwrap();
        assert!(
            error.contains("refused by the outbound address policy"),
            "{error}"
        );
        assert!(error.contains("loopback"), "{error}");
    }
    assert!(ep.seen("/named").is_empty() && ep.seen("/literal").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_arrive_signed() {
    let ep = Endpoint::start().await;
    let f = dev().await;
    ep.script("/work", [Answer::status(200, r#"{"done": 1}"#)]);
    ep.script("/broken", [Answer::status(400, "bad input")]);
    let ok = f
        .enqueue(json!({
            "queue": "orders", "payload": {"order": 7},
            "target": {"url": ep.url("/work"), "callback_url": ep.url("/done"),
                       "failure_callback_url": ep.url("/failed")}
        }))
        .await;
    let bad = f
        .enqueue(with(
            json!({
                "queue": "orders",
                "target": {"url": ep.url("/broken"), "callback_url": ep.url("/done"),
                           "failure_callback_url": ep.url("/failed")}
            }),
            quick_retries(3),
        ))
        .await;
    f.wait_for(ok, JobState::Succeeded).await;
    f.wait_for(bad, JobState::Dead).await;

    let callbacks = f
        .engine
        .list(JobListParams {
            queue: Some(CALLBACK_QUEUE.into()),
            limit: 10,
            ..JobListParams::default()
        })
        .await
        .unwrap();
    assert_eq!(callbacks.len(), 2, "callbacks are jobs, visible in the API");
    for cb in &callbacks {
        f.wait_for(cb.id, JobState::Succeeded).await;
    }
    let done = ep.seen("/done");
    assert_eq!(done.len(), 1);
    f.verify(&done[0]);
    let body: Value = serde_json::from_slice(&done[0].body).unwrap();
    assert_eq!(body["job_id"], ok.to_string());
    assert_eq!(body["state"], "succeeded");
    assert_eq!(body["result"], json!({"status": 200, "body": {"done": 1}}));
    assert_ne!(
        done[0].header("webhook-id"),
        ok.to_string(),
        "a callback is its own message"
    );
    assert_eq!(done[0].header("offload-queue"), CALLBACK_QUEUE);

    let failed = ep.seen("/failed");
    assert_eq!(failed.len(), 1);
    f.verify(&failed[0]);
    let body: Value = serde_json::from_slice(&failed[0].body).unwrap();
    assert_eq!(body["job_id"], bad.to_string());
    assert_eq!(body["state"], "dead");
    assert_eq!(body["error"], "HTTP 400: bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_does_not_hold_up_others() {
    let slow = Endpoint::start().await;
    let fast = Endpoint::start().await;
    let mut push = push_config(AddressPolicy::allow_private());
    push.per_destination = 2;
    let f = fixture(push).await;
    slow.script("/slow", (0..6).map(|_| Answer::Hold));
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(
            f.enqueue(json!({"queue": "q", "priority": 9, "target": {"url": slow.url("/slow")}}))
                .await,
        );
    }
    slow.next().await;
    slow.next().await;
    let mut quick = Vec::new();
    for _ in 0..4 {
        quick.push(
            f.enqueue(json!({"queue": "q", "target": {"url": fast.url("/fast")}}))
                .await,
        );
    }
    for id in &quick {
        f.wait_for(*id, JobState::Succeeded).await;
    }
    assert_eq!(
        slow.seen("/slow").len(),
        2,
        "the slow destination holds only its cap"
    );
    slow.release();
    for id in &held {
        f.wait_for(*id, JobState::Succeeded).await;
    }
    assert_eq!(slow.max_concurrent(), 2);
    assert!(fast.max_concurrent() <= 2);
}

/// Two servers on one PostgreSQL schema deliver to one destination: together they never have more requests in
/// flight to it than the cap (before, each server had its own cap). Needs `OFFLOAD_TEST_POSTGRES_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_share_one_destination_cap() {
    use offload_store_postgres::testing::{self, TestSchema};
    use offload_store_postgres::{PostgresOptions, PostgresStore, migrate};

    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    migrate(&url, &schema.name).await.unwrap();
    let ep = Endpoint::start().await;
    const JOBS: usize = 12;
    ep.script(
        "/slow",
        (0..JOBS).map(|_| Answer::Slow(Duration::from_millis(40))),
    );
    let mut engines = Vec::new();
    for _ in 0..2 {
        let mut push = push_config(AddressPolicy::allow_private());
        push.per_destination = 2;
        let options = PostgresOptions {
            migrate: false,
            ..PostgresOptions::new(&url).with_schema(&schema.name)
        };
        let store = PostgresStore::open(options).await.unwrap();
        let config = EngineConfig {
            // A slot freed by the other server is noticed by this poll.
            claim_poll: Duration::from_millis(100),
            push,
            ..EngineConfig::default()
        };
        let engine = Engine::new(Arc::new(store), config);
        engine.start();
        engines.push(engine);
    }
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let engine = &engines[i % 2];
        let job = new_job(json!({"queue": "q", "target": {"url": ep.url("/slow")}}));
        ids.push(job.id);
        engine.enqueue(vec![job]).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in ids {
        loop {
            let job = engines[0].get(id).await.unwrap().unwrap();
            if job.state == JobState::Succeeded {
                break;
            }
            assert!(Instant::now() < deadline, "job {id} stayed {}", job.state);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(ep.seen("/slow").len(), JOBS);
    assert_eq!(
        ep.max_concurrent(),
        2,
        "the two servers together held the destination at its cap of 2"
    );
    for engine in &engines {
        engine.shutdown().await;
    }
}
