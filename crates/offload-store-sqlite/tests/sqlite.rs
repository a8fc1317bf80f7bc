//! SQLite-specific guarantees that the shared conformance suite cannot see: the file format and durability.

use std::sync::Arc;

use offload_core::{JobId, JobState, ManualClock, NewJob, Timestamp};
use offload_store::conformance::{job, t0};
use offload_store::{JobClaimParams, JobInsertParams, Store};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use sqlx::{Connection, Row};

fn options(path: &std::path::Path) -> SqliteOptions {
    SqliteOptions::new(path).with_clock(Arc::new(ManualClock::new(t0())))
}

#[tokio::test]
async fn committed_jobs_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("offload.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let jobs: Vec<NewJob> = (0..3).map(|_| job("durable")).collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    {
        let store = SqliteStore::open(options(&path)).await.unwrap();
        store.job_insert(JobInsertParams { jobs }).await.unwrap();
        let p = JobClaimParams {
            queue: "durable".into(),
            worker_id: "w".into(),
            max_jobs: 1,
        };
        assert_eq!(store.job_claim(p).await.unwrap().len(), 1);
        store.close().await;
    }
    let store = SqliteStore::open(options(&path)).await.unwrap();
    for id in &ids {
        assert!(
            store.job_get(*id).await.unwrap().is_some(),
            "job {id} survived"
        );
    }
    let queue = store.queue_list().await.unwrap().remove(0);
    assert_eq!(queue.counts[&JobState::Available], 2);
    assert_eq!(queue.counts[&JobState::Running], 1);
    store.close().await;
}

#[tokio::test]
async fn jobs_survive_a_store_dropped_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let new = job("q");
    let id = new.id;
    {
        let store = SqliteStore::open(options(&path)).await.unwrap();
        store
            .job_insert(JobInsertParams { jobs: vec![new] })
            .await
            .unwrap();
    }
    let store = SqliteStore::open(options(&path)).await.unwrap();
    assert!(store.job_get(id).await.unwrap().is_some());
}

#[tokio::test]
async fn database_is_in_wal_mode_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let store = SqliteStore::open(options(&path)).await.unwrap();
    assert!(path.exists(), "the file is created");

    // journal_mode=WAL is stored in the file; any connection sees it.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
    let version: i64 = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    let newest_file = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .get(..4)?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap();
    assert_eq!(version, newest_file, "every migration is applied");
    conn.close().await.unwrap();

    // synchronous is per connection: the store reports its writer's setting.
    let durability = store.durability().await.unwrap();
    assert_eq!(
        (
            durability.journal_mode.as_str(),
            durability.synchronous.as_str()
        ),
        ("wal", "full")
    );
    store.close().await;
}

#[tokio::test]
async fn times_are_kept_to_the_microsecond() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(options(&dir.path().join("offload.db")))
        .await
        .unwrap();
    let at: Timestamp = "2026-01-01T10:00:00.123456Z".parse().unwrap();
    let new = NewJob {
        run_at: offload_core::RunAt::At(at),
        ..job("q")
    };
    let id = new.id;
    store
        .job_insert(JobInsertParams { jobs: vec![new] })
        .await
        .unwrap();
    assert_eq!(store.job_get(id).await.unwrap().unwrap().run_at, at);
}
