//! Events: storing and fanning out (a run per matching function, waits resolved, `cancel_on`), duplicates,
//! batches, reads.

use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunState;
use serde_json::json;

use crate::{EventListParams, EventSendParams, RunListParams, RunWakeParams};

use super::functions::{answer, claim_call, event, flow, put, request, run, send, start, step};
use super::{Harness, secs};

/// An event starts one queued run (with its first call) per function whose trigger and filter match; the run
/// and the event read back with each other.
pub async fn event_send_starts_a_run_per_matching_function(h: Harness) {
    put(
        &h,
        json!({"id": "welcome", "triggers": [{"event": "app/signup"}]}),
    )
    .await;
    put(
        &h,
        json!({"id": "vip", "triggers": [{"event": "app/signup", "if": {"data.plan": "pro"}}]}),
    )
    .await;
    put(
        &h,
        json!({"id": "other", "triggers": [{"event": "app/other"}]}),
    )
    .await;

    let free = send(&h, "app/signup", json!({"user": 1, "plan": "free"}), None).await;
    assert!(!free.duplicate);
    assert_eq!(free.runs.len(), 1);
    let r = run(&h, free.runs[0]).await;
    assert_eq!(r.function_id, "welcome");
    assert_eq!(r.state, RunState::Queued);
    assert_eq!(r.event_id, free.id);
    assert_eq!(r.created_at, h.now());
    assert_eq!(r.steps, 0);
    let event: serde_json::Value = serde_json::from_str(r.event.get()).unwrap();
    assert_eq!(event["name"], json!("app/signup"));
    assert_eq!(event["data"], json!({"user": 1, "plan": "free"}));

    let call = claim_call(&h, "welcome").await;
    assert_eq!(call.name.as_deref(), Some("welcome"));
    assert_eq!(
        call.tags.get(crate::RUN_TAG),
        Some(&free.runs[0].to_string())
    );
    let req = request(&call);
    assert_eq!(req["run_id"], json!(free.runs[0].to_string()));
    assert_eq!(req["function_id"], json!("welcome"));
    assert_eq!(req["attempt"], json!(1));
    assert_eq!(req["steps"], json!({}));
    assert_eq!(req["event"]["data"]["user"], json!(1));
    assert_eq!(run(&h, free.runs[0]).await.state, RunState::Running);
    let pro = send(&h, "app/signup", json!({"user": 2, "plan": "pro"}), None).await;
    assert_eq!(pro.runs.len(), 2);
    assert!(
        send(&h, "app/nobody", json!({}), None)
            .await
            .runs
            .is_empty()
    );

    // The pro event started one run of each function, each with its call.
    assert_eq!(h.claim("welcome", 10).await.len(), 1);
    assert_eq!(h.claim("vip", 10).await.len(), 1);

    let stored = h.store.event_get(pro.id).await.unwrap().unwrap();
    assert_eq!(stored.name, "app/signup");
    let mut runs = stored.runs.clone();
    runs.sort();
    let mut expected = pro.runs.clone();
    expected.sort();
    assert_eq!(runs, expected);
    let by_event = h
        .store
        .run_list(RunListParams {
            event_id: Some(pro.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_event.len(), 2);
    let vip = h
        .store
        .run_list(RunListParams {
            function_id: Some("vip".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(vip.len(), 1);
}

/// An event id seen before answers the first event's id and runs, and fans nothing out again; in one batch
/// too.
pub async fn duplicate_event_id_starts_nothing(h: Harness) {
    put(
        &h,
        json!({"id": "welcome", "triggers": [{"event": "app/signup"}]}),
    )
    .await;
    let first = send(&h, "app/signup", json!({"user": 1}), Some("evt-1")).await;
    assert!(!first.duplicate);
    let again = send(&h, "app/signup", json!({"user": 1}), Some("evt-1")).await;
    assert!(again.duplicate);
    assert_eq!(again.id, first.id);
    assert_eq!(again.runs, first.runs);
    assert_eq!(h.claim("welcome", 10).await.len(), 1, "one run, one call");

    let batch = vec![
        event(&h, "app/signup", json!({"user": 2}), Some("evt-2")),
        event(&h, "app/signup", json!({"user": 2}), Some("evt-2")),
        event(&h, "app/signup", json!({"user": 3}), None),
    ];
    let report = h
        .store
        .event_send(EventSendParams {
            events: batch,
            limits: RecordLimits::default(),
        })
        .await
        .unwrap();
    let sent = &report.events;
    assert_eq!(sent.len(), 3);
    assert!(!sent[0].duplicate && sent[1].duplicate && !sent[2].duplicate);
    assert_eq!(sent[1].id, sent[0].id);
    assert_eq!(sent[1].runs, sent[0].runs);
    assert_eq!(sent[2].runs.len(), 1);
    assert!(report.woken.contains(&"welcome".to_owned()));
    let listed = h
        .store
        .event_list(EventListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "a duplicate is not stored");
    assert_eq!(listed[0].id, sent[2].id, "newest first");
    assert_eq!(listed[2].user_id.as_deref(), Some("evt-1"));
    let by_name = h
        .store
        .event_list(EventListParams {
            name: Some("app/other".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_name.is_empty());
    let older = h
        .store
        .event_list(EventListParams {
            before: Some(listed[0].id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older[0].id, listed[1].id);
}

/// A waiting step is resolved by a matching event (with the event as its data), not by an event of the same
/// name that does not match; the next call is enqueued at once. A wait without `match` takes any event.
pub async fn wait_for_event_resolves_on_a_matching_event(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({"user": 7})).await;
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "up", "op": "wait_for_event", "event": "app/upgraded",
            "match": "data.user", "timeout": "1h"}]}),
    )
    .await;
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Waiting);
    assert_eq!(
        r.wake_at,
        Some(offload_core::state::add(h.now(), secs(3600)))
    );
    assert!(h.claim("flow", 10).await.is_empty());
    let pending = h.store.run_steps(run_id).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].kind,
        offload_core::function::record::StepKind::WaitForEvent
    );
    assert_eq!(pending[0].result, None);
    assert_eq!(pending[0].until, r.wake_at);

    let other = send(&h, "app/upgraded", json!({"user": 8}), None).await;
    assert_eq!(other.resolved_waits, 0);
    assert_eq!(run(&h, run_id).await.state, RunState::Waiting);
    let textual = send(&h, "app/upgraded", json!({"user": "7"}), None).await;
    assert_eq!(textual.resolved_waits, 0, "7 and \"7\" differ");

    let matching = send(&h, "app/upgraded", json!({"user": 7, "plan": "pro"}), None).await;
    assert_eq!(matching.resolved_waits, 1);
    assert_eq!(run(&h, run_id).await.state, RunState::Queued);
    let call = claim_call(&h, "flow").await;
    let req = request(&call);
    assert_eq!(req["steps"]["up"]["data"]["name"], json!("app/upgraded"));
    assert_eq!(req["steps"]["up"]["data"]["data"]["plan"], json!("pro"));
    // A second matching event finds nothing to resolve.
    let late = send(&h, "app/upgraded", json!({"user": 7}), None).await;
    assert_eq!(late.resolved_waits, 0);

    // A wait without `match` takes any event of its name.
    answer(
        &h,
        &call,
        json!({"steps": [{"id": "any", "op": "wait_for_event", "event": "app/ping", "timeout": "1h"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        send(&h, "app/ping", json!({"x": 1}), None)
            .await
            .resolved_waits,
        1
    );
    let call = claim_call(&h, "flow").await;
    assert_eq!(
        request(&call)["steps"]["any"]["data"]["data"],
        json!({"x": 1})
    );
    answer(&h, &call, json!({"done": true})).await.unwrap();
    assert_eq!(run(&h, run_id).await.state, RunState::Succeeded);
}

/// A wait whose timeout passes resolves to `null` through `run_wake_due`, which reports the next pending
/// timeout meanwhile.
pub async fn wait_for_event_times_out_to_null(h: Harness) {
    put(&h, flow()).await;
    let run_id = start(&h, json!({"user": 7})).await;
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "up", "op": "wait_for_event", "event": "app/upgraded",
            "match": "data.user", "timeout": "60s"}]}),
    )
    .await;
    let due = offload_core::state::add(h.now(), secs(60));
    let wake = |limit| h.store.run_wake_due(RunWakeParams { limit });
    let early = wake(100).await.unwrap();
    assert_eq!(early.woken, 0);
    assert_eq!(early.next_due_at, Some(due));
    h.advance(secs(60));
    let woken = wake(100).await.unwrap();
    assert_eq!(woken.woken, 1);
    assert_eq!(woken.queues, ["flow"]);
    assert_eq!(woken.next_due_at, None);
    let call = claim_call(&h, "flow").await;
    assert_eq!(request(&call)["steps"]["up"], json!({"data": null}));
    // The event arriving afterwards resolves nothing.
    assert_eq!(
        send(&h, "app/upgraded", json!({"user": 7}), None)
            .await
            .resolved_waits,
        0
    );
    let steps = h.store.run_steps(run_id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].id, "up");
    assert!(steps[0].result.is_some());
}

/// A `cancel_on` event whose match holds cancels a sleeping run (its scheduled call is cancelled); one whose
/// match does not hold leaves the run alone; a retried run can be cancelled again.
pub async fn cancel_on_cancels_a_sleeping_run(h: Harness) {
    put(
        &h,
        json!({"id": "flow", "triggers": [{"event": "app/start"}],
            "cancel_on": [{"event": "app/stop", "match": "data.user"}]}),
    )
    .await;
    let run_id = start(&h, json!({"user": 7})).await;
    let until = offload_core::state::add(h.now(), secs(3600));
    step(
        &h,
        "flow",
        json!({"steps": [{"id": "nap", "op": "sleep", "until": until.to_string()}]}),
    )
    .await;
    assert_eq!(run(&h, run_id).await.state, RunState::Sleeping);

    let miss = send(&h, "app/stop", json!({"user": 8}), None).await;
    assert_eq!(miss.cancelled_runs, 0);
    assert_eq!(run(&h, run_id).await.state, RunState::Sleeping);
    let hit = send(&h, "app/stop", json!({"user": 7}), None).await;
    assert_eq!(hit.cancelled_runs, 1);
    let r = run(&h, run_id).await;
    assert_eq!(r.state, RunState::Cancelled);
    assert_eq!(r.ended_at, Some(h.now()));
    h.advance(secs(3600));
    h.stage().await;
    assert!(
        h.claim("flow", 10).await.is_empty(),
        "the sleeping call was cancelled"
    );

    // A retried run is cancelled again by the next matching event; runs of other users stay.
    let other = start(&h, json!({"user": 8})).await;
    h.store.run_retry(run_id).await.unwrap();
    let again = send(&h, "app/stop", json!({"user": 7}), None).await;
    assert_eq!(again.cancelled_runs, 1);
    assert_eq!(run(&h, run_id).await.state, RunState::Cancelled);
    assert_eq!(run(&h, other).await.state, RunState::Queued);
    super::functions::assert_counts_match(&h, "flow").await;
}

/// A `send_event` step stores and fans out its events once, however often the code replays it; its data names
/// the events. A reserved event name fails the call instead.
pub async fn send_event_step_sends_once(h: Harness) {
    put(&h, flow()).await;
    put(
        &h,
        json!({"id": "listener", "triggers": [{"event": "app/sent"}]}),
    )
    .await;
    let run_id = start(&h, json!({})).await;
    let send_step = json!({"steps": [{"id": "s", "op": "send_event",
        "events": [{"name": "app/sent", "data": {"k": 1}}]}]});
    step(&h, "flow", send_step.clone()).await;
    let call = claim_call(&h, "flow").await;
    let req = request(&call);
    let ids = req["steps"]["s"]["data"]["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1);
    let sent: offload_core::function::event::EventId = ids[0].as_str().unwrap().parse().unwrap();
    let stored = h.store.event_get(sent).await.unwrap().unwrap();
    assert_eq!(stored.name, "app/sent");
    assert_eq!(stored.runs.len(), 1);

    // The code replays the step: it is recorded, so nothing is sent again and the run goes on.
    answer(&h, &call, send_step).await.unwrap();
    let listener_runs = h
        .store
        .run_list(RunListParams {
            function_id: Some("listener".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listener_runs.len(), 1);
    let call = claim_call(&h, "flow").await;
    let refused = answer(
        &h,
        &call,
        json!({"steps": [{"id": "s2", "op": "send_event", "events": [{"name": "offload/x"}]}]}),
    )
    .await
    .unwrap();
    assert_eq!(refused.state, offload_core::JobState::Retrying);
    assert_eq!(run(&h, run_id).await.steps, 1);
}
