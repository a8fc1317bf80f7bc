//! Cron-triggered functions in the cron enqueuer, on a real SQLite store with a manual clock: a pass starts one
//! run per due tick (one after downtime), and the enqueuer's loop starts them when the clock reaches a tick.

use std::sync::Arc;
use std::time::Duration;

use offload_core::function::definition::FunctionSpec;
use offload_core::{ManualClock, SignedDuration, Timestamp};
use offload_engine::{Engine, EngineConfig};
use offload_store::{JobClaimParams, RunListParams};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

fn t0() -> Timestamp {
    "2026-03-01T00:00:00Z".parse().unwrap()
}

async fn engine(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Engine {
    let mut options = SqliteOptions::new(dir.path().join("fn-cron.db"));
    options.clock = clock;
    let config = EngineConfig {
        cron_poll: Duration::from_millis(20),
        ..EngineConfig::default()
    };
    Engine::new(Arc::new(SqliteStore::open(options).await.unwrap()), config)
}

fn spec(cron: &str, queue: &str) -> FunctionSpec {
    serde_json::from_value(json!({"queue": queue, "triggers": [{"cron": cron}]})).unwrap()
}

async fn runs(engine: &Engine, function: &str) -> usize {
    engine
        .functions()
        .runs(RunListParams {
            function_id: Some(function.into()),
            limit: 100,
            ..RunListParams::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_pass_starts_one_run_per_due_tick_and_one_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = engine(&dir, clock.clone()).await;
    engine
        .functions()
        .put(spec("*/5 * * * *", "fn-q"), "report")
        .await
        .unwrap();
    let pass = engine.fire_due_schedules().await.unwrap();
    assert_eq!(pass.function_runs, 0);
    assert_eq!(
        pass.next_fire_at,
        Some("2026-03-01T00:05:00Z".parse().unwrap())
    );

    clock.advance(SignedDuration::from_mins(5));
    assert_eq!(engine.fire_due_schedules().await.unwrap().function_runs, 1);
    assert_eq!(engine.fire_due_schedules().await.unwrap().function_runs, 0);

    // Three hours later: one run, not thirty-six.
    clock.advance(SignedDuration::from_hours(3));
    assert_eq!(engine.fire_due_schedules().await.unwrap().function_runs, 1);
    assert_eq!(runs(&engine, "report").await, 2);
}

#[tokio::test]
async fn the_enqueuer_loop_starts_a_run_when_the_clock_reaches_a_tick() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = engine(&dir, clock.clone()).await;
    engine.start();
    engine
        .functions()
        .put(spec("*/5 * * * * *", "fn-loop"), "pulse")
        .await
        .unwrap();
    clock.advance(SignedDuration::from_secs(5));
    // The long poll returns as soon as the enqueuer has started the run: its wake-up is the signal.
    let p = JobClaimParams {
        queue: "fn-loop".into(),
        worker_id: "w".into(),
        max_jobs: 1,
    };
    let calls = engine.claim(p, Duration::from_secs(20)).await.unwrap();
    assert_eq!(calls.len(), 1);
    let request: serde_json::Value = serde_json::from_str(calls[0].payload.get()).unwrap();
    assert_eq!(request["event"]["name"], "offload/cron.tick");
    assert_eq!(
        request["event"]["data"]["scheduled_at"],
        "2026-03-01T00:00:05Z"
    );
    assert_eq!(runs(&engine, "pulse").await, 1);
    engine.shutdown().await;
}
