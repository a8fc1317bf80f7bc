//! Store-level throughput figures (not a correctness test). Run with `cargo bench -p offload-store-sqlite`.
//!
//! These measure the store alone (no HTTP), so they bound what `offload bench` can reach end to end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offload_core::{Backoff, JobId, NewJob, RunAt};
use offload_store::{
    DynStore, Finish, FinishItem, JobClaimParams, JobFinishParams, JobInsertParams, JobListParams,
};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::value::RawValue;

fn job() -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: "bench".into(),
        name: Some("noop".into()),
        payload: RawValue::from_string(
            r#"{"user_id":12345,"action":"send_email","template":"welcome"}"#.into(),
        )
        .unwrap(),
        run_at: RunAt::Now,
        priority: 0,
        max_attempts: 25,
        backoff: Backoff::default(),
        timeout: Duration::from_secs(300),
        idempotency_key: None,
        request_fingerprint: None,
        tags: BTreeMap::new(),
        target: None,
        group: None,
        debounce: None,
    }
}

async fn open() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path().join("bench.db")))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

fn rate(what: &str, n: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!("{what}: {n} in {secs:.2}s = {:.0}/s", n as f64 / secs);
}

async fn single_job_inserts_from_64_callers() {
    let (store, _dir) = open().await;
    let per_caller = 1000;
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    store
                        .job_insert(JobInsertParams { jobs: vec![job()] })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    rate("single inserts, 64 callers", 64 * per_caller, started);
}

async fn batch_inserts() {
    let (store, _dir) = open().await;
    for batch in [1000, 10_000] {
        let total = 200_000;
        let batches: Vec<Vec<NewJob>> = (0..total / batch)
            .map(|_| (0..batch).map(|_| job()).collect())
            .collect();
        let started = Instant::now();
        for jobs in batches {
            store.job_insert(JobInsertParams { jobs }).await.unwrap();
        }
        rate(&format!("batch inserts of {batch}"), total, started);
    }
    let queues = store.queue_list().await.unwrap();
    println!("{queues:?}");
}

async fn claim_and_complete_in_batches() {
    let (store, _dir) = open().await;
    let total = 200_000;
    for _ in 0..total / 10_000 {
        store
            .job_insert(JobInsertParams {
                jobs: (0..10_000).map(|_| job()).collect(),
            })
            .await
            .unwrap();
    }
    for (workers, batch) in [(4, 500), (2, 1000), (8, 100)] {
        let n = total / 3;
        let started = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut done = 0;
                    while done < n / workers {
                        let p = JobClaimParams {
                            queue: "bench".into(),
                            worker_id: format!("w{w}"),
                            max_jobs: batch,
                        };
                        let t = Instant::now();
                        let claimed = store.job_claim(p).await.unwrap();
                        let tc = t.elapsed();
                        if claimed.is_empty() {
                            break;
                        }
                        let items = claimed
                            .iter()
                            .map(|c| FinishItem {
                                id: c.id,
                                lease_token: c.lease_token,
                                finish: Finish::Complete { result: None },
                            })
                            .collect();
                        let t = Instant::now();
                        let out = store.job_finish(JobFinishParams { items }).await.unwrap();
                        if std::env::var("TRACE").is_ok() {
                            println!("claim {tc:?} finish {:?}", t.elapsed());
                        }
                        done += out.len();
                        assert!(out.iter().all(|o| o.is_ok()));
                    }
                    done
                })
            })
            .collect();
        let mut done = 0;
        for t in tasks {
            done += t.await.unwrap();
        }
        rate(
            &format!("claim+complete, {workers} workers x {batch}"),
            done,
            started,
        );
    }
    let started = Instant::now();
    let queues = store.queue_list().await.unwrap();
    println!("queue_list in {:?}: {queues:?}", started.elapsed());
    let started = Instant::now();
    let page = store
        .job_list(JobListParams {
            queue: Some("bench".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    println!(
        "job_list(queue) of {} in {:?}",
        page.len(),
        started.elapsed()
    );
}

/// Measures claim and finish of 1000-job batches by one worker, after optional schema changes (EXPERIMENT:
/// comma-separated SQL statements run on the file before opening the store).
async fn claim_and_complete_breakdown() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let store = SqliteStore::open(SqliteOptions::new(&path)).await.unwrap();
    if let Ok(sql) = std::env::var("EXPERIMENT") {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
        }
        c.close().await.unwrap();
    }
    let store: DynStore = Arc::new(store);
    let started = Instant::now();
    for _ in 0..10 {
        store
            .job_insert(JobInsertParams {
                jobs: (0..10_000).map(|_| job()).collect(),
            })
            .await
            .unwrap();
    }
    rate("insert 100k in batches of 10k", 100_000, started);
    let (mut claim, mut finish) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..50 {
        let t = Instant::now();
        let p = JobClaimParams {
            queue: "bench".into(),
            worker_id: "w".into(),
            max_jobs: 1000,
        };
        let claimed = store.job_claim(p).await.unwrap();
        claim += t.elapsed();
        let items = claimed
            .iter()
            .map(|c| FinishItem {
                id: c.id,
                lease_token: c.lease_token,
                finish: Finish::Complete { result: None },
            })
            .collect();
        let t = Instant::now();
        store.job_finish(JobFinishParams { items }).await.unwrap();
        finish += t.elapsed();
    }
    println!("per 1000: claim {:?} finish {:?}", claim / 50, finish / 50);
}

/// Claim-and-complete throughput of one queue with `groups` groups of jobs under `limits` (JSON of a
/// `PATCH /v1/queues/{queue}`; `null`: none), `workers` claimers taking `batch` jobs at a time.
async fn flow_claims(
    what: &str,
    limits: serde_json::Value,
    groups: usize,
    workers: usize,
    batch: u32,
) -> f64 {
    let (store, _dir) = open().await;
    if !limits.is_null() {
        let patch = serde_json::from_value(limits).unwrap();
        store
            .queue_set_limits(offload_store::QueueSetLimitsParams {
                queue: "bench".into(),
                patch,
            })
            .await
            .unwrap();
    }
    let total = 40_000;
    let jobs: Vec<NewJob> = (0..total)
        .map(|i| NewJob {
            group: Some(format!("tenant-{}", i % groups)),
            ..job()
        })
        .collect();
    for chunk in jobs.chunks(10_000) {
        store
            .job_insert(JobInsertParams {
                jobs: chunk.to_vec(),
            })
            .await
            .unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let p = JobClaimParams {
                        queue: "bench".into(),
                        worker_id: format!("w{w}"),
                        max_jobs: batch,
                    };
                    let claimed = store.job_claim(p).await.unwrap();
                    if claimed.is_empty() {
                        return done;
                    }
                    let items = claimed
                        .iter()
                        .map(|c| FinishItem {
                            id: c.id,
                            lease_token: c.lease_token,
                            finish: Finish::Complete { result: None },
                        })
                        .collect();
                    let out = store.job_finish(JobFinishParams { items }).await.unwrap();
                    done += out.len();
                }
            })
        })
        .collect();
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    rate(what, done, started);
    done as f64 / secs
}

/// The issue's flow-control figures: limited claims against the same queue without limits.
async fn flow_figures() {
    let (workers, batch) = (8, 10);
    let plain = flow_claims(
        "flow: no limits, 1,000 groups",
        serde_json::Value::Null,
        1000,
        workers,
        batch,
    )
    .await;
    let gc = flow_claims(
        "flow: group_concurrency 1, 1,000 groups",
        serde_json::json!({"group_concurrency": 1}),
        1000,
        workers,
        batch,
    )
    .await;
    let fair = flow_claims(
        "flow: fair, 10,000 groups",
        serde_json::json!({"fair": true}),
        10_000,
        workers,
        batch,
    )
    .await;
    println!(
        "flow: group_concurrency {:.0}% and fair {:.0}% of the queue without limits",
        100.0 * gc / plain,
        100.0 * fair / plain
    );
}

/// `cargo bench -p offload-store-sqlite`: the store alone, without HTTP, to tell store limits from server ones.
/// `OFFLOAD_BENCH=flow` runs only the flow-control figures.
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        if std::env::var("OFFLOAD_BENCH").as_deref() == Ok("flow") {
            flow_figures().await;
            return;
        }
        single_job_inserts_from_64_callers().await;
        batch_inserts().await;
        claim_and_complete_in_batches().await;
        claim_and_complete_breakdown().await;
        flow_figures().await;
    });
}
