//! PostgreSQL-specific behaviour beyond the shared suite: concurrent migrations, the transactional SQL enqueue
//! function, the database clock, and recovery after the database was unreachable. Real PostgreSQL only; needs
//! `OFFLOAD_TEST_POSTGRES_URL` (see `offload_store_postgres::testing`).

use std::sync::Arc;
use std::time::Duration;

use offload_core::{JobState, Timestamp};
use offload_store::{
    JobClaimParams, JobInsertParams, JobListParams, Store, StoreError, Wakeup, conformance,
};
use offload_store_postgres::testing::{self, TestDatabase, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore, migrate};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

/// A raw connection with `search_path` on the test schema, as an application would have.
async fn app_connection(url: &str, schema: &str) -> PgConnection {
    let options: PgConnectOptions = url.parse().unwrap();
    let mut conn = options.connect().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("SET search_path = public, {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn open(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::open(PostgresOptions::new(url).with_schema(schema))
        .await
        .unwrap()
}

fn claim(queue: &str) -> JobClaimParams {
    JobClaimParams {
        queue: queue.into(),
        worker_id: "w".into(),
        max_jobs: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let mut runs = Vec::new();
    for _ in 0..6 {
        let (url, name) = (url.clone(), schema.name.clone());
        runs.push(tokio::spawn(async move { migrate(&url, &name).await }));
    }
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(
            run.await
                .unwrap()
                .expect("every concurrent migration succeeds"),
        );
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "each version applied by exactly one of the six"
    );

    let mut conn = app_connection(&url, &schema.name).await;
    let recorded: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {}._sqlx_migrations",
        schema.name
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(recorded, 11, "the migrations table lives in the schema");
    assert!(migrate(&url, &schema.name).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrating_an_unmigrated_schema_is_refused() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let options = PostgresOptions {
        migrate: false,
        ..PostgresOptions::new(&url).with_schema(&schema.name)
    };
    let err = PostgresStore::open(options.clone()).await.unwrap_err();
    assert!(err.to_string().contains("offload migrate"), "{err}");
    migrate(&url, &schema.name).await.unwrap();
    let store = PostgresStore::open(options).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_enqueue_exists_only_if_the_transaction_commits_and_wakes_on_commit() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let store = open(&url, &schema.name).await;
    let mut wakeups = store.subscribe_available().unwrap();
    assert_eq!(wakeups.recv().await.unwrap(), Wakeup::All, "listening");

    let mut app = app_connection(&url, &schema.name).await;
    let fq = |f: &str| format!("{}.{f}", schema.name);

    // Rolled back: no job, no wake-up for the queue.
    let mut tx = app.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "SELECT {}('emails', '{{\"to\": 1}}')",
        fq("enqueue")
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(store.job_claim(claim("emails")).await.unwrap().is_empty());
    let listed = store
        .job_list(JobListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.is_empty(), "a rolled-back enqueue leaves no job");

    // Committed: invisible and unannounced until the commit, then claimable, announced and counted.
    let mut tx = app.begin().await.unwrap();
    let id: uuid::Uuid = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT {}(queue => 'emails', payload => '{{\"to\": \"ada@example.com\"}}', name => 'welcome', \
         tags => '{{\"tenant\": \"acme\"}}', max_attempts => 3, timeout => interval '30 seconds')",
        fq("enqueue")
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert!(
        store.job_claim(claim("emails")).await.unwrap().is_empty(),
        "not visible before the commit"
    );
    assert!(wakeups.try_recv().is_err(), "no wake-up before the commit");
    tx.commit().await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
        .await
        .expect("a wake-up after the commit")
        .unwrap();
    assert_eq!(woke, Wakeup::Queue("emails".into()));
    let claimed = store.job_claim(claim("emails")).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    assert_eq!(job.id.0, id);
    assert_eq!(
        job.id.0.get_version_num(),
        7,
        "ids are UUIDv7 like the server's"
    );
    assert_eq!(job.name.as_deref(), Some("welcome"));
    assert_eq!(job.payload.get(), r#"{"to": "ada@example.com"}"#);
    assert_eq!((job.attempt, job.max_attempts), (1, 3));
    assert_eq!(job.timeout.0, Duration::from_secs(30));
    assert_eq!(job.tags.get("tenant").map(String::as_str), Some("acme"));
    let queues = store.queue_list().await.unwrap();
    assert_eq!(queues[0].counts[&JobState::Running], 1, "counted");

    // A delayed job is scheduled; bad arguments are refused, naming the argument, and store nothing.
    let delayed: uuid::Uuid = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT {}('emails', delay => interval '1 hour')",
        fq("enqueue")
    )))
    .fetch_one(&mut app)
    .await
    .unwrap();
    let got = store
        .job_get(offload_core::JobId(delayed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.state, JobState::Scheduled);
    for (args, field) in [
        ("'bad queue!'", "queue"),
        ("'q', max_attempts => 0", "max_attempts"),
        ("'q', timeout => interval '0 seconds'", "timeout"),
        ("'q', delay => interval '1 hour', run_at => now()", "delay"),
        ("'q', tags => '[1]'", "tags"),
    ] {
        let err = sqlx::query(AssertSqlSafe(format!("SELECT {}({args})", fq("enqueue"))))
            .execute(&mut app)
            .await
            .unwrap_err();
        let db = err.as_database_error().expect("a database error");
        assert_eq!(db.code().as_deref(), Some("22023"), "{args}");
        assert!(db.message().contains(field), "{args}: {}", db.message());
    }
    let all = store
        .job_list(JobListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_is_the_database_clock() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let store = open(&url, &schema.name).await;
    let mut conn = app_connection(&url, &schema.name).await;
    let db_now: String = sqlx::query_scalar(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let db_now: Timestamp = db_now.parse().unwrap();
    let ours = store.now();
    let gap = ours.duration_since(db_now).abs();
    assert!(
        gap < jiff::SignedDuration::from_secs(1),
        "store time {ours} vs database {db_now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_fails_writes_as_unavailable_then_recovers_by_itself() {
    let Some(url) = testing::url() else { return };
    // A database of its own, so that refusing connections to it disturbs no other test.
    let db = TestDatabase::create(&url).await.unwrap();
    let clock = Arc::new(offload_core::ManualClock::new(conformance::t0()));
    let store = PostgresStore::open(PostgresOptions::new(&db.url).with_clock(clock))
        .await
        .unwrap();
    let insert = || {
        store.job_insert(JobInsertParams {
            jobs: vec![conformance::job("q")],
        })
    };
    insert().await.unwrap();

    db.refuse_connections().await.unwrap();
    for _ in 0..3 {
        let err = insert().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    let err = store.job_claim(claim("q")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    db.allow_connections().await.unwrap();
    insert()
        .await
        .expect("the same store writes again once the database is back");
    let claimed = store.job_claim(claim("q")).await.unwrap();
    assert_eq!(
        claimed.len(),
        2,
        "the job written before the outage and the one after; none of the refused ones"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_nul_characters_is_stored_with_a_replacement_character() {
    let Some(url) = testing::url() else { return };
    let schema = TestSchema::new(&url);
    let clock = Arc::new(offload_core::ManualClock::new(conformance::t0()));
    let store = PostgresStore::open(
        PostgresOptions::new(&url)
            .with_schema(&schema.name)
            .with_clock(clock),
    )
    .await
    .unwrap();
    let mut job = conformance::job("q");
    job.tags.insert("k".into(), "a\0b".into());
    store
        .job_insert(JobInsertParams { jobs: vec![job] })
        .await
        .unwrap();
    let c = store.job_claim(claim("q")).await.unwrap().remove(0);
    store
        .job_heartbeat(offload_store::JobHeartbeatParams {
            id: c.id,
            lease_token: c.lease_token,
            progress: Some(offload_core::Progress {
                percent: 5,
                message: Some("x\0y".into()),
            }),
        })
        .await
        .unwrap();
    let got = store.job_get(c.id).await.unwrap().unwrap();
    assert_eq!(got.tags["k"], "a\u{FFFD}b");
    assert_eq!(got.progress.unwrap().message.as_deref(), Some("x\u{FFFD}y"));
    let failure = offload_core::state::Failure {
        error: "boom\0".into(),
        retry_after: None,
        retryable: false,
        cause: offload_core::state::FailureCause::Worker,
    };
    let out = store
        .job_finish(offload_store::JobFinishParams {
            items: vec![offload_store::FinishItem {
                id: c.id,
                lease_token: c.lease_token,
                finish: offload_store::Finish::Fail(failure),
            }],
        })
        .await
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().state, JobState::Dead);
    let got = store.job_get(c.id).await.unwrap().unwrap();
    assert_eq!(got.last_error.as_deref(), Some("boom\u{FFFD}"));
    assert_eq!(
        got.attempts.unwrap()[0].error.as_deref(),
        Some("boom\u{FFFD}")
    );
}
