//! Queue limits are exact with several servers on one PostgreSQL database: three stores (as three servers would
//! have) share one schema and eight workers claim from all three at once. After every claim the database's own
//! truth (running jobs counted in `jobs`) is checked against the limits; a throttle starts as many jobs as its
//! rate allows over a window of store time, and per-group throttles are independent. Real PostgreSQL only;
//! needs `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use offload_core::flow::limits::QueueLimitsPatch;
use offload_core::{ManualClock, SignedDuration, Timestamp};
use offload_store::conformance::job;
use offload_store::{
    Finish, FinishItem, JobClaimParams, JobFinishParams, JobInsertParams, QueueSetLimitsParams,
    Store,
};
use offload_store_postgres::PostgresStore;
use offload_store_postgres::testing::{self, TestSchema, truth};
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;

/// Three stores on one fresh schema, sharing `clock` when given (else each reads the database's).
async fn servers(
    url: &str,
    clock: Option<Arc<ManualClock>>,
) -> (TestSchema, Vec<Arc<PostgresStore>>) {
    testing::servers(url, 3, |mut options| {
        options.max_connections = 16;
        match &clock {
            Some(clock) => options.with_clock(clock.clone()),
            None => options,
        }
    })
    .await
}

fn patch(value: serde_json::Value) -> QueueLimitsPatch {
    serde_json::from_value(value).unwrap()
}

async fn set_limits(store: &PostgresStore, queue: &str, limits: serde_json::Value) {
    store
        .queue_set_limits(QueueSetLimitsParams {
            queue: queue.into(),
            patch: patch(limits),
        })
        .await
        .expect("queue_set_limits");
}

/// Running jobs of `queue` per group (`""`: no group), counted in the job table.
async fn running(pool: &PgPool, queue: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT coalesce(grp, ''), count(*) FROM jobs WHERE queue = $1 AND state = 'running' GROUP BY 1",
    )
    .bind(queue)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn complete(store: &PostgresStore, jobs: &[offload_core::ClaimedJob]) {
    let items = jobs
        .iter()
        .map(|j| FinishItem {
            id: j.id,
            lease_token: j.lease_token,
            finish: Finish::Complete { result: None },
        })
        .collect();
    for outcome in store
        .job_finish(JobFinishParams { items })
        .await
        .expect("finish")
    {
        outcome.expect("completed");
    }
}

/// The test: eight workers on three servers, 40 groups at 2, the queue at 30.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_and_group_concurrency_hold_across_three_servers() {
    exact_under_contention(8, 12).await;
}

/// The same with many more claimers than slots, so that claims of one queue overlap all the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_with_many_more_claimers_than_slots() {
    exact_under_contention(40, 6).await;
}

/// `workers` claimers spread over three servers take `40 * per_group` jobs of 40 groups, checking the truth
/// after every claim.
async fn exact_under_contention(workers: usize, per_group: usize) {
    let Some(url) = testing::url() else { return };
    let (schema, stores) = servers(&url, None).await;
    let pool = truth(&url, &schema.name).await;
    const QUEUE: &str = "tenants";
    const GROUPS: usize = 40;
    let per_group_jobs = per_group;
    const QUEUE_LIMIT: i64 = 30;
    const GROUP_LIMIT: i64 = 2;
    set_limits(
        &stores[0],
        QUEUE,
        json!({"concurrency": QUEUE_LIMIT, "group_concurrency": GROUP_LIMIT}),
    )
    .await;
    let mut jobs = Vec::new();
    for n in 0..per_group_jobs {
        for g in 0..GROUPS {
            let mut j = job(QUEUE);
            j.group = Some(format!("tenant-{g:02}"));
            j.priority = i32::try_from(n % 3).unwrap();
            jobs.push(j);
        }
    }
    // Enqueued through all three servers at once, while the workers already claim (a staggered half).
    let mut inserts = JoinSet::new();
    for (i, chunk) in jobs.chunks(60).enumerate() {
        let store = stores[i % 3].clone();
        let chunk = chunk.to_vec();
        inserts.spawn(async move { store.job_insert(JobInsertParams { jobs: chunk }).await });
    }
    let first = inserts.join_next().await.unwrap();
    first.unwrap().expect("insert");
    let total = u32::try_from(GROUPS * per_group_jobs).unwrap();
    let done = Arc::new(AtomicU32::new(0));
    let peak_queue = Arc::new(AtomicU32::new(0));
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let store = stores[w % 3].clone();
        let pool = pool.clone();
        let done = done.clone();
        let peak_queue = peak_queue.clone();
        tasks.spawn(async move {
            let mut held: Vec<offload_core::ClaimedJob> = Vec::new();
            let mut idle = 0;
            while done.load(Ordering::SeqCst) < total {
                let claimed = store
                    .job_claim(JobClaimParams {
                        queue: QUEUE.into(),
                        worker_id: format!("w{w}"),
                        max_jobs: fastrand::u32(1..=5),
                    })
                    .await
                    .expect("claim");
                // The store's own truth, right after the claim: no group above 2, the queue not above 30.
                let now = running(&pool, QUEUE).await;
                let all: i64 = now.values().sum();
                assert!(all <= QUEUE_LIMIT, "queue runs {all} jobs: {now:?}");
                for (group, n) in &now {
                    assert!(*n <= GROUP_LIMIT, "group {group} runs {n} jobs");
                }
                peak_queue.fetch_max(u32::try_from(all).unwrap(), Ordering::SeqCst);
                if claimed.is_empty() {
                    idle += 1;
                } else {
                    idle = 0;
                }
                held.extend(claimed);
                // Work: hold the jobs a moment, then complete some (all when nothing new came).
                tokio::task::yield_now().await;
                let keep = if idle > 0 { 0 } else { held.len() / 2 };
                let finished: Vec<_> = held.drain(keep..).collect();
                if !finished.is_empty() {
                    complete(&store, &finished).await;
                    done.fetch_add(u32::try_from(finished.len()).unwrap(), Ordering::SeqCst);
                }
                if idle > 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                assert!(idle < 5_000, "workers starved with jobs left");
            }
            assert!(held.is_empty());
        });
    }
    while let Some(r) = inserts.join_next().await {
        r.unwrap().expect("insert");
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = $1 AND state <> 'succeeded'")
            .bind(QUEUE)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0, "every job finished");
    // The group counters agree with the truth: nothing left running or available.
    let drift: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM queue_groups WHERE queue = $1 AND (available <> 0 OR running <> 0)",
    )
    .bind(QUEUE)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(drift, 0);
    assert!(
        peak_queue.load(Ordering::SeqCst) >= 4,
        "the workers really ran jobs side by side"
    );
    pool.close().await;
    for s in &stores {
        s.close().await;
    }
}

/// Claims every job the throttle allows at each 10 ms step of store time over `window`; returns the starts
/// per group (`""`: no group).
async fn starts_over(
    stores: &[Arc<PostgresStore>],
    clock: &ManualClock,
    queue: &str,
    window: Duration,
) -> BTreeMap<String, u32> {
    let mut starts: BTreeMap<String, u32> = BTreeMap::new();
    let end = clock.now_ts() + SignedDuration::try_from(window).unwrap();
    let mut i = 0;
    while clock.now_ts() < end {
        loop {
            let store = &stores[i % stores.len()];
            i += 1;
            let claimed = store
                .job_claim(JobClaimParams {
                    queue: queue.into(),
                    worker_id: "w".into(),
                    max_jobs: 10,
                })
                .await
                .expect("claim");
            if claimed.is_empty() {
                break;
            }
            for j in &claimed {
                let got = store.job_get(j.id).await.unwrap().unwrap();
                *starts.entry(got.group.unwrap_or_default()).or_default() += 1;
            }
            complete(store, &claimed).await;
        }
        clock.advance(SignedDuration::from_millis(10));
    }
    starts
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        offload_core::Clock::now(self)
    }
}

#[tokio::test]
async fn a_throttle_holds_its_rate_across_servers() {
    let Some(url) = testing::url() else { return };
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_900_000_000).unwrap(),
    ));
    let (_schema, stores) = servers(&url, Some(clock.clone())).await;
    set_limits(
        &stores[0],
        "mail",
        json!({"throttle": {"limit": 10, "period": "1s"}}),
    )
    .await;
    let jobs = (0..100).map(|_| job("mail")).collect();
    stores[1]
        .job_insert(JobInsertParams { jobs })
        .await
        .unwrap();
    let starts = starts_over(&stores, &clock, "mail", Duration::from_secs(2)).await;
    let n = starts.values().sum::<u32>();
    assert!((19..=21).contains(&n), "10/s over 2 s started {n}");
    // A held claim says when the throttle lets the next job start.
    let outcome = stores[2]
        .job_claim_next(JobClaimParams {
            queue: "mail".into(),
            worker_id: "w".into(),
            max_jobs: 1,
        })
        .await
        .unwrap();
    if outcome.jobs.is_empty() {
        let retry_at = outcome
            .retry_at
            .expect("a throttled claim says when to retry");
        assert!(retry_at > clock.now_ts());
    }
    for s in &stores {
        s.close().await;
    }
}

#[tokio::test]
async fn per_group_throttles_are_independent() {
    let Some(url) = testing::url() else { return };
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_900_000_000).unwrap(),
    ));
    let (_schema, stores) = servers(&url, Some(clock.clone())).await;
    set_limits(
        &stores[0],
        "sync",
        json!({"throttle": {"limit": 5, "period": "1s", "per_group": true}}),
    )
    .await;
    let mut jobs = Vec::new();
    for g in ["a", "b", "c"] {
        for _ in 0..30 {
            let mut j = job("sync");
            j.group = Some(g.into());
            jobs.push(j);
        }
    }
    stores[0]
        .job_insert(JobInsertParams { jobs })
        .await
        .unwrap();
    let starts = starts_over(&stores, &clock, "sync", Duration::from_secs(2)).await;
    for g in ["a", "b", "c"] {
        let n = starts.get(g).copied().unwrap_or(0);
        assert!((9..=11).contains(&n), "group {g}: 5/s over 2 s started {n}");
    }
    for s in &stores {
        s.close().await;
    }
}

/// Claim-and-complete throughput of a queue with limits against the same queue without: prints jobs per
/// second (`cargo test --release -- --ignored --nocapture throughput`). A measurement, not a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run by hand"]
async fn throughput_with_and_without_limits() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url, None).await;
    let cases = [
        ("plain", None, 1000),
        ("gc1", Some(json!({"group_concurrency": 1})), 1000),
        ("fair", Some(json!({"fair": true})), 10_000),
    ];
    for (queue, limits, groups) in cases {
        if let Some(limits) = limits {
            set_limits(&stores[0], queue, limits).await;
        }
        let jobs: Vec<_> = (0..5000)
            .map(|i| {
                let mut j = job(queue);
                j.group = Some(format!("g{}", i % groups));
                j
            })
            .collect();
        for chunk in jobs.chunks(1000) {
            stores[0]
                .job_insert(JobInsertParams {
                    jobs: chunk.to_vec(),
                })
                .await
                .unwrap();
        }
        let start = std::time::Instant::now();
        let done = Arc::new(AtomicU32::new(0));
        let mut tasks = JoinSet::new();
        for w in 0..8 {
            let store = stores[w % 3].clone();
            let done = done.clone();
            tasks.spawn(async move {
                while done.load(Ordering::SeqCst) < 5000 {
                    let claimed = store
                        .job_claim(JobClaimParams {
                            queue: queue.into(),
                            worker_id: format!("w{w}"),
                            max_jobs: 10,
                        })
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    complete(&store, &claimed).await;
                    done.fetch_add(u32::try_from(claimed.len()).unwrap(), Ordering::SeqCst);
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let rate = 5000.0 / start.elapsed().as_secs_f64();
        println!("{queue}: {rate:.0} jobs/s claimed and completed");
    }
}

/// The fairness case: 10,000 jobs of group A, then 5 of group B, one worker claiming one at a time:
/// B's jobs start within the next few claims, whatever A's backlog.
#[tokio::test]
async fn fair_claims_reach_a_small_group_behind_a_large_backlog() {
    let Some(url) = testing::url() else { return };
    let (_schema, stores) = servers(&url, None).await;
    set_limits(&stores[0], "fair", json!({"fair": true})).await;
    let backlog: Vec<_> = (0..10_000)
        .map(|_| {
            let mut j = job("fair");
            j.group = Some("a".into());
            j
        })
        .collect();
    for chunk in backlog.chunks(2_000) {
        stores[0]
            .job_insert(JobInsertParams {
                jobs: chunk.to_vec(),
            })
            .await
            .unwrap();
    }
    // A has been served already (as a busy tenant would have been).
    let first = stores[0].job_claim(JobClaimParams {
        queue: "fair".into(),
        worker_id: "w".into(),
        max_jobs: 1,
    });
    complete(&stores[0], &first.await.unwrap()).await;
    let small: Vec<_> = (0..5)
        .map(|_| {
            let mut j = job("fair");
            j.group = Some("b".into());
            j
        })
        .collect();
    let small_ids: Vec<_> = stores[1]
        .job_insert(JobInsertParams { jobs: small })
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut started_b = 0;
    let mut claims = 0;
    while started_b < 5 {
        claims += 1;
        assert!(claims <= 10, "B's 5 jobs waited more than 10 claims");
        let claimed = stores[claims % 3]
            .job_claim(JobClaimParams {
                queue: "fair".into(),
                worker_id: "w".into(),
                max_jobs: 1,
            })
            .await
            .unwrap();
        started_b += claimed.iter().filter(|j| small_ids.contains(&j.id)).count();
        complete(&stores[claims % 3], &claimed).await;
    }
    for s in &stores {
        s.close().await;
    }
}
