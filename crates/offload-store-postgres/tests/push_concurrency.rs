//! The per-destination cap of push claims is exact with several servers on one PostgreSQL database: three
//! stores (as three servers would have) share one schema and nine dispatchers claim push jobs from all three at
//! once, holding their deliveries across other dispatchers' claims. After every claim the database's own truth
//! (running push jobs counted in `jobs`) is checked against the cap, and each dispatcher records its deliveries'
//! starts and ends in a shared in-flight count per destination whose peak must stay within the cap. Real
//! PostgreSQL only; needs `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offload_store::conformance::push::push_job;
use offload_store::{
    Finish, FinishItem, JobClaimPushParams, JobFinishParams, JobInsertParams, PushJob, Store,
};
use offload_store_postgres::PostgresStore;
use offload_store_postgres::testing::{self, TestSchema, truth};
use sqlx::PgPool;
use tokio::task::JoinSet;

/// Most push jobs of one destination running at once.
const CAP: u32 = 3;
/// Destinations, and jobs per destination.
const DESTINATIONS: usize = 3;
const PER_DESTINATION: usize = 80;

/// Three stores on one fresh schema.
async fn servers(url: &str) -> (TestSchema, Vec<Arc<PostgresStore>>) {
    testing::servers(url, 3, |mut options| {
        options.max_connections = 8;
        options
    })
    .await
}

/// Running push jobs per destination, counted in the job table.
async fn running(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT destination, count(*) FROM jobs WHERE state = 'running' AND target IS NOT NULL GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn complete(store: &PostgresStore, jobs: &[PushJob]) {
    let items = jobs
        .iter()
        .map(|p| FinishItem {
            id: p.job.id,
            lease_token: p.job.lease_token,
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

/// Deliveries in flight per destination, as the dispatchers record them, and the peak seen.
#[derive(Default)]
struct InFlight(Mutex<(BTreeMap<String, u32>, u32)>);

impl InFlight {
    fn start(&self, destination: &str) {
        let mut g = self.0.lock().unwrap();
        let n = g.0.entry(destination.to_owned()).or_default();
        *n += 1;
        let n = *n;
        g.1 = g.1.max(n);
    }

    fn end(&self, destination: &str) {
        let mut g = self.0.lock().unwrap();
        if let Some(n) = g.0.get_mut(destination) {
            *n -= 1;
        }
    }

    fn peak(&self) -> u32 {
        self.0.lock().unwrap().1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_destination_cap_holds_across_three_servers() {
    let Some(url) = testing::url() else { return };
    let (schema, stores) = servers(&url).await;
    let pool = truth(&url, &schema.name).await;
    let mut jobs = Vec::new();
    for n in 0..PER_DESTINATION {
        for d in 0..DESTINATIONS {
            jobs.push(push_job(
                &format!("q{}", n % 2),
                &format!("http://d{d}.example/hook"),
            ));
        }
    }
    let total = u32::try_from(jobs.len()).unwrap();
    for chunk in jobs.chunks(60) {
        stores[0]
            .job_insert(JobInsertParams {
                jobs: chunk.to_vec(),
            })
            .await
            .expect("insert");
    }
    let done = Arc::new(AtomicU32::new(0));
    let in_flight = Arc::new(InFlight::default());
    let mut tasks = JoinSet::new();
    for w in 0..9 {
        let store = stores[w % 3].clone();
        let pool = pool.clone();
        let done = done.clone();
        let in_flight = in_flight.clone();
        tasks.spawn(async move {
            let mut held: Vec<PushJob> = Vec::new();
            let mut idle = 0;
            while done.load(Ordering::SeqCst) < total {
                let claimed = store
                    .job_claim_push(JobClaimPushParams {
                        worker_id: format!("push:{w}"),
                        max_jobs: fastrand::u32(1..=4),
                        per_destination: CAP,
                    })
                    .await
                    .expect("claim push");
                for p in &claimed {
                    in_flight.start(&p.destination);
                }
                // The store's own truth, right after the claim: no destination above the cap.
                for (destination, n) in running(&pool).await {
                    assert!(n <= i64::from(CAP), "{destination} runs {n} push jobs");
                }
                idle = if claimed.is_empty() { idle + 1 } else { 0 };
                held.extend(claimed);
                // Delivery: hold the jobs across a claim of others, then end some (all when nothing new came).
                tokio::task::yield_now().await;
                let keep = if idle > 0 { 0 } else { held.len() / 2 };
                let finished: Vec<_> = held.drain(keep..).collect();
                if !finished.is_empty() {
                    // The delivery ends before its outcome is recorded, as in the dispatcher.
                    for p in &finished {
                        in_flight.end(&p.destination);
                    }
                    complete(&store, &finished).await;
                    done.fetch_add(u32::try_from(finished.len()).unwrap(), Ordering::SeqCst);
                }
                if idle > 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                assert!(idle < 5_000, "dispatchers starved with jobs left");
            }
            assert!(held.is_empty());
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state <> 'succeeded'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "every job was delivered");
    let peak = in_flight.peak();
    assert!(peak <= CAP, "a destination had {peak} deliveries in flight");
    assert_eq!(peak, CAP, "the dispatchers really filled the cap");
    pool.close().await;
    for s in &stores {
        s.close().await;
    }
}
