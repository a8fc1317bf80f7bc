//! SQLite-specific guarantees of durable functions: a sleeping run survives the store's restart, and one batch of
//! events fans out in full.

use std::sync::Arc;
use std::time::{Duration, Instant};

use offload_core::function::definition::FunctionSpec;
use offload_core::function::event::EventRequest;
use offload_core::function::protocol::Json;
use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunState;
use offload_core::{Clock, ManualClock, SignedDuration};
use offload_store::conformance::{raw, t0};
use offload_store::{
    EventSendParams, Finish, FinishItem, FunctionPutParams, JobClaimParams, JobFinishParams,
    JobStageParams, Store,
};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

async fn put(store: &SqliteStore, spec: serde_json::Value) {
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
        .unwrap();
}

fn event(name: &str, n: usize, clock: &ManualClock) -> offload_core::function::event::NewEvent {
    EventRequest {
        name: name.into(),
        data: Some(Json::from_text(format!(r#"{{"n":{n}}}"#)).unwrap()),
        id: Some(format!("e-{n}")),
        ts: None,
    }
    .validate(clock.now(), 1 << 20)
    .unwrap()
}

async fn claim(store: &SqliteStore, queue: &str, max_jobs: u32) -> Vec<offload_core::ClaimedJob> {
    store
        .job_claim(JobClaimParams {
            queue: queue.into(),
            worker_id: "w".into(),
            max_jobs,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sleeping_run_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let clock = Arc::new(ManualClock::new(t0()));
    let options = SqliteOptions::new(&path).with_clock(clock.clone());
    let run_id;
    {
        let store = SqliteStore::open(options.clone()).await.unwrap();
        put(
            &store,
            json!({"id": "nap", "triggers": [{"event": "app/go"}]}),
        )
        .await;
        let report = store
            .event_send(EventSendParams {
                events: vec![event("app/go", 1, &clock)],
                limits: RecordLimits::default(),
            })
            .await
            .unwrap();
        run_id = report.events[0].runs[0];
        let call = claim(&store, "nap", 1).await.remove(0);
        let until = offload_core::state::add(clock.now(), Duration::from_secs(3 * 86_400));
        let response = json!({"steps": [{"id": "a", "op": "run", "data": 1},
            {"id": "wait", "op": "sleep", "until": until.to_string()}]});
        store
            .job_finish(JobFinishParams {
                items: vec![FinishItem {
                    id: call.id,
                    lease_token: call.lease_token,
                    finish: Finish::Complete {
                        result: Some(raw(&response.to_string())),
                    },
                }],
            })
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        // Dropped without close: the commit is on disk.
    }
    let store = SqliteStore::open(options).await.unwrap();
    let run = store.run_get(run_id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Sleeping);
    clock.advance(SignedDuration::from_secs(3 * 86_400));
    store
        .job_stage_due(JobStageParams { limit: 10 })
        .await
        .unwrap();
    let call = claim(&store, "nap", 1).await.remove(0);
    let request: serde_json::Value = serde_json::from_str(call.payload.get()).unwrap();
    assert_eq!(
        request["steps"],
        json!({"a": {"data": 1}, "wait": {"data": null}})
    );
}

#[tokio::test]
async fn a_batch_of_events_fans_out_to_every_function() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let options = SqliteOptions::new(dir.path().join("offload.db")).with_clock(clock.clone());
    let store = SqliteStore::open(options).await.unwrap();
    put(
        &store,
        json!({"id": "one", "triggers": [{"event": "app/order"}]}),
    )
    .await;
    put(
        &store,
        json!({"id": "two", "triggers": [{"event": "app/order"}]}),
    )
    .await;
    let events = (0..1000).map(|n| event("app/order", n, &clock)).collect();
    let started = Instant::now();
    let report = store
        .event_send(EventSendParams {
            events,
            limits: RecordLimits::default(),
        })
        .await
        .unwrap();
    eprintln!(
        "1,000 events, two functions: {:?} ({:.0} events/s)",
        started.elapsed(),
        1000.0 / started.elapsed().as_secs_f64()
    );
    assert!(report.events.iter().all(|e| e.runs.len() == 2));
    assert_eq!(claim(&store, "one", 2000).await.len(), 1000);
    assert_eq!(claim(&store, "two", 2000).await.len(), 1000);
}

#[tokio::test]
async fn configured_record_limits_apply_to_answers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let limits = RecordLimits {
        max_step_bytes: 8,
        ..RecordLimits::default()
    };
    let options = SqliteOptions::new(dir.path().join("offload.db"))
        .with_clock(clock.clone())
        .with_record_limits(limits);
    let store = SqliteStore::open(options).await.unwrap();
    put(
        &store,
        json!({"id": "small", "triggers": [{"event": "app/go"}]}),
    )
    .await;
    let report = store
        .event_send(EventSendParams {
            events: vec![event("app/go", 1, &clock)],
            limits,
        })
        .await
        .unwrap();
    let run_id = report.events[0].runs[0];
    let call = claim(&store, "small", 1).await.remove(0);
    let response =
        json!({"steps": [{"id": "a", "op": "run", "data": "a result longer than eight bytes"}]});
    store
        .job_finish(JobFinishParams {
            items: vec![FinishItem {
                id: call.id,
                lease_token: call.lease_token,
                finish: Finish::Complete {
                    result: Some(raw(&response.to_string())),
                },
            }],
        })
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let run = store.run_get(run_id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.error.map(|e| e.name).as_deref(),
        Some("StepOutputTooLarge")
    );
}
