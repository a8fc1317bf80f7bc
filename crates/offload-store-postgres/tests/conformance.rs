//! The shared store conformance suite, run against PostgreSQL (a fresh schema per test, dropped afterwards).
//! Needs `OFFLOAD_TEST_POSTGRES_URL`; see `offload_store_postgres::testing`.

use std::str::FromStr;
use std::sync::Arc;

use offload_core::ManualClock;
use offload_store::conformance::TestStore;
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

fn skip() -> bool {
    testing::url().is_none()
}

async fn factory(clock: Arc<ManualClock>) -> TestStore {
    let url = testing::url().expect("checked by skip");
    let schema = TestSchema::new(&url);
    let options = PostgresOptions::new(&url)
        .with_schema(&schema.name)
        .with_clock(clock);
    let store = PostgresStore::open(options).await.expect("open");
    let raw = PgConnectOptions::from_str(&url)
        .expect("a valid URL")
        .options([("search_path", schema.name.as_str())]);
    TestStore::with_guard(Arc::new(store), schema).with_raw_sql(Arc::new(move |sql: String| {
        let raw = raw.clone();
        Box::pin(async move {
            let mut conn = raw.connect().await.expect("raw connection");
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("raw SQL");
            conn.close().await.expect("close");
        })
    }))
}

offload_store::conformance_tests!(factory, skip_if = skip);
