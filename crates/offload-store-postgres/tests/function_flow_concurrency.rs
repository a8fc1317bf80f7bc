//! Flow controls of functions are exact with several servers on one PostgreSQL database: three stores share one
//! schema and send events at once. A rate limit starts exactly `limit` runs per key; a singleton in `skip` mode
//! leaves exactly one live run per key; a keyed concurrency never runs more calls of a key (nor of the queue)
//! than its limits. Every event beyond a limit is recorded as skipped. Real PostgreSQL only; needs
//! `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use offload_core::function::definition::FunctionSpec;
use offload_core::function::event::{EventRequest, NewEvent};
use offload_core::function::protocol::Json;
use offload_core::function::record::RecordLimits;
use offload_core::{ClaimedJob, ManualClock, Timestamp};
use offload_store::fanout::SkipReason;
use offload_store::{
    EventSendParams, EventSent, Finish, FinishItem, FunctionPutParams, JobClaimParams,
    JobFinishParams, Store,
};
use offload_store_postgres::PostgresStore;
use offload_store_postgres::testing::{self, TestSchema, truth};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Three stores on one fresh schema sharing one clock that stands still (so a rate limit's period never
/// passes during a test).
async fn servers(url: &str) -> (TestSchema, Vec<Arc<PostgresStore>>) {
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_767_225_600).unwrap(),
    ));
    testing::servers(url, 3, |mut options| {
        options.max_connections = 8;
        options.with_clock(clock.clone())
    })
    .await
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

fn event(now: Timestamp, name: &str, data: Value) -> NewEvent {
    EventRequest {
        name: name.into(),
        data: Some(Json::from_text(data.to_string()).unwrap()),
        id: None,
        ts: None,
    }
    .validate(now, 1 << 20)
    .unwrap()
}

/// Sends `per_key` events for each key at once, in batches of 1 to 3 spread over the three servers; returns
/// every event's outcome.
async fn race(
    stores: &[Arc<PostgresStore>],
    name: &'static str,
    keys: &[&str],
    per_key: usize,
) -> Vec<(String, EventSent)> {
    let now = stores[0].now();
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut all: Vec<String> = (0..per_key)
        .flat_map(|_| keys.iter().map(|k| (*k).to_owned()))
        .collect();
    while !all.is_empty() {
        let take = fastrand::usize(1..=3).min(all.len());
        batches.push(all.drain(..take).collect());
    }
    let mut sends = JoinSet::new();
    for (i, batch) in batches.into_iter().enumerate() {
        let store = stores[i % 3].clone();
        sends.spawn(async move {
            let events = batch
                .iter()
                .map(|k| event(now, name, json!({"key": k})))
                .collect();
            let sent = store
                .event_send(EventSendParams {
                    events,
                    limits: RecordLimits::default(),
                })
                .await
                .expect("event_send")
                .events;
            batch.into_iter().zip(sent).collect::<Vec<_>>()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = sends.join_next().await {
        out.extend(r.unwrap());
    }
    out
}

/// Runs started and events skipped (for `reason`), per key.
fn tally(sent: &[(String, EventSent)], reason: SkipReason) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (key, e) in sent {
        let entry = out.entry(key.clone()).or_default();
        entry.0 += e.runs.len();
        entry.1 += e.skipped.iter().filter(|s| s.reason == reason).count();
        assert_eq!(
            e.runs.len() + e.skipped.len(),
            1,
            "each event starts or skips"
        );
    }
    out
}

/// 90 events for three keys at once through three servers, 5 runs per key per hour: exactly 5 runs per key,
/// 25 skipped events per key, each recorded on its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_starts_exactly_limit_runs_across_servers() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url).await;
    put(
        &stores[0],
        json!({"id": "digest", "triggers": [{"event": "app/ping"}],
            "rate_limit": {"limit": 5, "period": "1h", "key": "data.key"}}),
    )
    .await;
    let sent = race(&stores, "app/ping", &["a", "b", "c"], 30).await;
    for (key, (runs, skipped)) in tally(&sent, SkipReason::RateLimit) {
        assert_eq!((runs, skipped), (5, 25), "key {key}");
    }
    let (_, skipped) = sent.iter().find(|(_, e)| !e.skipped.is_empty()).unwrap();
    let stored = stores[2].event_get(skipped.id).await.unwrap().unwrap();
    assert_eq!(stored.skipped, skipped.skipped);
    for s in &stores {
        s.close().await;
    }
}

/// 90 events for three keys at once through three servers, singleton in `skip` mode: exactly one run per key
/// (and one live run per key in the table), every other event skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_singleton_in_skip_mode_leaves_one_live_run_per_key_across_servers() {
    let Some(url) = testing::url() else { return };
    let (schema, stores) = servers(&url).await;
    let pool = truth(&url, &schema.name).await;
    put(
        &stores[0],
        json!({"id": "import", "triggers": [{"event": "app/import"}],
            "singleton": {"key": "data.key", "mode": "skip"}}),
    )
    .await;
    let sent = race(&stores, "app/import", &["a", "b", "c"], 30).await;
    for (key, (runs, skipped)) in tally(&sent, SkipReason::Singleton) {
        assert_eq!((runs, skipped), (1, 29), "key {key}");
    }
    let live: Vec<(String, i64)> = sqlx::query_as(
        "SELECT singleton_key, count(*) FROM runs WHERE function_id = 'import' \
         AND state NOT IN ('succeeded', 'failed', 'cancelled') GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        live,
        vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 1)]
    );
    pool.close().await;
    for s in &stores {
        s.close().await;
    }
}

/// 40 runs of 5 accounts started at once through three servers, the function at 6 running calls and 2 per
/// account; six workers on three servers claim and finish the calls, checking the running calls in the table
/// after every claim: never more than 2 of an account, nor 6 in all; every run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_concurrency_holds_across_servers() {
    let Some(url) = testing::url() else { return };
    let (schema, stores) = servers(&url).await;
    let pool = truth(&url, &schema.name).await;
    put(
        &stores[0],
        json!({"id": "sync", "triggers": [{"event": "app/sync"}],
            "concurrency": [{"limit": 6}, {"limit": 2, "key": "data.key"}]}),
    )
    .await;
    let keys = ["a", "b", "c", "d", "e"];
    let sent = race(&stores, "app/sync", &keys, 8).await;
    assert_eq!(sent.iter().map(|(_, e)| e.runs.len()).sum::<usize>(), 40);

    let done = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let mut workers = JoinSet::new();
    for w in 0..6 {
        let store = stores[w % 3].clone();
        let pool = pool.clone();
        let done = done.clone();
        let peak = peak.clone();
        workers.spawn(async move {
            let mut idle = 0;
            while done.load(Ordering::SeqCst) < 40 {
                let claimed: Vec<ClaimedJob> = store
                    .job_claim(JobClaimParams {
                        queue: "sync".into(),
                        worker_id: format!("w{w}"),
                        max_jobs: 2,
                    })
                    .await
                    .expect("claim");
                let running: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT coalesce(grp, ''), count(*) FROM jobs WHERE queue = 'sync' \
                     AND state = 'running' GROUP BY 1",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let all: i64 = running.iter().map(|(_, n)| n).sum();
                assert!(all <= 6, "the queue runs {all} calls: {running:?}");
                for (group, n) in &running {
                    assert!(*n <= 2, "account {group} runs {n} calls");
                }
                peak.fetch_max(u32::try_from(all).unwrap(), Ordering::SeqCst);
                if claimed.is_empty() {
                    idle += 1;
                    assert!(idle < 5_000, "workers starved with runs left");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                idle = 0;
                tokio::task::yield_now().await;
                let items = claimed
                    .iter()
                    .map(|c| FinishItem {
                        id: c.id,
                        lease_token: c.lease_token,
                        finish: Finish::Complete {
                            result: Some(
                                serde_json::value::RawValue::from_string(
                                    json!({"done": true}).to_string(),
                                )
                                .unwrap(),
                            ),
                        },
                    })
                    .collect();
                for outcome in store
                    .job_finish(JobFinishParams { items })
                    .await
                    .expect("finish")
                {
                    outcome.expect("completed");
                }
                done.fetch_add(u32::try_from(claimed.len()).unwrap(), Ordering::SeqCst);
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE function_id = 'sync' AND state = 'succeeded'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ended, 40, "every run ended");
    assert!(
        peak.load(Ordering::SeqCst) >= 3,
        "calls of several accounts ran side by side"
    );
    pool.close().await;
    for s in &stores {
        s.close().await;
    }
}
