//! SQLite-specific flow-control guarantees: concurrent claims committed in one group never exceed a limit, and
//! the usage counters kept by triggers equal the truth after a mixed workload.

use std::collections::BTreeMap;
use std::sync::Arc;

use offload_core::flow::limits::QueueLimitsPatch;
use offload_core::state::{Failure, FailureCause};
use offload_core::{ClaimedJob, ManualClock, NewJob};
use offload_store::conformance::{job, t0};
use offload_store::{
    DynStore, Finish, FinishItem, JobClaimParams, JobFinishParams, JobInsertParams, JobListParams,
    QueueSetLimitsParams,
};
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use sqlx::Connection;

const GROUPS: usize = 12;
const PER_GROUP: usize = 15;
const CONCURRENCY: usize = 7;
const GROUP_CONCURRENCY: usize = 2;

fn grouped(g: usize) -> NewJob {
    NewJob {
        group: Some(format!("g{g}")),
        ..job("q")
    }
}

async fn claim_all(store: &DynStore, claimers: usize) -> Vec<ClaimedJob> {
    let tasks: Vec<_> = (0..claimers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let p = JobClaimParams {
                        queue: "q".into(),
                        worker_id: format!("w{w}"),
                        max_jobs: 3,
                    };
                    let claimed = store.job_claim(p).await.unwrap();
                    if claimed.is_empty() {
                        return got;
                    }
                    got.extend(claimed);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Ends each job one of three ways, all at once.
async fn end_all(store: &DynStore, claimed: &[ClaimedJob], round: usize) {
    let tasks: Vec<_> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let store = store.clone();
            let finish = match (i + round) % 3 {
                0 => Finish::Complete { result: None },
                1 => Finish::Fail(Failure {
                    error: "boom".into(),
                    retry_after: None,
                    retryable: false,
                    cause: FailureCause::Worker,
                }),
                _ => Finish::Cancel {
                    reason: "stop".into(),
                },
            };
            let item = FinishItem {
                id: c.id,
                lease_token: c.lease_token,
                finish,
            };
            tokio::spawn(async move {
                let out = store
                    .job_finish(JobFinishParams { items: vec![item] })
                    .await
                    .unwrap();
                assert!(out[0].is_ok());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_keep_limits_and_counters_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offload.db");
    let options = SqliteOptions::new(&path).with_clock(Arc::new(ManualClock::new(t0())));
    let store: DynStore = Arc::new(SqliteStore::open(options).await.unwrap());
    let patch: QueueLimitsPatch = serde_json::from_value(serde_json::json!({
        "concurrency": CONCURRENCY, "group_concurrency": GROUP_CONCURRENCY, "fair": true
    }))
    .unwrap();
    store
        .queue_set_limits(QueueSetLimitsParams {
            queue: "q".into(),
            patch,
        })
        .await
        .unwrap();
    let mut jobs: Vec<NewJob> = (0..GROUPS * PER_GROUP)
        .map(|i| grouped(i % GROUPS))
        .collect();
    jobs.extend((0..20).map(|_| job("q")));
    let total = jobs.len();
    store.job_insert(JobInsertParams { jobs }).await.unwrap();

    let mut ended = 0;
    let mut round = 0;
    while ended < total {
        let claimed = claim_all(&store, 8).await;
        assert!(
            !claimed.is_empty(),
            "round {round}: jobs remain, one starts"
        );
        assert!(
            claimed.len() <= CONCURRENCY,
            "round {round}: {}",
            claimed.len()
        );
        let mut per_group: BTreeMap<Option<String>, usize> = BTreeMap::new();
        for c in &claimed {
            let group = store.job_get(c.id).await.unwrap().unwrap().group;
            *per_group.entry(group).or_default() += 1;
        }
        for (group, n) in &per_group {
            if group.is_some() {
                assert!(*n <= GROUP_CONCURRENCY, "round {round}: {group:?} runs {n}");
            }
        }
        end_all(&store, &claimed, round).await;
        ended += claimed.len();
        round += 1;
        if round % 4 == 0 {
            // Deleting a waiting job gives nothing back but its place in the group's count.
            let waiting = store
                .job_list(JobListParams {
                    queue: Some("q".into()),
                    state: Some(offload_core::JobState::Available),
                    limit: 1,
                    ..Default::default()
                })
                .await
                .unwrap();
            if let Some(j) = waiting.first() {
                store.job_delete(j.id).await.unwrap();
                ended += 1;
            }
        }
    }

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let drift: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "WITH truth AS (SELECT grp, sum(state = 'available') AS a, sum(state = 'running') AS r \
           FROM jobs WHERE queue = 'q' AND grp IS NOT NULL AND target IS NULL GROUP BY grp) \
         SELECT g.grp, g.available, g.running, coalesce(t.a, 0), coalesce(t.r, 0) \
         FROM queue_groups g LEFT JOIN truth t ON t.grp = g.grp \
         WHERE g.queue = 'q' AND (g.available <> coalesce(t.a, 0) OR g.running <> coalesce(t.r, 0))",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(drift.is_empty(), "counters drifted: {drift:?}");
    let grouped_available: i64 =
        sqlx::query_scalar("SELECT grouped_available FROM queues WHERE name = 'q'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(grouped_available, 0);
    conn.close().await.unwrap();
    let usage = store.queue_get("q").await.unwrap().unwrap().usage.unwrap();
    assert_eq!((usage.running, usage.groups_running), (0, 0));
    assert!(usage.top_groups.is_empty());
}
