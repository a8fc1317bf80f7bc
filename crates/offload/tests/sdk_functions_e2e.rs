//! Durable functions through the Rust SDK against the real server binary on 127.0.0.1 (SQLite in a temporary
//! directory): steps that never run twice, sleeps, waits for events, invokes, parallel steps, and the same
//! function served over pull and over push.
//!
//! Tests wait for run states the server reports (polling the API), never for fixed times.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use offload_core::function::run::{RunId, RunState};
use offload_sdk::function::{BoxError, CallOutcome, Ctx, EventSpec, Function, FunctionSpec, spec};
use offload_sdk::push::Verifier;
use offload_sdk::{Backoff, Client, DurationSpec, RunView, RunsQuery, Worker, WorkerHandle};
use serde_json::{Value, json};
use support::Server;

/// Longest any single wait in these tests may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(30);

struct World {
    server: Server,
    client: Client,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let client = Client::new(&server.url).unwrap();
    World {
        server,
        client,
        _dir: dir,
    }
}

/// A definition with quick retries, so retries take milliseconds.
fn quick(id: &str, event: &str) -> FunctionSpec {
    let mut spec = spec(id, event);
    spec.retries = Some(3);
    spec.backoff = Some(Backoff {
        base: DurationSpec(Duration::from_millis(50)),
        cap: DurationSpec(Duration::from_millis(200)),
        jitter: 0.0,
    });
    spec.timeout = Some(DurationSpec(Duration::from_secs(10)));
    spec
}

/// Registers the functions and serves them from one pull worker.
async fn serve(client: &Client, functions: &[Function]) -> WorkerHandle {
    let mut builder = Worker::builder(client.clone()).claim_wait(Duration::from_millis(500));
    for f in functions {
        client.put_function(f.id(), f.spec()).await.unwrap();
        builder = builder.queue(f.queue(), 4).function(f.clone());
    }
    builder.build().unwrap().start()
}

/// Sends one event and returns the one run it started for `function`.
async fn start(client: &Client, event: EventSpec, function: &str) -> RunId {
    let sent = client.send_event(&event).await.unwrap();
    let runs = client
        .runs(&RunsQuery {
            function: Some(function.to_owned()),
            event: sent.ids.first().cloned(),
            ..RunsQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run of {function} per event: {runs:?}");
    runs[0].id
}

/// Waits until the run is in `state`.
async fn until_state(client: &Client, run: RunId, state: RunState) -> RunView {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view = client.run(run).await.unwrap();
        if view.state == state {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} never became {state:?}: {view:?}"
        );
        assert!(
            !view.state.is_final(),
            "run {run} ended {:?} instead of {state:?}: {view:?}",
            view.state
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[derive(Debug)]
struct SmtpDown;

impl std::fmt::Display for SmtpDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the mail server is down")
    }
}

impl std::error::Error for SmtpDown {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_retries_alone_and_the_steps_before_it_run_once() {
    let w = world();
    let counts: Arc<[AtomicU32; 3]> = Arc::default();
    let c = counts.clone();
    let f = Function::new(quick("receipt", "app/order.paid"), move |ctx: Ctx| {
        let c = c.clone();
        async move {
            let order = ctx.event.data["order"].as_u64().unwrap_or(0);
            let charge: String = ctx
                .step
                .run("charge", || async {
                    c[0].fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(format!("ch_{order}"))
                })
                .await?;
            ctx.step
                .run("send", || async {
                    if c[1].fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(SmtpDown)
                    } else {
                        Ok(())
                    }
                })
                .await?;
            ctx.step
                .run("log", || async {
                    c[2].fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                })
                .await?;
            Ok(json!({"charge": charge}))
        }
    })
    .unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&f)).await;
    let run = start(
        &w.client,
        EventSpec::new("app/order.paid", json!({"order": 42})),
        "receipt",
    )
    .await;
    let done = until_state(&w.client, run, RunState::Succeeded).await;
    assert_eq!(done.output, Some(json!({"charge": "ch_42"})));
    let ran: Vec<u32> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(ran, [1, 3, 1], "charge once, send three times, log once");

    let steps = w.client.run_steps(run).await.unwrap();
    let send = steps.iter().find(|s| s.id == "send").expect("send step");
    assert_eq!(send.failed_attempts.len(), 2, "{send:?}");
    assert_eq!(send.failed_attempts[0].error.name, "SmtpDown");
    assert!(send.result.is_some(), "{send:?}");
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_resumes_the_run_after_it() {
    let w = world();
    let f = Function::new(quick("napper", "app/nap"), |ctx: Ctx| async move {
        let started: String = ctx
            .step
            .run("start", || async {
                Ok::<_, BoxError>(offload_sdk::Timestamp::now().to_string())
            })
            .await?;
        ctx.step.sleep("nap", Duration::from_secs(2)).await;
        Ok(started)
    })
    .unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&f)).await;
    let run = start(&w.client, EventSpec::new("app/nap", json!({})), "napper").await;
    until_state(&w.client, run, RunState::Sleeping).await;
    let done = until_state(&w.client, run, RunState::Succeeded).await;
    let started: offload_sdk::Timestamp = done.output.unwrap().as_str().unwrap().parse().unwrap();
    let ended = done.ended_at.expect("ended_at");
    assert!(
        ended.duration_since(started).as_secs_f64() >= 1.9,
        "slept from {started} to {ended}"
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_event_takes_the_matching_event_or_times_out_to_none() {
    let w = world();
    let f = Function::new(quick("upsell", "app/user.signup"), |ctx: Ctx| async move {
        let timeout = ctx.event.data["timeout_ms"].as_u64().unwrap_or(30_000);
        let got = ctx
            .step
            .wait_for_event::<Value>(
                "upgrade",
                "app/user.upgraded",
                Some("data.user_id"),
                Duration::from_millis(timeout),
            )
            .await?;
        Ok(got.map(|e| e.data))
    })
    .unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&f)).await;

    let run = start(
        &w.client,
        EventSpec::new("app/user.signup", json!({"user_id": 1})),
        "upsell",
    )
    .await;
    until_state(&w.client, run, RunState::Waiting).await;
    w.client
        .send_event(&EventSpec::new(
            "app/user.upgraded",
            json!({"user_id": 2, "plan": "team"}),
        ))
        .await
        .unwrap();
    w.client
        .send_event(&EventSpec::new(
            "app/user.upgraded",
            json!({"user_id": 1, "plan": "pro"}),
        ))
        .await
        .unwrap();
    let done = until_state(&w.client, run, RunState::Succeeded).await;
    assert_eq!(done.output, Some(json!({"user_id": 1, "plan": "pro"})));

    let lonely = start(
        &w.client,
        EventSpec::new("app/user.signup", json!({"user_id": 3, "timeout_ms": 500})),
        "upsell",
    )
    .await;
    let done = until_state(&w.client, lonely, RunState::Succeeded).await;
    // The step resolved to `None` after its timeout: the run's output is `null`.
    assert_eq!(done.output.unwrap_or(Value::Null), Value::Null);
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_returns_the_child_runs_output() {
    let w = world();
    let child = Function::new(quick("double", "app/never"), |ctx: Ctx| async move {
        let n = ctx.event.data["n"].as_u64().unwrap_or(0);
        Ok(n * 2)
    })
    .unwrap();
    let parent = Function::new(quick("parent", "app/go"), |ctx: Ctx| async move {
        let doubled: u64 = ctx
            .step
            .invoke(
                "double",
                "double",
                &json!({"n": 21}),
                Some(Duration::from_secs(20)),
            )
            .await?;
        let missing = ctx
            .step
            .invoke::<u64, _>("missing", "no-such-function", &json!({}), None)
            .await
            .map_err(|e| e.name);
        Ok(json!({"doubled": doubled, "missing": missing}))
    })
    .unwrap();
    let worker = serve(&w.client, &[child, parent]).await;
    let run = start(&w.client, EventSpec::new("app/go", json!({})), "parent").await;
    let done = until_state(&w.client, run, RunState::Succeeded).await;
    assert_eq!(
        done.output,
        Some(json!({"doubled": 42, "missing": {"Err": "FunctionNotFound"}}))
    );
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_steps_each_run_once() {
    let w = world();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let f = Function::new(quick("fan-out", "app/fan"), move |ctx: Ctx| {
        let r = r.clone();
        async move {
            let mut group = ctx.step.parallel::<u32>();
            for i in 1..=4u32 {
                let r = r.clone();
                group = group.run("part", move || async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(i)
                });
            }
            let parts: Vec<u32> = group.join().await.into_iter().collect::<Result<_, _>>()?;
            Ok(parts)
        }
    })
    .unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&f)).await;
    let run = start(&w.client, EventSpec::new("app/fan", json!({})), "fan-out").await;
    let done = until_state(&w.client, run, RunState::Succeeded).await;
    assert_eq!(done.output, Some(json!([1, 2, 3, 4])));
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// The code shared by the pull and the push function: a step, a sleep, a step.
fn greeting(spec: FunctionSpec, ran: Arc<AtomicU32>) -> Function {
    Function::new(spec, move |ctx: Ctx| {
        let ran = ran.clone();
        async move {
            let name = ctx.event.data["name"]
                .as_str()
                .unwrap_or("nobody")
                .to_owned();
            let hello: String = ctx
                .step
                .run("hello", || async {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(format!("hello {name}"))
                })
                .await?;
            ctx.step.sleep("pause", Duration::from_millis(200)).await;
            let shout: String = ctx
                .step
                .run("shout", || async {
                    Ok::<_, BoxError>(hello.to_uppercase())
                })
                .await?;
            Ok(shout)
        }
    })
    .unwrap()
}

#[derive(Clone)]
struct Endpoint {
    verifier: Verifier,
    function: Function,
}

/// A push endpoint written with the SDK's verifier and `Function::call`.
async fn endpoint(
    State(ep): State<Endpoint>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if let Err(e) = ep.verifier.verify(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, e.to_string());
    }
    let call = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    match ep.function.call(call).await {
        CallOutcome::Response(body) => (StatusCode::OK, body.to_string()),
        CallOutcome::Failed { message, .. } => (StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_function_runs_over_pull_and_over_push() {
    offload_engine::push::install_crypto_provider();
    let w = world();
    let secret = std::process::Command::new(support::bin())
        .args(["push", "secret", "--database"])
        .arg(&w.server.db)
        .output()
        .unwrap();
    assert!(
        secret.status.success(),
        "{}",
        String::from_utf8_lossy(&secret.stderr)
    );
    let verifier = Verifier::new(String::from_utf8(secret.stdout).unwrap().trim()).unwrap();

    let pulled = Arc::new(AtomicU32::new(0));
    let pushed = Arc::new(AtomicU32::new(0));
    let pull = greeting(quick("greet-pull", "app/greet"), pulled.clone());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/functions", listener.local_addr().unwrap());
    let mut push_spec = quick("greet-push", "app/greet");
    push_spec.target = Some(serde_json::from_value(json!({"url": url})).unwrap());
    let push = greeting(push_spec, pushed.clone());
    let app = axum::Router::new().fallback(endpoint).with_state(Endpoint {
        verifier,
        function: push.clone(),
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    w.client.put_function(push.id(), push.spec()).await.unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&pull)).await;

    let sent = w
        .client
        .send_event(&EventSpec::new("app/greet", json!({"name": "ada"})))
        .await
        .unwrap();
    assert_eq!(sent.runs[0].len(), 2, "one run per function: {sent:?}");
    for function in ["greet-pull", "greet-push"] {
        let runs = w
            .client
            .runs(&RunsQuery {
                function: Some(function.to_owned()),
                ..RunsQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(runs.len(), 1, "{function}: {runs:?}");
        let done = until_state(&w.client, runs[0].id, RunState::Succeeded).await;
        assert_eq!(done.output, Some(json!("HELLO ADA")), "{function}");
    }
    assert_eq!(pulled.load(Ordering::SeqCst), 1);
    assert_eq!(pushed.load(Ordering::SeqCst), 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_events_and_manages_runs() {
    let w = world();
    let f = Function::new(quick("sleepy", "app/sleepy"), |ctx: Ctx| async move {
        ctx.step.sleep("long", Duration::from_secs(3600)).await;
        Ok(())
    })
    .unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&f)).await;
    let cli = |args: &[&str]| tokio::task::block_in_place(|| w.server.cli(args));
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let sent = cli(&[
        "event",
        "send",
        "app/sleepy",
        "--data",
        r#"{"k": 1}"#,
        "--id",
        "e-1",
    ]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(text(&sent).contains("started 1 run(s)"), "{}", text(&sent));
    let again = cli(&["event", "send", "app/sleepy", "--id", "e-1"]);
    assert!(
        text(&again).starts_with("duplicate of event"),
        "{}",
        text(&again)
    );
    let bad = cli(&["event", "send", "app/sleepy", "--data", "[1]"]);
    assert_eq!(bad.status.code(), Some(2));

    let listed = cli(&["function", "ls"]);
    assert!(text(&listed).contains("sleepy"), "{}", text(&listed));
    let got = tokio::task::block_in_place(|| w.server.cli_json(&["function", "get", "sleepy"]));
    assert_eq!(got["id"], "sleepy");

    let runs =
        tokio::task::block_in_place(|| w.server.cli_json(&["run", "ls", "--function", "sleepy"]));
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    until_state(&w.client, id.parse().unwrap(), RunState::Sleeping).await;
    let shown = cli(&["run", "get", &id]);
    assert!(text(&shown).contains("state: sleeping"), "{}", text(&shown));
    assert!(text(&shown).contains("long"), "{}", text(&shown));
    let cancelled = cli(&["run", "cancel", &id]);
    assert!(
        text(&cancelled).contains("now cancelled"),
        "{}",
        text(&cancelled)
    );
    let retried = cli(&["run", "retry", &id]);
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    let missing = cli(&["run", "get", "01900000-0000-7000-8000-000000000001"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stderr).lines().count(), 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_run_survives_a_server_killed_during_its_sleep() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let addr = support::free_loopback_addr();
    let mut server = Server::start_on(&db, &addr);
    let client = Client::new(&server.url).unwrap();
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    let f = Function::new(quick("nap-through", "app/nap"), move |ctx: Ctx| {
        let r = r.clone();
        async move {
            ctx.step
                .run("before", || async {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                })
                .await?;
            ctx.step.sleep("nap", Duration::from_secs(2)).await;
            Ok("rested")
        }
    })
    .unwrap();
    let worker = serve(&client, std::slice::from_ref(&f)).await;
    let run = start(&client, EventSpec::new("app/nap", json!({})), "nap-through").await;
    until_state(&client, run, RunState::Sleeping).await;

    server.kill_hard();
    let server = Server::start_on(&db, &addr);
    let done = until_state(&client, run, RunState::Succeeded).await;
    assert_eq!(done.output, Some(json!("rested")));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the step before the sleep ran once"
    );
    worker.shutdown(Duration::from_secs(5)).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_cancels_the_matching_sleeping_run_only() {
    let w = world();
    let mut spec = quick("trial", "app/trial.started");
    spec.cancel_on = vec![offload_sdk::function::CancelOnSpec {
        event: "app/trial.converted".into(),
        match_path: Some("data.user_id".into()),
    }];
    let f = Function::new(spec, |ctx: Ctx| async move {
        ctx.step.sleep("wait", Duration::from_secs(3600)).await;
        Ok(())
    })
    .unwrap();
    let worker = serve(&w.client, std::slice::from_ref(&f)).await;
    let one = start(
        &w.client,
        EventSpec::new("app/trial.started", json!({"user_id": 1})),
        "trial",
    )
    .await;
    let two = start(
        &w.client,
        EventSpec::new("app/trial.started", json!({"user_id": 2})),
        "trial",
    )
    .await;
    until_state(&w.client, one, RunState::Sleeping).await;
    until_state(&w.client, two, RunState::Sleeping).await;
    w.client
        .send_event(&EventSpec::new(
            "app/trial.converted",
            json!({"user_id": 1}),
        ))
        .await
        .unwrap();
    assert_eq!(w.client.run(one).await.unwrap().state, RunState::Cancelled);
    assert_eq!(w.client.run(two).await.unwrap().state, RunState::Sleeping);
    worker.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_syncs_its_functions_and_events_show_their_runs() {
    let w = world();
    let code = |ctx: Ctx| async move { Ok(ctx.event.data) };
    let a = Function::new(quick("shop-a", "app/shop"), code).unwrap();
    let b = Function::new(quick("shop-b", "app/shop"), code).unwrap();
    let synced = w
        .client
        .sync_app("shop", &[a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(synced.created, ["shop-a", "shop-b"]);
    let again = w.client.sync_app("shop", &[a.clone(), b]).await.unwrap();
    assert_eq!(again.unchanged, ["shop-a", "shop-b"]);
    let fewer = w.client.sync_app("shop", &[a]).await.unwrap();
    assert_eq!(fewer.removed, ["shop-b"]);
    let ids: Vec<String> = w
        .client
        .functions()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, ["shop-a"]);
    assert_eq!(
        w.client
            .get_function("shop-a")
            .await
            .unwrap()
            .app
            .as_deref(),
        Some("shop")
    );

    let sent = w
        .client
        .send_events(&[
            EventSpec::new("app/shop", json!({"n": 1})).id("s-1"),
            EventSpec::new("app/other", json!({})),
        ])
        .await
        .unwrap();
    assert_eq!(sent.ids.len(), 2);
    assert_eq!(sent.runs[0].len(), 1, "only shop-a is left: {sent:?}");
    assert!(sent.runs[1].is_empty());
    let event = w.client.get_event(&sent.ids[0]).await.unwrap();
    assert_eq!((event.name.as_str(), event.runs.len()), ("app/shop", 1));
    assert_eq!(event.user_id.as_deref(), Some("s-1"));
    let listed = w.client.events(Some("app/shop"), Some(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    let duplicate = w
        .client
        .send_event(&EventSpec::new("app/shop", json!({"n": 2})).id("s-1"))
        .await
        .unwrap();
    assert!(duplicate.duplicate);
    assert_eq!(duplicate.ids, [sent.ids[0].clone()]);

    w.client.delete_function("shop-a").await.unwrap();
    assert!(
        w.client
            .get_function("shop-a")
            .await
            .unwrap_err()
            .is_not_found()
    );
}
