//! Durable functions are exact with several servers on one PostgreSQL database: three stores (as three servers
//! would have) share one schema and race each other. Fan-out starts one run per function per event whichever
//! server took the event, and a duplicate starts nothing; a step reported twice at once is recorded once; a wait
//! that two matching events reach at once is resolved once. Real PostgreSQL only; needs
//! `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use offload_core::function::definition::FunctionSpec;
use offload_core::function::event::{EventRequest, NewEvent};
use offload_core::function::protocol::{Json, RanOutcome, RanStep, StepResult};
use offload_core::function::record::RecordLimits;
use offload_core::function::run::{RunId, RunState};
use offload_core::{ClaimedJob, ManualClock, SignedDuration, Timestamp};
use offload_store::{
    EventSendParams, EventSent, Finish, FinishItem, FunctionPutParams, JobClaimParams,
    JobFinishParams, JobListParams, RUN_TAG, RunListParams, RunRecordStepsParams, RunWakeParams,
    Store, StoreError,
};
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Three stores on one fresh schema, like three servers on one database.
async fn servers(url: &str) -> (TestSchema, Vec<Arc<PostgresStore>>) {
    servers_with(url, None).await
}

/// Three stores on one fresh schema, sharing `clock` when given (else each reads the database's).
async fn servers_with(
    url: &str,
    clock: Option<Arc<ManualClock>>,
) -> (TestSchema, Vec<Arc<PostgresStore>>) {
    let schema = TestSchema::new(url);
    let mut stores = Vec::new();
    for _ in 0..3 {
        let mut options = PostgresOptions::new(url).with_schema(&schema.name);
        if let Some(clock) = &clock {
            options = options.with_clock(clock.clone());
        }
        stores.push(Arc::new(PostgresStore::open(options).await.expect("open")));
    }
    (schema, stores)
}

async fn put(store: &PostgresStore, spec: Value) {
    let function = serde_json::from_value::<FunctionSpec>(spec.clone())
        .unwrap()
        .validate(None)
        .unwrap();
    store
        .function_put(FunctionPutParams {
            function,
            spec,
            app: None,
        })
        .await
        .expect("function_put");
}

fn event(now: Timestamp, name: &str, data: Value, id: Option<String>) -> NewEvent {
    EventRequest {
        name: name.into(),
        data: Some(Json::from_text(data.to_string()).unwrap()),
        id,
        ts: None,
    }
    .validate(now, 1 << 20)
    .unwrap()
}

async fn send(store: &PostgresStore, events: Vec<NewEvent>) -> Vec<EventSent> {
    store
        .event_send(EventSendParams {
            events,
            limits: RecordLimits::default(),
        })
        .await
        .expect("event_send")
        .events
}

async fn claim(store: &PostgresStore, queue: &str, max_jobs: u32) -> Vec<ClaimedJob> {
    store
        .job_claim(JobClaimParams {
            queue: queue.into(),
            worker_id: "w".into(),
            max_jobs,
        })
        .await
        .expect("job_claim")
}

fn complete(call: &ClaimedJob, response: &Value) -> JobFinishParams {
    JobFinishParams {
        items: vec![FinishItem {
            id: call.id,
            lease_token: call.lease_token,
            finish: Finish::Complete {
                result: Some(
                    serde_json::value::RawValue::from_string(response.to_string()).unwrap(),
                ),
            },
        }],
    }
}

fn request(call: &ClaimedJob) -> Value {
    serde_json::from_str(call.payload.get()).unwrap()
}

fn run_of(call: &ClaimedJob) -> RunId {
    request(call)["run_id"].as_str().unwrap().parse().unwrap()
}

async fn runs_of(store: &PostgresStore, function: &str) -> Vec<RunId> {
    store
        .run_list(RunListParams {
            function_id: Some(function.into()),
            limit: 100_000,
            ..RunListParams::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// 1,000 events sent concurrently through three servers, 100 of them sent a second time (same id) through
/// another server at the same moment, two functions subscribed: exactly 2,000 runs, two per event, each with
/// one call; every duplicate answers with the first event and its runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_through_three_servers_start_exactly_two_thousand_runs() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "receipt", "triggers": [{"event": "app/order.paid"}]}),
    )
    .await;
    put(
        &stores[1],
        json!({"id": "audit", "triggers": [{"event": "app/order.paid"}]}),
    )
    .await;
    let now = stores[0].now();

    // Each server sends its share in batches of 10; batches of resends of every tenth id go through the next
    // server, interleaved with the originals.
    let mut sends = JoinSet::new();
    for batch in 0..100 {
        let ids: Vec<usize> = (batch * 10..batch * 10 + 10).collect();
        let store = stores[batch % 3].clone();
        let events: Vec<NewEvent> = ids
            .iter()
            .map(|i| {
                event(
                    now,
                    "app/order.paid",
                    json!({"order": i}),
                    Some(format!("order-{i}")),
                )
            })
            .collect();
        sends.spawn(async move { send(&store, events).await });
        let again = stores[(batch + 1) % 3].clone();
        let dup = batch * 10;
        let events = vec![event(
            now,
            "app/order.paid",
            json!({"order": dup}),
            Some(format!("order-{dup}")),
        )];
        sends.spawn(async move { send(&again, events).await });
    }
    let mut firsts = BTreeMap::new();
    let mut duplicates = Vec::new();
    while let Some(sent) = sends.join_next().await {
        for e in sent.unwrap() {
            if e.duplicate {
                duplicates.push(e);
            } else {
                assert_eq!(e.runs.len(), 2, "one run per subscribed function");
                assert!(firsts.insert(e.id, e.runs.clone()).is_none());
            }
        }
    }
    assert_eq!(firsts.len(), 1000, "each id stored once");
    assert_eq!(duplicates.len(), 100, "each resend is a duplicate");
    for d in &duplicates {
        assert_eq!(
            Some(&d.runs),
            firsts.get(&d.id),
            "a duplicate answers the first event's runs"
        );
    }

    let receipts = runs_of(&stores[2], "receipt").await;
    let audits = runs_of(&stores[2], "audit").await;
    assert_eq!(receipts.len() + audits.len(), 2000, "exactly 2,000 runs");
    let all: BTreeSet<RunId> = firsts.values().flatten().copied().collect();
    assert_eq!(all.len(), 2000);
    assert!(receipts.iter().chain(&audits).all(|r| all.contains(r)));

    // One call per run, whichever server claims it.
    let mut called = BTreeSet::new();
    for (i, queue) in ["receipt", "audit"].into_iter().enumerate() {
        loop {
            let calls = claim(&stores[i], queue, 500).await;
            if calls.is_empty() {
                break;
            }
            for call in &calls {
                assert!(called.insert(run_of(call)), "a second call for one run");
            }
        }
    }
    assert_eq!(called.len(), 2000);
}

/// The same step reported at once through three servers (a completion sent twice after a timeout, plus a
/// mid-lease record) is recorded once, and the run gets exactly one next call carrying it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_reported_through_three_servers_at_once_is_recorded_once() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "charge", "triggers": [{"event": "app/checkout"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..50)
        .map(|i| event(now, "app/checkout", json!({"cart": i}), None))
        .collect();
    let sent = send(&stores[0], events).await;
    assert!(sent.iter().all(|e| e.runs.len() == 1));
    let calls = claim(&stores[1], "charge", 100).await;
    assert_eq!(calls.len(), 50);

    let mut races = JoinSet::new();
    for call in calls {
        let stores = stores.clone();
        races.spawn(async move {
            let response =
                json!({"steps": [{"id": "charge", "op": "run", "data": {"by": "completion"}}]});
            let a = {
                let (s, p) = (stores[0].clone(), complete(&call, &response));
                tokio::spawn(async move { s.job_finish(p).await })
            };
            let b = {
                let (s, p) = (stores[1].clone(), complete(&call, &response));
                tokio::spawn(async move { s.job_finish(p).await })
            };
            let c = {
                let s = stores[2].clone();
                let p = RunRecordStepsParams {
                    run_id: run_of(&call),
                    job_id: call.id,
                    lease_token: call.lease_token,
                    steps: vec![RanStep {
                        id: "charge".into(),
                        outcome: RanOutcome::Data(Some(
                            Json::from_text(r#"{"by":"record"}"#).unwrap(),
                        )),
                    }],
                    limits: RecordLimits::default(),
                };
                tokio::spawn(async move { s.run_record_steps(p).await })
            };
            let a = a.await.unwrap().unwrap().remove(0);
            let b = b.await.unwrap().unwrap().remove(0);
            let c = c.await.unwrap();
            (run_of(&call), a, b, c)
        });
    }
    let mut runs = Vec::new();
    while let Some(result) = races.join_next().await {
        let (run, a, b, c) = result.unwrap();
        let accepted = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 1, "one completion ends the attempt: {a:?} {b:?}");
        assert!(
            [&a, &b]
                .iter()
                .any(|r| matches!(r, Err(StoreError::LeaseMismatch))),
            "the other is refused"
        );
        assert!(
            matches!(c, Ok(_) | Err(StoreError::LeaseMismatch)),
            "a record within the lease or refused after it: {c:?}"
        );
        runs.push(run);
    }

    for run in runs {
        let steps = stores[0].run_steps(run).await.unwrap();
        assert_eq!(steps.len(), 1, "the step is recorded once");
        assert!(steps[0].failed_attempts.is_empty());
        let Some(StepResult::Data(recorded)) = &steps[0].result else {
            panic!("the step has its data: {steps:?}");
        };
        assert_eq!(stores[1].run_get(run).await.unwrap().unwrap().steps, 1);
        // The run has exactly one call in flight, carrying the record: the next call when the completion was
        // applied first, else the call itself (a completion repeating only recorded steps is refused, and its
        // call retries with the recorded step in its payload).
        let jobs = stores[2]
            .job_list(JobListParams {
                tag: Some((RUN_TAG.into(), run.to_string())),
                limit: 10,
                ..JobListParams::default()
            })
            .await
            .unwrap();
        let pending: Vec<_> = jobs.iter().filter(|j| !j.state.is_finished()).collect();
        assert_eq!(pending.len(), 1, "one call in flight: {jobs:?}");
        let payload: Value = serde_json::from_str(pending[0].payload.get()).unwrap();
        let carried = &payload["steps"]["charge"]["data"];
        let recorded: Value = serde_json::from_str(recorded.get()).unwrap();
        assert_eq!(carried, &recorded, "the call carries the one record");
        assert_eq!(payload["steps"].as_object().unwrap().len(), 1);
    }
}

/// Three parallel steps whose calls complete at once through three servers: each recorded once, and the run
/// continues with exactly one call once all are in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_steps_completed_through_three_servers_continue_once() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "fan", "triggers": [{"event": "app/fan"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..20)
        .map(|i| event(now, "app/fan", json!({"n": i}), None))
        .collect();
    send(&stores[1], events).await;
    let plan = json!({"steps": [{"id": "p1", "op": "plan_run"}, {"id": "p2", "op": "plan_run"},
        {"id": "p3", "op": "plan_run"}]});
    for call in claim(&stores[0], "fan", 100).await {
        stores[0].job_finish(complete(&call, &plan)).await.unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let calls = claim(&stores[1], "fan", 100).await;
    assert_eq!(calls.len(), 60, "one call per planned step");
    let mut finishes = JoinSet::new();
    for (i, call) in calls.into_iter().enumerate() {
        let store = stores[i % 3].clone();
        finishes.spawn(async move {
            let step = request(&call)["run_step"].as_str().unwrap().to_owned();
            let response = json!({"steps": [{"id": step, "op": "run", "data": i}]});
            store
                .job_finish(complete(&call, &response))
                .await
                .unwrap()
                .remove(0)
        });
    }
    while let Some(done) = finishes.join_next().await {
        done.unwrap().expect("each parallel call completes");
    }
    let next = claim(&stores[2], "fan", 100).await;
    assert_eq!(next.len(), 20, "one call per run once every step is in");
    for call in &next {
        let req = request(call);
        assert!(req.get("run_step").is_none());
        let steps: BTreeSet<&str> = req["steps"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(steps, BTreeSet::from(["p1", "p2", "p3"]));
    }
}

/// Calls of many runs in one queue completed at once through three servers, many per request (each request's
/// ends are one transaction that enqueues a next call per run): every completion is accepted at once, none is
/// refused as unavailable after deadlocks on the queue's counts, and every run goes on with one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_completions_in_one_queue_through_three_servers_never_deadlock() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "steps", "triggers": [{"event": "app/steps"}]}),
    )
    .await;
    const RUNS: usize = 480;
    const PER_REQUEST: usize = 40;
    let now = stores[0].now();
    let events = (0..RUNS)
        .map(|i| event(now, "app/steps", json!({"n": i}), None))
        .collect();
    send(&stores[1], events).await;
    for round in 0..3 {
        let mut calls = Vec::new();
        while calls.len() < RUNS {
            let got = claim(&stores[round % 3], "steps", 500).await;
            assert!(!got.is_empty(), "every run has its call in round {round}");
            calls.extend(got);
        }
        let mut finishes = JoinSet::new();
        for (i, chunk) in calls.chunks(PER_REQUEST).enumerate() {
            let store = stores[i % 3].clone();
            let response =
                json!({"steps": [{"id": format!("s{round}"), "op": "run", "data": round}]});
            let items = chunk
                .iter()
                .flat_map(|call| complete(call, &response).items)
                .collect();
            finishes.spawn(async move { store.job_finish(JobFinishParams { items }).await });
        }
        while let Some(done) = finishes.join_next().await {
            let answers = done
                .unwrap()
                .expect("a group of completions is never refused");
            for answer in answers {
                answer.expect("each completion is accepted");
            }
        }
    }
    let mut next = Vec::new();
    loop {
        let got = claim(&stores[0], "steps", 500).await;
        if got.is_empty() {
            break;
        }
        next.extend(got);
    }
    assert_eq!(next.len(), RUNS, "one call per run after the last round");
    for call in &next {
        assert_eq!(request(call)["steps"].as_object().unwrap().len(), 3);
    }
}

/// A waiting step that two matching events reach at once, through two servers, is resolved by one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_reached_by_two_events_through_two_servers_is_resolved_once() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "follow", "triggers": [{"event": "app/signup"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..50)
        .map(|i| event(now, "app/signup", json!({"user": i}), None))
        .collect();
    send(&stores[0], events).await;
    let wait = json!({"steps": [{"id": "upgrade", "op": "wait_for_event", "event": "app/upgraded",
        "match": "data.user", "timeout": "1h"}]});
    for call in claim(&stores[1], "follow", 100).await {
        stores[1].job_finish(complete(&call, &wait)).await.unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let waiting = stores[2]
        .run_list(RunListParams {
            state: Some(RunState::Waiting),
            limit: 100,
            ..RunListParams::default()
        })
        .await
        .unwrap();
    assert_eq!(waiting.len(), 50);

    let mut sends = JoinSet::new();
    for user in 0..50 {
        for (s, via) in [(0, "a"), (2, "b")] {
            let store = stores[s].clone();
            let e = event(now, "app/upgraded", json!({"user": user, "via": via}), None);
            sends.spawn(async move { send(&store, vec![e]).await.remove(0).resolved_waits });
        }
    }
    let mut resolved = 0;
    while let Some(n) = sends.join_next().await {
        resolved += n.unwrap();
    }
    assert_eq!(
        resolved, 50,
        "each wait resolved by exactly one of its two events"
    );
    let next = claim(&stores[1], "follow", 200).await;
    assert_eq!(next.len(), 50, "one next call per run");
    for call in &next {
        let got = &request(call)["steps"]["upgrade"]["data"];
        assert_eq!(got["name"], json!("app/upgraded"));
        assert!(got["data"]["via"].is_string());
        let steps = stores[0].run_steps(run_of(call)).await.unwrap();
        assert_eq!(steps.len(), 1);
        assert!(steps[0].result.is_some());
    }
}

/// Waits whose timeout passed, woken by three servers at once: each step resolves to `null` once and each run
/// gets one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_woken_by_three_servers_at_once_resolve_once() {
    let Some(url) = testing::url() else { return };
    let clock = Arc::new(ManualClock::new("2026-12-03T10:00:00Z".parse().unwrap()));
    let (_schema, stores) = servers_with(&url, Some(clock.clone())).await;
    put(
        &stores[0],
        json!({"id": "remind", "triggers": [{"event": "app/trial"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..60)
        .map(|i| event(now, "app/trial", json!({"user": i}), None))
        .collect();
    send(&stores[0], events).await;
    let wait = json!({"steps": [{"id": "paid", "op": "wait_for_event", "event": "app/paid",
        "match": "data.user", "timeout": "1m"}]});
    for call in claim(&stores[1], "remind", 100).await {
        stores[1].job_finish(complete(&call, &wait)).await.unwrap()[0]
            .as_ref()
            .unwrap();
    }
    clock.advance(SignedDuration::from_secs(61));
    let mut wakers = JoinSet::new();
    for store in &stores {
        let store = store.clone();
        wakers.spawn(async move {
            let mut woken = 0;
            loop {
                let report = store
                    .run_wake_due(RunWakeParams { limit: 7 })
                    .await
                    .unwrap();
                woken += report.woken;
                // Timeouts another server is resolving right now stay pending until it commits.
                if report.woken == 0 && report.next_due_at.is_none() {
                    return woken;
                }
                if report.woken == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let mut woken = 0;
    while let Some(n) = wakers.join_next().await {
        woken += n.unwrap();
    }
    assert_eq!(woken, 60, "each timeout resolved once");
    let next = claim(&stores[2], "remind", 200).await;
    assert_eq!(next.len(), 60, "one call per run");
    for call in &next {
        assert_eq!(request(call)["steps"]["paid"], json!({"data": null}));
    }
}

/// A run cancelled through one server while its call completes through another: whichever comes first, the run
/// ends cancelled and no call of it is left to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_a_completion_leaves_no_call() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "ship", "triggers": [{"event": "app/order"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..40)
        .map(|i| event(now, "app/order", json!({"order": i}), None))
        .collect();
    send(&stores[0], events).await;
    let calls = claim(&stores[1], "ship", 100).await;
    assert_eq!(calls.len(), 40);
    let mut races = JoinSet::new();
    for call in calls {
        let (a, b) = (stores[1].clone(), stores[2].clone());
        races.spawn(async move {
            let run = run_of(&call);
            let response = json!({"steps": [{"id": "label", "op": "run", "data": "ok"}]});
            let done = tokio::spawn(async move { a.job_finish(complete(&call, &response)).await });
            let cancelled = b.run_cancel(run).await.expect("a live run is cancelled");
            assert_eq!(cancelled.state, RunState::Cancelled);
            done.await
                .unwrap()
                .unwrap()
                .remove(0)
                .expect("the completion is accepted");
            run
        });
    }
    let mut runs = Vec::new();
    while let Some(run) = races.join_next().await {
        runs.push(run.unwrap());
    }
    assert!(
        claim(&stores[0], "ship", 100).await.is_empty(),
        "no call left"
    );
    for run in runs {
        let r = stores[0].run_get(run).await.unwrap().unwrap();
        assert_eq!(r.state, RunState::Cancelled);
        let jobs = stores[2]
            .job_list(JobListParams {
                tag: Some((RUN_TAG.into(), run.to_string())),
                limit: 10,
                ..JobListParams::default()
            })
            .await
            .unwrap();
        assert!(jobs.iter().all(|j| j.state.is_finished()), "{jobs:?}");
    }
}

/// A wait for any event of a name, reached by events sent at once through three servers: each waiting run is
/// resolved by exactly one event, whichever it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_any_event_are_each_resolved_once() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "gate", "triggers": [{"event": "app/queued"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..30)
        .map(|i| event(now, "app/queued", json!({"n": i}), None))
        .collect();
    send(&stores[0], events).await;
    let wait = json!({"steps": [{"id": "open", "op": "wait_for_event", "event": "app/opened",
        "timeout": "1h"}]});
    for call in claim(&stores[1], "gate", 100).await {
        stores[1].job_finish(complete(&call, &wait)).await.unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let mut sends = JoinSet::new();
    for i in 0..9 {
        let store = stores[i % 3].clone();
        let e = event(now, "app/opened", json!({"i": i}), None);
        sends.spawn(async move { send(&store, vec![e]).await.remove(0).resolved_waits });
    }
    let mut resolved = 0;
    while let Some(n) = sends.join_next().await {
        resolved += n.unwrap();
    }
    assert_eq!(resolved, 30, "every waiting run resolved once in all");
    let next = claim(&stores[2], "gate", 100).await;
    assert_eq!(next.len(), 30);
    for call in &next {
        assert_eq!(
            request(call)["steps"]["open"]["data"]["name"],
            json!("app/opened")
        );
    }
}

/// `cancel_on` events sent twice at once through two servers cancel each matching run once; runs of other
/// users go on; a retried run is found again by its cancelling event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_events_through_two_servers_cancel_each_run_once() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "nurture", "triggers": [{"event": "app/signup"}],
            "cancel_on": [{"event": "app/unsubscribed", "match": "data.user"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..40)
        .map(|i| event(now, "app/signup", json!({"user": i}), None))
        .collect();
    let started = send(&stores[1], events).await;
    let mut sends = JoinSet::new();
    for user in 0..30 {
        for s in [0, 2] {
            let store = stores[s].clone();
            let e = event(now, "app/unsubscribed", json!({"user": user}), None);
            sends.spawn(async move { send(&store, vec![e]).await.remove(0).cancelled_runs });
        }
    }
    let mut cancelled = 0;
    while let Some(n) = sends.join_next().await {
        cancelled += n.unwrap();
    }
    assert_eq!(cancelled, 30, "each matching run cancelled once");
    for (user, sent) in started.iter().enumerate() {
        let r = stores[0].run_get(sent.runs[0]).await.unwrap().unwrap();
        let expected = if user < 30 {
            RunState::Cancelled
        } else {
            RunState::Queued
        };
        assert_eq!(r.state, expected, "user {user}");
    }
    assert_eq!(claim(&stores[1], "nurture", 100).await.len(), 10);

    let again = started[3].runs[0];
    assert_eq!(
        stores[1].run_retry(again).await.unwrap().state,
        RunState::Queued
    );
    let e = event(now, "app/unsubscribed", json!({"user": 3}), None);
    assert_eq!(send(&stores[2], vec![e]).await[0].cancelled_runs, 1);
    assert_eq!(
        stores[0].run_get(again).await.unwrap().unwrap().state,
        RunState::Cancelled
    );
}

/// An invoked run that ends through one server while another wakes its parent's timed-out `invoke`: the
/// parent's step is resolved once (the child's output or the timeout's error), with one next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_ending_as_its_invoke_times_out_resolves_the_parent_once() {
    let Some(url) = testing::url() else { return };
    let clock = Arc::new(ManualClock::new("2026-12-03T10:00:00Z".parse().unwrap()));
    let (_schema, stores) = servers_with(&url, Some(clock.clone())).await;
    put(
        &stores[0],
        json!({"id": "parent", "triggers": [{"event": "app/go"}]}),
    )
    .await;
    put(
        &stores[0],
        json!({"id": "child", "triggers": [{"event": "app/never"}]}),
    )
    .await;
    let now = stores[0].now();
    let events = (0..30)
        .map(|i| event(now, "app/go", json!({"n": i}), None))
        .collect();
    send(&stores[0], events).await;
    let invoke =
        json!({"steps": [{"id": "sub", "op": "invoke", "function_id": "child", "timeout": "1m"}]});
    for call in claim(&stores[1], "parent", 100).await {
        stores[1]
            .job_finish(complete(&call, &invoke))
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();
    }
    let children = claim(&stores[2], "child", 100).await;
    assert_eq!(children.len(), 30);
    clock.advance(SignedDuration::from_secs(61));
    let mut ends = JoinSet::new();
    for call in children {
        let store = stores[2].clone();
        ends.spawn(async move {
            let done = json!({"done": true, "output": {"ok": true}});
            store
                .job_finish(complete(&call, &done))
                .await
                .unwrap()
                .remove(0)
                .unwrap();
        });
    }
    let waker = stores[0].clone();
    ends.spawn(async move {
        loop {
            let report = waker
                .run_wake_due(RunWakeParams { limit: 5 })
                .await
                .unwrap();
            if report.woken == 0 && report.next_due_at.is_none() {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    while let Some(done) = ends.join_next().await {
        done.unwrap();
    }
    let next = claim(&stores[1], "parent", 100).await;
    assert_eq!(next.len(), 30, "one next call per parent");
    for call in &next {
        let sub = &request(call)["steps"]["sub"];
        assert!(
            sub["data"]["ok"] == json!(true) || sub["error"]["name"] == json!("InvokeTimeout"),
            "{sub}"
        );
        let steps = stores[0].run_steps(run_of(call)).await.unwrap();
        assert_eq!(steps.len(), 1, "the invoke step recorded once");
    }
}
