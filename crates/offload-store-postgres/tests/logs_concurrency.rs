//! Log lines are numbered exactly with several servers on one PostgreSQL database: three stores share one
//! schema and append to one job at once; every line gets its own number, without gaps, and each batch stays
//! contiguous. Real PostgreSQL only; needs `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::sync::Arc;

use offload_core::log::{LogLevel, NewLogLine};
use offload_store::conformance::job;
use offload_store::{JobInsertParams, LogAppendParams, LogOwner, LogReadParams, Store};
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_several_servers_are_numbered_exactly() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let mut stores = Vec::new();
    for _ in 0..3 {
        let options = PostgresOptions::new(&url).with_schema(&schema.name);
        stores.push(Arc::new(PostgresStore::open(options).await.expect("open")));
    }
    let id = stores[0]
        .job_insert(JobInsertParams {
            jobs: vec![job("q")],
        })
        .await
        .unwrap()[0]
        .id;
    let (writers, batches, per_batch) = (6u64, 5u64, 7u64);
    let mut tasks = JoinSet::new();
    for w in 0..writers {
        let store = stores[(w % 3) as usize].clone();
        tasks.spawn(async move {
            let mut got = Vec::new();
            for b in 0..batches {
                let lines = (0..per_batch)
                    .map(|i| NewLogLine {
                        at: None,
                        level: LogLevel::Info,
                        message: format!("{w}/{b}/{i}"),
                    })
                    .collect();
                let appended = store
                    .log_append(LogAppendParams {
                        owner: LogOwner::Job(id),
                        lease_token: None,
                        lines,
                    })
                    .await
                    .expect("append");
                got.push((w, b, appended));
            }
            got
        });
    }
    let mut appended = Vec::new();
    while let Some(got) = tasks.join_next().await {
        appended.extend(got.unwrap());
    }
    let total = writers * batches * per_batch;
    let lines = stores[1]
        .log_read(LogReadParams {
            owner: LogOwner::Job(id),
            after: 0,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(lines.len() as u64, total);
    assert!(lines.iter().zip(1..).all(|(l, n)| l.seq == n), "gapless");
    for (w, b, a) in appended {
        assert_eq!(a.last_seq - a.first_seq + 1, per_batch);
        for (i, seq) in (a.first_seq..=a.last_seq).enumerate() {
            assert_eq!(
                lines[(seq - 1) as usize].message,
                format!("{w}/{b}/{i}"),
                "a batch stays contiguous"
            );
        }
    }
}
