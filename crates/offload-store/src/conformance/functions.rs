//! Durable functions: registering, listing and removing functions and app syncs; plus the helpers the event and
//! run topics share (a function, an event, a call claimed and answered).

use offload_core::ClaimedJob;
use offload_core::function::definition::{Function, FunctionSpec};
use offload_core::function::event::{EventRequest, NewEvent};
use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunId;
use serde_json::{Value, json};

use crate::{
    AppSyncParams, AppSynced, EventSendParams, EventSent, Finish, FinishOutcome,
    FunctionListParams, FunctionPutParams, FunctionRecord, RunRecord, StoreError,
};

use super::{Harness, raw};

/// A validated function from its registered JSON (which must hold its `id`).
pub fn function(spec: Value) -> (Function, Value) {
    let parsed: FunctionSpec = serde_json::from_value(spec.clone()).expect("a function spec");
    (parsed.validate(None).expect("a valid function"), spec)
}

/// The function most run tests use: `flow`, started by `app/start`, pull, 2 retries with 1s..60s backoff
/// without jitter, 30s per call.
pub fn flow() -> Value {
    json!({"id": "flow", "triggers": [{"event": "app/start"}], "retries": 2,
        "backoff": {"base": "1s", "cap": "60s", "jitter": 0.0}, "timeout": "30s"})
}

/// Registers a function (no app).
pub async fn put(h: &Harness, spec: Value) -> FunctionRecord {
    let (function, spec) = function(spec);
    h.store
        .function_put(FunctionPutParams {
            function,
            spec,
            app: None,
        })
        .await
        .expect("function_put")
        .record
}

/// A validated event.
pub fn event(h: &Harness, name: &str, data: Value, id: Option<&str>) -> NewEvent {
    EventRequest {
        name: name.into(),
        data: Some(offload_core::function::protocol::Json::from_text(data.to_string()).unwrap()),
        id: id.map(str::to_owned),
        ts: None,
    }
    .validate(h.now(), 1 << 20)
    .expect("a valid event")
}

/// Sends one event; returns its outcome.
pub async fn send(h: &Harness, name: &str, data: Value, id: Option<&str>) -> EventSent {
    let events = vec![event(h, name, data, id)];
    let mut report = h
        .store
        .event_send(EventSendParams {
            events,
            limits: RecordLimits::default(),
        })
        .await
        .expect("event_send");
    assert_eq!(report.events.len(), 1);
    report.events.remove(0)
}

/// Sends `app/start` with `data`; returns the one run it started.
pub async fn start(h: &Harness, data: Value) -> RunId {
    let sent = send(h, "app/start", data, None).await;
    assert_eq!(sent.runs.len(), 1, "one run per matching function");
    sent.runs[0]
}

/// Claims exactly one call from `queue`.
pub async fn claim_call(h: &Harness, queue: &str) -> ClaimedJob {
    let mut calls = h.claim(queue, 10).await;
    assert_eq!(calls.len(), 1, "exactly one call is available in {queue}");
    calls.remove(0)
}

/// The call request a call job carries.
pub fn request(call: &ClaimedJob) -> Value {
    serde_json::from_str(call.payload.get()).expect("a JSON call request")
}

/// Completes a call with a call response.
pub async fn answer(h: &Harness, call: &ClaimedJob, response: Value) -> FinishOutcome {
    h.finish(
        call.id,
        call.lease_token,
        Finish::Complete {
            result: Some(raw(&response.to_string())),
        },
    )
    .await
}

/// Claims the one call of `queue` and answers it; the completion must be accepted.
pub async fn step(h: &Harness, queue: &str, response: Value) -> ClaimedJob {
    let call = claim_call(h, queue).await;
    answer(h, &call, response).await.expect("call completed");
    call
}

/// Asserts that `queue_list`'s counts for `queue` equal the states of its jobs (call jobs are counted like any).
pub async fn assert_counts_match(h: &Harness, queue: &str) {
    let jobs = h
        .store
        .job_list(crate::JobListParams {
            queue: Some(queue.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("job_list");
    let mut actual = std::collections::BTreeMap::new();
    for job in jobs {
        *actual.entry(job.state).or_insert(0u64) += 1;
    }
    let counted: std::collections::BTreeMap<_, _> = h
        .counts(queue)
        .await
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(counted, actual, "counts of {queue}");
}

/// Reads a run that must exist.
pub async fn run(h: &Harness, id: RunId) -> RunRecord {
    h.store
        .run_get(id)
        .await
        .expect("run_get")
        .expect("the run exists")
}

/// Put creates then replaces; get answers the registered spec; list pages by id and by app; delete hides the
/// function and a second delete is not found.
pub async fn function_put_get_list_delete(h: Harness) {
    let (f, spec) = function(json!({"id": "b-fn", "triggers": [{"event": "app/x"}]}));
    let put1 = h
        .store
        .function_put(FunctionPutParams {
            function: f,
            spec: spec.clone(),
            app: None,
        })
        .await
        .unwrap();
    assert!(put1.created);
    assert_eq!(put1.record.spec, spec);
    assert_eq!(put1.record.created_at, h.now());

    h.advance(super::secs(5));
    let (f, spec2) = function(
        json!({"id": "b-fn", "name": "Bee", "triggers": [{"event": "app/y"}], "queue": "bq"}),
    );
    let put2 = h
        .store
        .function_put(FunctionPutParams {
            function: f,
            spec: spec2.clone(),
            app: Some("shop".into()),
        })
        .await
        .unwrap();
    assert!(!put2.created);
    assert_eq!(put2.record.created_at, put1.record.created_at);
    assert_eq!(put2.record.updated_at, h.now());
    assert_eq!(put2.record.app.as_deref(), Some("shop"));

    let got = h.store.function_get("b-fn").await.unwrap().unwrap();
    assert_eq!(got.spec, spec2);
    assert_eq!(got.function.queue, "bq");
    assert_eq!(got.function.name.as_deref(), Some("Bee"));
    assert!(h.store.function_get("nope").await.unwrap().is_none());

    put(&h, json!({"id": "a-fn", "triggers": [{"event": "app/x"}]})).await;
    put(&h, json!({"id": "c-fn", "triggers": [{"event": "app/x"}]})).await;
    let ids = |list: Vec<FunctionRecord>| -> Vec<String> {
        list.into_iter().map(|r| r.function.id).collect()
    };
    let all = h
        .store
        .function_list(FunctionListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(all), ["a-fn", "b-fn", "c-fn"]);
    let page = h
        .store
        .function_list(FunctionListParams {
            after: Some("a-fn".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page), ["b-fn"]);
    let shop = h
        .store
        .function_list(FunctionListParams {
            app: Some("shop".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(shop), ["b-fn"]);

    h.store.function_delete("b-fn").await.unwrap();
    assert!(h.store.function_get("b-fn").await.unwrap().is_none());
    assert!(matches!(
        h.store.function_delete("b-fn").await,
        Err(StoreError::NotFound(_))
    ));
    let all = h
        .store
        .function_list(FunctionListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(all), ["a-fn", "c-fn"]);

    // A removed function starts no runs; registering it again brings it back.
    let sent = send(&h, "app/y", json!({}), None).await;
    assert!(sent.runs.is_empty());
    let again = h
        .store
        .function_put(FunctionPutParams {
            function: function(spec2.clone()).0,
            spec: spec2,
            app: None,
        })
        .await
        .unwrap();
    assert!(again.created, "a removed function registers as new");
    assert_eq!(send(&h, "app/y", json!({}), None).await.runs.len(), 1);
}

/// A sync reports each function as created, updated, unchanged or removed; removed functions start no runs but
/// their runs keep going.
pub async fn app_sync_reports_each_function(h: Harness) {
    let sync = |fns: Vec<Value>| AppSyncParams {
        app: "shop".into(),
        functions: fns.into_iter().map(function).collect(),
    };
    let one = json!({"id": "one", "triggers": [{"event": "app/one"}]});
    let two = json!({"id": "two", "triggers": [{"event": "app/two"}]});
    let first = h
        .store
        .app_sync(sync(vec![one.clone(), two.clone()]))
        .await
        .unwrap();
    assert_eq!(
        first,
        AppSynced {
            created: vec!["one".into(), "two".into()],
            ..Default::default()
        }
    );
    let run = send(&h, "app/two", json!({}), None).await.runs[0];

    let one_changed = json!({"id": "one", "triggers": [{"event": "app/one"}], "retries": 1});
    let three = json!({"id": "three", "triggers": [{"event": "app/three"}]});
    let second = h
        .store
        .app_sync(sync(vec![one_changed, three]))
        .await
        .unwrap();
    assert_eq!(
        second,
        AppSynced {
            created: vec!["three".into()],
            updated: vec!["one".into()],
            unchanged: vec![],
            removed: vec!["two".into()],
        }
    );
    let third = h
        .store
        .app_sync(sync(vec![
            json!({"id": "one", "triggers": [{"event": "app/one"}], "retries": 1}),
            json!({"id": "three", "triggers": [{"event": "app/three"}]}),
        ]))
        .await
        .unwrap();
    assert_eq!(
        third,
        AppSynced {
            unchanged: vec!["one".into(), "three".into()],
            ..Default::default()
        }
    );
    assert!(h.store.function_get("two").await.unwrap().is_none());
    assert!(send(&h, "app/two", json!({}), None).await.runs.is_empty());
    // The removed function's run still has its call and goes on.
    step(&h, "two", json!({"done": true, "output": 2})).await;
    assert_eq!(
        run_state(&h, run).await,
        offload_core::function::run::RunState::Succeeded
    );
    let listed = h
        .store
        .function_list(FunctionListParams {
            app: Some("shop".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<String> = listed.into_iter().map(|r| r.function.id).collect();
    assert_eq!(ids, ["one", "three"]);
}

async fn run_state(h: &Harness, id: RunId) -> offload_core::function::run::RunState {
    run(h, id).await.state
}
