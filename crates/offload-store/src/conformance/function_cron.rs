//! Cron-triggered functions: `function_cron_fire` starts one run per due tick, catches up with one run, follows
//! a replaced cron, stops with a removed function, and fires daylight-saving days at the cadence's times.

use std::time::Duration;

use offload_core::Timestamp;
use serde_json::{Value, json};

use crate::function_cron::CRON_EVENT;
use crate::{AppSyncParams, CronFired, FunctionCronFireParams, FunctionCronReport, RunListParams};

use super::Harness;
use super::functions::{claim_call, function, put};

/// A pull function `nightly` on queue `cron-q`, started by `cron` in `tz`.
fn cron_function(cron: &str, tz: &str) -> Value {
    json!({"id": "nightly", "queue": "cron-q", "triggers": [{"cron": cron, "timezone": tz}],
        "timeout": "30s"})
}

async fn fire(h: &Harness) -> FunctionCronReport {
    h.store
        .function_cron_fire(FunctionCronFireParams { limit: 100 })
        .await
        .expect("function_cron_fire")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

/// Moves the clock to `to` (which must not be in the past).
fn advance_to(h: &Harness, to: Timestamp) {
    let by = h.now().duration_until(to);
    h.advance(Duration::try_from(by).expect("forward"));
}

fn only(report: &FunctionCronReport) -> &CronFired {
    assert_eq!(report.fired.len(), 1, "one tick fired: {report:?}");
    &report.fired[0]
}

/// A due tick starts exactly one run of its function (with the tick's event and a claimable first call), and
/// firing again before the next tick starts nothing.
pub async fn a_cron_tick_starts_one_run(h: Harness) {
    put(&h, cron_function("*/5 * * * *", "UTC")).await;
    let early = fire(&h).await;
    assert!(early.fired.is_empty());
    assert_eq!(early.next_fire_at, Some(at("2026-01-01T00:05:00Z")));

    advance_to(&h, at("2026-01-01T00:05:00.250Z"));
    let report = fire(&h).await;
    let fired = only(&report).clone();
    assert_eq!(fired.function_id, "nightly");
    assert_eq!(fired.scheduled_at, at("2026-01-01T00:05:00Z"));
    assert_eq!(fired.missed, 0);
    assert_eq!(report.queues, vec!["cron-q".to_owned()]);
    assert_eq!(report.next_fire_at, Some(at("2026-01-01T00:10:00Z")));

    let run = h.store.run_get(fired.run_id).await.unwrap().expect("run");
    assert_eq!(run.function_id, "nightly");
    assert_eq!(run.event_id, fired.event_id);
    let event = h
        .store
        .event_get(fired.event_id)
        .await
        .unwrap()
        .expect("event");
    assert_eq!(event.name, CRON_EVENT);
    let data: Value = serde_json::from_str(event.data.get()).unwrap();
    assert_eq!(
        data,
        json!({"function_id": "nightly", "cron": "*/5 * * * *", "timezone": "UTC",
            "scheduled_at": "2026-01-01T00:05:00Z"})
    );
    assert_eq!(event.ts, at("2026-01-01T00:05:00Z"));
    let call = claim_call(&h, "cron-q").await;
    assert!(call.payload.get().contains(CRON_EVENT));

    // Same instant, and later within the same period: nothing more.
    assert!(fire(&h).await.fired.is_empty());
    h.advance(Duration::from_secs(120));
    assert!(fire(&h).await.fired.is_empty());
    let runs = h
        .store
        .run_list(RunListParams {
            function_id: Some("nightly".into()),
            state: None,
            event_id: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, fired.run_id);
}

/// After downtime the cron starts one run, for the most recent tick; the others are counted as missed.
pub async fn a_late_cron_catches_up_with_one_run(h: Harness) {
    put(&h, cron_function("*/5 * * * *", "UTC")).await;
    advance_to(&h, at("2026-01-01T01:02:03Z"));
    let report = fire(&h).await;
    let fired = only(&report);
    assert_eq!(fired.scheduled_at, at("2026-01-01T01:00:00Z"));
    assert_eq!(fired.missed, 11);
    assert_eq!(report.next_fire_at, Some(at("2026-01-01T01:05:00Z")));
    assert!(fire(&h).await.fired.is_empty());
}

/// Replacing a function with another cron recomputes its next fire time from now; replacing it with the same
/// cron keeps the pending tick.
pub async fn replacing_the_cron_recomputes_the_next_fire_time(h: Harness) {
    put(&h, cron_function("0 * * * *", "UTC")).await;
    advance_to(&h, at("2026-01-01T01:10:00Z"));
    // Same cadence, other settings: the 01:00 tick is still due.
    let mut same = cron_function("0 * * * *", "UTC");
    same["retries"] = json!(5);
    put(&h, same).await;
    assert_eq!(
        only(&fire(&h).await).scheduled_at,
        at("2026-01-01T01:00:00Z")
    );

    // Every ten minutes instead: the next tick is 01:20, not 02:00.
    put(&h, cron_function("*/10 * * * *", "UTC")).await;
    let report = fire(&h).await;
    assert!(report.fired.is_empty());
    assert_eq!(report.next_fire_at, Some(at("2026-01-01T01:20:00Z")));
    advance_to(&h, at("2026-01-01T01:20:00Z"));
    assert_eq!(
        only(&fire(&h).await).scheduled_at,
        at("2026-01-01T01:20:00Z")
    );

    // Another time zone is another cadence (03:00 in Berlin is 02:00Z in winter).
    put(&h, cron_function("0 3 * * *", "Europe/Berlin")).await;
    let report = fire(&h).await;
    assert!(report.fired.is_empty());
    assert_eq!(report.next_fire_at, Some(at("2026-01-01T02:00:00Z")));
}

/// A removed function, one whose cron trigger was replaced by an event, and one an app sync dropped start no
/// more runs.
pub async fn removing_the_function_stops_its_cron(h: Harness) {
    put(&h, cron_function("* * * * *", "UTC")).await;
    h.store.function_delete("nightly").await.unwrap();
    h.advance(Duration::from_secs(120));
    let report = fire(&h).await;
    assert!(report.fired.is_empty());
    assert_eq!(report.next_fire_at, None);

    put(&h, cron_function("* * * * *", "UTC")).await;
    put(
        &h,
        json!({"id": "nightly", "queue": "cron-q", "triggers": [{"event": "app/go"}]}),
    )
    .await;
    h.advance(Duration::from_secs(120));
    assert!(fire(&h).await.fired.is_empty());

    let (f, spec) = function(cron_function("* * * * *", "UTC"));
    let sync = |functions| AppSyncParams {
        app: "billing".into(),
        functions,
    };
    h.store.app_sync(sync(vec![(f, spec)])).await.unwrap();
    h.advance(Duration::from_secs(60));
    assert_eq!(fire(&h).await.fired.len(), 1);
    let synced = h.store.app_sync(sync(Vec::new())).await.unwrap();
    assert_eq!(synced.removed, vec!["nightly".to_owned()]);
    h.advance(Duration::from_secs(120));
    assert!(fire(&h).await.fired.is_empty());
}

/// On a daylight-saving day the tick is the cadence's: 02:30 in New York on 8 March 2026 does not exist, so
/// the run is for 03:00 EDT (07:00Z), once, and the next is 02:30 EDT the day after.
pub async fn a_cron_in_a_dst_gap_fires_after_the_gap(h: Harness) {
    advance_to(&h, at("2026-03-07T12:00:00Z"));
    put(&h, cron_function("30 2 * * *", "America/New_York")).await;
    let report = fire(&h).await;
    assert_eq!(report.next_fire_at, Some(at("2026-03-08T07:00:00Z")));
    advance_to(&h, at("2026-03-08T07:00:00Z"));
    let report = fire(&h).await;
    assert_eq!(only(&report).scheduled_at, at("2026-03-08T07:00:00Z"));
    assert_eq!(report.next_fire_at, Some(at("2026-03-09T06:30:00Z")));
    h.advance(Duration::from_secs(3600));
    assert!(fire(&h).await.fired.is_empty());
}

/// A singleton function's tick starts nothing while its last run is still live, and the next tick after that
/// run ended starts one again; the store never fails on the singleton's index.
pub async fn a_singleton_cron_skips_ticks_while_its_run_is_live(h: Harness) {
    let mut spec = cron_function("*/5 * * * *", "UTC");
    spec["singleton"] = json!({"mode": "skip"});
    put(&h, spec).await;
    advance_to(&h, at("2026-01-01T00:05:00Z"));
    let first = only(&fire(&h).await).clone();
    advance_to(&h, at("2026-01-01T00:10:00Z"));
    let skipped = fire(&h).await;
    assert!(skipped.fired.is_empty(), "{skipped:?}");
    assert_eq!(skipped.next_fire_at, Some(at("2026-01-01T00:15:00Z")));
    h.store.run_cancel(first.run_id).await.unwrap();
    advance_to(&h, at("2026-01-01T00:15:00Z"));
    let again = only(&fire(&h).await).clone();
    assert_ne!(again.run_id, first.run_id);
}
