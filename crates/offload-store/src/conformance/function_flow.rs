//! Flow controls of functions: keyed concurrency and throttle as the queue's limits, rate limits that skip
//! events, singletons that skip or cancel.

use offload_core::flow::limits::QueueLimitsPatch;
use offload_core::function::run::RunState;
use serde_json::json;

use crate::fanout::SkipReason;
use crate::{QueueSetLimitsParams, Skipped};

use super::functions::{put, run, send};
use super::{Harness, secs};

/// A function's `concurrency` and `throttle` become its queue's limits when it is registered; its calls are
/// grouped by the key's value in the event (an event without the field gives an ungrouped call), so one
/// account's calls wait while another's start.
pub async fn keyed_concurrency_groups_calls_and_limits_the_queue(h: Harness) {
    put(
        &h,
        json!({"id": "sync", "triggers": [{"event": "app/sync"}], "queue": "syncs",
            "concurrency": [{"limit": 3}, {"limit": 1, "key": "data.account"}],
            "throttle": {"limit": 100, "period": "1s", "burst": 100, "key": "data.account"}}),
    )
    .await;
    let limits = h.store.queue_get("syncs").await.unwrap().unwrap().limits;
    assert_eq!(limits.concurrency, Some(3));
    assert_eq!(limits.group_concurrency, Some(1));
    let throttle = limits.throttle.unwrap();
    assert!(throttle.per_group && throttle.limit == 100 && throttle.burst == 100);

    for account in ["a", "a", "b"] {
        send(&h, "app/sync", json!({"account": account}), None).await;
    }
    send(&h, "app/sync", json!({}), None).await;
    let claimed = h.claim("syncs", 10).await;
    let mut groups = Vec::new();
    for c in &claimed {
        groups.push(h.get(c.id).await.group);
    }
    let first_a = claimed[groups
        .iter()
        .position(|g| g.as_deref() == Some("a"))
        .unwrap()]
    .clone();
    groups.sort();
    assert_eq!(groups, vec![None, Some("a".into()), Some("b".into())]);
    // The second call of account `a` waits for the first; the queue-wide limit (3) is reached too.
    assert!(h.claim("syncs", 10).await.is_empty());
    h.complete(&first_a, Some(r#"{"done": true}"#))
        .await
        .unwrap();
    let next = h.claim("syncs", 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(h.get(next[0].id).await.group.as_deref(), Some("a"));
}

/// A function without `concurrency` or `throttle` leaves its queue's limits alone; one that declares them
/// replaces them (each undeclared limit removed, `fair` kept).
pub async fn functions_without_controls_leave_queue_limits_alone(h: Harness) {
    let patch: QueueLimitsPatch =
        serde_json::from_value(json!({"concurrency": 7, "group_concurrency": 2, "fair": true}))
            .unwrap();
    h.store
        .queue_set_limits(QueueSetLimitsParams {
            queue: "shared".into(),
            patch,
        })
        .await
        .unwrap();
    put(
        &h,
        json!({"id": "plain", "triggers": [{"event": "app/x"}], "queue": "shared"}),
    )
    .await;
    let limits = h.store.queue_get("shared").await.unwrap().unwrap().limits;
    assert_eq!(
        (limits.concurrency, limits.group_concurrency, limits.fair),
        (Some(7), Some(2), true)
    );
    put(
        &h,
        json!({"id": "capped", "triggers": [{"event": "app/x"}], "queue": "shared",
            "concurrency": [{"limit": 4}]}),
    )
    .await;
    let limits = h.store.queue_get("shared").await.unwrap().unwrap().limits;
    assert_eq!(
        (limits.concurrency, limits.group_concurrency, limits.fair),
        (Some(4), None, true)
    );
}

/// Events beyond a function's rate limit start no run of it and record why, on the send's answer and on the
/// event; each key has its own bucket; an event without the key's field is not limited; the bucket refills
/// with time.
pub async fn rate_limit_skips_events_and_records_them(h: Harness) {
    put(
        &h,
        json!({"id": "notify", "triggers": [{"event": "app/ping"}],
            "rate_limit": {"limit": 2, "period": "1m", "key": "data.user"}}),
    )
    .await;
    put(
        &h,
        json!({"id": "audit", "triggers": [{"event": "app/ping"}]}),
    )
    .await;
    let mut started = 0;
    for _ in 0..3 {
        let sent = send(&h, "app/ping", json!({"user": "u1"}), None).await;
        if sent.started.contains(&"notify".to_owned()) {
            started += 1;
            assert!(sent.skipped.is_empty());
        } else {
            assert_eq!(sent.runs.len(), 1, "the other function still runs");
            assert_eq!(
                sent.skipped,
                vec![Skipped {
                    function_id: "notify".into(),
                    reason: SkipReason::RateLimit
                }]
            );
            let stored = h.store.event_get(sent.id).await.unwrap().unwrap();
            assert_eq!(stored.skipped, sent.skipped);
            assert_eq!(stored.runs.len(), 1);
        }
    }
    assert_eq!(started, 2);
    let other = send(&h, "app/ping", json!({"user": "u2"}), None).await;
    assert!(other.started.contains(&"notify".to_owned()));
    let keyless = send(&h, "app/ping", json!({}), None).await;
    assert!(keyless.started.contains(&"notify".to_owned()));
    h.advance(secs(30));
    let refilled = send(&h, "app/ping", json!({"user": "u1"}), None).await;
    assert!(refilled.started.contains(&"notify".to_owned()));
    assert!(refilled.skipped.is_empty());
    let stored = h.store.event_get(refilled.id).await.unwrap().unwrap();
    assert!(stored.skipped.is_empty());
}

/// `singleton` in `skip` mode: while a run of the key is live, a new event starts none and records why; once it
/// ends, the next starts. In `cancel` mode the live run is cancelled and the new one starts.
pub async fn singleton_skips_or_cancels_the_live_run(h: Harness) {
    put(
        &h,
        json!({"id": "one", "triggers": [{"event": "app/go"}],
            "singleton": {"key": "data.user", "mode": "skip"}}),
    )
    .await;
    let first = send(&h, "app/go", json!({"user": 1}), None).await;
    assert_eq!(first.runs.len(), 1);
    let again = send(&h, "app/go", json!({"user": 1}), None).await;
    assert!(again.runs.is_empty());
    assert_eq!(
        again.skipped,
        vec![Skipped {
            function_id: "one".into(),
            reason: SkipReason::Singleton
        }]
    );
    let stored = h.store.event_get(again.id).await.unwrap().unwrap();
    assert_eq!(stored.skipped, again.skipped);
    assert_eq!(
        send(&h, "app/go", json!({"user": 2}), None)
            .await
            .runs
            .len(),
        1,
        "another key has its own run"
    );
    h.store.run_cancel(first.runs[0]).await.unwrap();
    let after = send(&h, "app/go", json!({"user": 1}), None).await;
    assert_eq!(after.runs.len(), 1, "the key is free once its run ended");

    put(
        &h,
        json!({"id": "latest", "triggers": [{"event": "app/edit"}],
            "singleton": {"mode": "cancel"}}),
    )
    .await;
    let old = send(&h, "app/edit", json!({"v": 1}), None).await;
    let new = send(&h, "app/edit", json!({"v": 2}), None).await;
    assert_eq!(new.runs.len(), 1);
    assert!(new.skipped.is_empty());
    assert_eq!(run(&h, old.runs[0]).await.state, RunState::Cancelled);
    assert_eq!(run(&h, new.runs[0]).await.state, RunState::Queued);
    // Only the new run's call is left to claim.
    let calls = h.claim("latest", 10).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].tags.get(crate::RUN_TAG),
        Some(&new.runs[0].to_string())
    );
}
