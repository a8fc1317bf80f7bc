//! Cron-triggered functions are exact with several servers on one PostgreSQL database: three stores (as three
//! servers would have) share one schema and one clock, and fire the due cron ticks of many functions at once,
//! each in small batches. Every tick starts exactly one run. Real PostgreSQL only; needs
//! `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::collections::BTreeMap;
use std::sync::Arc;

use offload_core::function::definition::FunctionSpec;
use offload_core::{JobState, ManualClock, SignedDuration, Timestamp};
use offload_store::{CronFired, FunctionCronFireParams, FunctionPutParams, RunListParams, Store};
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};
use serde_json::json;
use tokio::task::JoinSet;

const FUNCTIONS: usize = 40;
const TICKS: i64 = 4;

/// Fires until a call finds nothing due that is not being fired elsewhere; returns every tick it fired.
async fn fire_all(store: Arc<PostgresStore>) -> Vec<CronFired> {
    let mut fired = Vec::new();
    loop {
        let report = store
            .function_cron_fire(FunctionCronFireParams { limit: 7 })
            .await
            .expect("function_cron_fire");
        if report.fired.is_empty() {
            return fired;
        }
        fired.extend(report.fired);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_fire_each_cron_tick_exactly_once() {
    let Some(url) = testing::url() else { return };
    let start: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let schema = TestSchema::new(&url);
    let mut stores = Vec::new();
    for _ in 0..3 {
        let options = PostgresOptions::new(&url)
            .with_schema(&schema.name)
            .with_clock(clock.clone());
        stores.push(Arc::new(PostgresStore::open(options).await.expect("open")));
    }
    for i in 0..FUNCTIONS {
        let spec = json!({"id": format!("f{i:02}"), "queue": "cron-q",
            "triggers": [{"cron": "* * * * *"}]});
        let function = serde_json::from_value::<FunctionSpec>(spec.clone())
            .unwrap()
            .validate(None)
            .unwrap();
        stores[i % 3]
            .function_put(FunctionPutParams {
                function,
                spec,
                app: None,
            })
            .await
            .expect("function_put");
    }

    for tick in 1..=TICKS {
        clock.advance(SignedDuration::from_secs(60));
        let mut firing = JoinSet::new();
        for store in &stores {
            firing.spawn(fire_all(store.clone()));
        }
        let mut per_function: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
        while let Some(fired) = firing.join_next().await {
            for f in fired.unwrap() {
                per_function
                    .entry(f.function_id)
                    .or_default()
                    .push(f.scheduled_at);
            }
        }
        let expected: Timestamp = start
            .checked_add(SignedDuration::from_secs(60 * tick - 30))
            .unwrap();
        assert_eq!(per_function.len(), FUNCTIONS, "every function fired");
        for (id, times) in &per_function {
            assert_eq!(times, &vec![expected], "{id}: one run for tick {tick}");
        }
    }

    for i in 0..FUNCTIONS {
        let runs = stores[0]
            .run_list(RunListParams {
                function_id: Some(format!("f{i:02}")),
                limit: 100,
                ..RunListParams::default()
            })
            .await
            .unwrap();
        assert_eq!(runs.len(), TICKS as usize, "f{i:02}: one run per tick");
    }
    let calls = stores[0]
        .queue_get("cron-q")
        .await
        .unwrap()
        .expect("the calls' queue");
    assert_eq!(
        calls.counts.get(&JobState::Available).copied(),
        Some((FUNCTIONS as u64) * TICKS as u64),
        "one first call per run"
    );
}
