//! The shared store conformance suite, run against SQLite (a fresh database file per test).

use std::sync::Arc;

use offload_core::ManualClock;
use offload_store::conformance::TestStore;
use offload_store_sqlite::{SqliteOptions, SqliteStore};
use sqlx::{AssertSqlSafe, Connection};

async fn factory(clock: Arc<ManualClock>) -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("offload.db");
    let options = SqliteOptions::new(&path).with_clock(clock);
    let store = SqliteStore::open(options).await.expect("open");
    let url = format!("sqlite://{}", path.display());
    TestStore::with_guard(Arc::new(store), dir).with_raw_sql(Arc::new(move |sql: String| {
        let url = url.clone();
        Box::pin(async move {
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("raw connection");
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("raw SQL");
            conn.close().await.expect("close");
        })
    }))
}

offload_store::conformance_tests!(factory);
