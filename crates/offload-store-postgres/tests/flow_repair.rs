//! Counter repair is exact while claims and ends run: three stores share one schema, six workers claim and
//! complete grouped jobs of a limited queue through all three, and a repairer checks every counter over and
//! over meanwhile. It must never report (or "fix") a counter that is right, and must find a counter corrupted
//! in the middle of the run exactly once; at the end every counter equals its jobs. Real PostgreSQL only;
//! needs `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use offload_core::flow::limits::QueueLimitsPatch;
use offload_store::conformance::job;
use offload_store::{
    Finish, FinishItem, FlowCounter, JobClaimParams, JobFinishParams, JobInsertParams,
    QueueSetLimitsParams, Store,
};
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinSet;

const QUEUE: &str = "tenants";
const GROUPS: usize = 20;
const PER_GROUP: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_under_concurrent_claims_fixes_only_real_drift() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let mut stores = Vec::new();
    for _ in 0..3 {
        let options = PostgresOptions::new(&url).with_schema(&schema.name);
        stores.push(Arc::new(PostgresStore::open(options).await.expect("open")));
    }
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            PgConnectOptions::from_str(&url)
                .unwrap()
                .options([("search_path", schema.name.as_str())]),
        )
        .await
        .unwrap();
    let patch: QueueLimitsPatch =
        serde_json::from_value(serde_json::json!({"concurrency": 12, "group_concurrency": 2}))
            .unwrap();
    stores[0]
        .queue_set_limits(QueueSetLimitsParams {
            queue: QUEUE.into(),
            patch,
        })
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..PER_GROUP {
        for g in 0..GROUPS {
            let mut j = job(QUEUE);
            j.group = Some(format!("g{g:02}"));
            jobs.push(j);
        }
    }
    stores[1]
        .job_insert(JobInsertParams { jobs })
        .await
        .unwrap();

    let total = u32::try_from(GROUPS * PER_GROUP).unwrap();
    let done = Arc::new(AtomicU32::new(0));
    let mut workers = JoinSet::new();
    for w in 0..6 {
        let store = stores[w % 3].clone();
        let done = done.clone();
        workers.spawn(async move {
            let mut idle = 0;
            while done.load(Ordering::SeqCst) < total {
                let claimed = store
                    .job_claim(JobClaimParams {
                        queue: QUEUE.into(),
                        worker_id: format!("w{w}"),
                        max_jobs: 3,
                    })
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    idle += 1;
                    assert!(idle < 20_000, "workers starved with jobs left");
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                let items = claimed
                    .iter()
                    .map(|j| FinishItem {
                        id: j.id,
                        lease_token: j.lease_token,
                        finish: Finish::Complete { result: None },
                    })
                    .collect();
                for outcome in store.job_finish(JobFinishParams { items }).await.unwrap() {
                    outcome.expect("completed");
                }
                done.fetch_add(u32::try_from(claimed.len()).unwrap(), Ordering::SeqCst);
            }
        });
    }

    // The repairer: every pass reports nothing, except the one pass after the corruption.
    let finished = Arc::new(AtomicBool::new(false));
    let repairer = {
        let (store, pool, finished) = (stores[2].clone(), pool.clone(), finished.clone());
        tokio::spawn(async move {
            let mut passes = 0;
            let mut found = Vec::new();
            let mut corrupted = false;
            while !finished.load(Ordering::SeqCst) || !corrupted {
                let fixes = store.flow_counters_repair().await.expect("repair");
                found.extend(fixes);
                passes += 1;
                if passes == 3 {
                    let n = sqlx::query(
                        "UPDATE queue_groups SET running = running + 3 WHERE queue = $1 AND grp = 'g07'",
                    )
                    .bind(QUEUE)
                    .execute(&pool)
                    .await
                    .unwrap()
                    .rows_affected();
                    assert_eq!(n, 1);
                    corrupted = true;
                }
            }
            // One more pass after the workers ended.
            found.extend(store.flow_counters_repair().await.expect("repair"));
            (passes, found)
        })
    };
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    finished.store(true, Ordering::SeqCst);
    let (passes, found) = repairer.await.unwrap();
    assert!(passes >= 3, "the repairer ran beside the workers");
    let found: Vec<_> = found
        .into_iter()
        .map(|r| (r.delta(), r.queue, r.group, r.counter))
        .collect();
    assert_eq!(
        found,
        vec![(
            -3,
            QUEUE.to_owned(),
            Some("g07".to_owned()),
            FlowCounter::GroupRunning
        )],
        "only the corrupted counter was repaired, once"
    );
    assert!(stores[0].flow_counters_repair().await.unwrap().is_empty());
    let drift: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM queue_groups WHERE queue = $1 AND (available <> 0 OR running <> 0)",
    )
    .bind(QUEUE)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(drift, 0, "every group counter is back to zero");
    pool.close().await;
    for s in &stores {
        s.close().await;
    }
}
