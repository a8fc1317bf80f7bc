//! Engine behaviour on a real SQLite store: long-poll wake-ups, draining, and the maintenance loops driven by
//! a manual clock (the only fake: time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use offload_core::spec::{EnqueueRequest, Limits};
use offload_core::{JobState, ManualClock, NewJob, SignedDuration, Timestamp};
use offload_engine::{Engine, EngineConfig, EngineError};
use offload_store::{Finish, FinishItem, JobClaimParams, JobFinishParams};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use sqlx::Connection;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn fixture(config: EngineConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        "2026-03-01T00:00:00Z".parse::<Timestamp>().unwrap(),
    ));
    let mut options = SqliteOptions::new(dir.path().join("engine.db"));
    options.clock = clock.clone();
    let store = SqliteStore::open(options).await.unwrap();
    let engine = Engine::new(Arc::new(store), config);
    Fixture {
        engine,
        clock,
        _dir: dir,
    }
}

fn fast_config() -> EngineConfig {
    EngineConfig {
        stage_interval: Duration::from_millis(20),
        rescue_interval: Duration::from_millis(20),
        claim_poll: Duration::from_secs(30),
        ..EngineConfig::default()
    }
}

fn job(json: &str, now: Timestamp) -> NewJob {
    serde_json::from_str::<EnqueueRequest>(json)
        .unwrap()
        .validate(&Limits::default(), None, now)
        .unwrap()
}

fn claim(queue: &str) -> JobClaimParams {
    JobClaimParams {
        queue: queue.into(),
        worker_id: "w".into(),
        max_jobs: 10,
    }
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_job_is_enqueued() {
    let f = fixture(fast_config()).await;
    let waiter = tokio::spawn({
        let engine = f.engine.clone();
        async move {
            let started = Instant::now();
            let jobs = engine
                .claim(claim("mail"), Duration::from_secs(20))
                .await
                .unwrap();
            (jobs, started.elapsed())
        }
    });
    // A job found at once would prove nothing: enqueue once the long poll waits.
    f.engine.signals().long_polls.past(0).await;
    f.engine
        .enqueue(vec![job(r#"{"queue":"mail"}"#, f.engine.now())])
        .await
        .unwrap();
    let (jobs, waited) = waiter.await.unwrap();
    assert_eq!(jobs.len(), 1);
    // The backstop poll is 30 s here: only the wake-up can explain an answer this fast.
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn a_long_poll_on_an_empty_queue_ends_empty_after_its_wait() {
    let f = fixture(fast_config()).await;
    let jobs = f
        .engine
        .claim(claim("empty"), Duration::from_millis(200))
        .await
        .unwrap();
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn draining_ends_long_polls_and_refuses_new_claims() {
    let f = fixture(fast_config()).await;
    let waiter = tokio::spawn({
        let engine = f.engine.clone();
        async move { engine.claim(claim("q"), Duration::from_secs(30)).await }
    });
    f.engine.signals().long_polls.past(0).await;
    f.engine.stop_claiming();
    let jobs = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(jobs.is_empty());
    assert!(matches!(
        f.engine.claim(claim("q"), Duration::ZERO).await,
        Err(EngineError::ShuttingDown)
    ));
    // Enqueues still work while draining: producers are not refused.
    f.engine
        .enqueue(vec![job(r#"{"queue":"q"}"#, f.engine.now())])
        .await
        .unwrap();
    f.engine.shutdown().await;
}

#[tokio::test]
async fn maintenance_stages_due_jobs_and_wakes_claimers() {
    let f = fixture(fast_config()).await;
    f.engine.start();
    let inserted = f
        .engine
        .enqueue(vec![job(
            r#"{"queue":"later","delay":"1h"}"#,
            f.engine.now(),
        )])
        .await
        .unwrap();
    assert_eq!(inserted[0].state, JobState::Scheduled);
    assert!(
        f.engine
            .claim(claim("later"), Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );

    let waiter = tokio::spawn({
        let engine = f.engine.clone();
        async move {
            engine
                .claim(claim("later"), Duration::from_secs(20))
                .await
                .unwrap()
        }
    });
    // Claims without a wait never wait: the first long poll is the waiter's.
    f.engine.signals().long_polls.past(0).await;
    f.clock.advance(SignedDuration::from_mins(61));
    let jobs = waiter.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, inserted[0].id);
    f.engine.shutdown().await;
}

#[tokio::test]
async fn maintenance_rescues_expired_leases() {
    let f = fixture(fast_config()).await;
    f.engine.start();
    let new = job(
        r#"{"queue":"lease","timeout":"10s","backoff":{"base":"1s","cap":"1s"}}"#,
        f.engine.now(),
    );
    let id = new.id;
    f.engine.enqueue(vec![new]).await.unwrap();
    let first = f
        .engine
        .claim(claim("lease"), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);

    f.clock.advance(SignedDuration::from_secs(11));
    // A pass that starts after the clock moved must rescue it.
    let rescuer = &f.engine.signals().rescuer;
    rescuer.past(rescuer.count() + 1).await;
    let rescued = f.engine.get(id).await.unwrap().unwrap();
    assert_eq!(rescued.state, JobState::Retrying);
    let attempts = rescued.attempts.unwrap();
    assert_eq!(attempts[0].error.as_deref(), Some("lease expired"));

    f.clock.advance(SignedDuration::from_secs(2));
    let again = f
        .engine
        .claim(claim("lease"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 2));
    f.engine.shutdown().await;
}

#[tokio::test]
async fn maintenance_repairs_a_drifted_group_counter_and_wakes_claimers() {
    let f = fixture(EngineConfig {
        flow_repair_interval: Duration::from_millis(20),
        ..fast_config()
    })
    .await;
    let patch = serde_json::from_value(serde_json::json!({"group_concurrency": 1})).unwrap();
    f.engine.set_limits("flow".into(), patch).await.unwrap();
    let jobs = (0..2)
        .map(|_| job(r#"{"queue":"flow","group":"a"}"#, f.engine.now()))
        .collect();
    f.engine.enqueue(jobs).await.unwrap();
    let first = f.engine.claim(claim("flow"), Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    // Group a now counts one running job more than it has: once its real one ends, it still "runs" one, which
    // holds its waiting job until the repairer sets the count right.
    let url = format!("sqlite://{}", f._dir.path().join("engine.db").display());
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE queue_groups SET running = running + 1 WHERE queue = 'flow' AND grp = 'a'")
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    let finished = f
        .engine
        .store()
        .job_finish(JobFinishParams {
            items: vec![FinishItem {
                id: first[0].id,
                lease_token: first[0].lease_token,
                finish: Finish::Complete { result: None },
            }],
        })
        .await
        .unwrap();
    finished.into_iter().for_each(|r| drop(r.unwrap()));
    assert!(
        f.engine
            .claim(claim("flow"), Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the drifted count holds the group"
    );

    // A claimer waits (its poll is 30 s away) before maintenance starts: the job comes from the repair's wake-up.
    let started = Instant::now();
    let waiting = tokio::spawn({
        let engine = f.engine.clone();
        async move { engine.claim(claim("flow"), Duration::from_secs(20)).await }
    });
    f.engine.signals().long_polls.past(0).await;
    f.engine.start();
    let next = waiting.await.unwrap().unwrap();
    assert_eq!(next.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(f.engine.signals().flow_repair.count() >= 1);
    f.engine.shutdown().await;
}
