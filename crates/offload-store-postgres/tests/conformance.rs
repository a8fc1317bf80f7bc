//! The shared store conformance suite, run against PostgreSQL (a fresh schema per test, dropped afterwards).
//! Needs `OFFLOAD_TEST_POSTGRES_URL`; see `offload_store_postgres::testing`.

use std::sync::Arc;

use offload_core::ManualClock;
use offload_store::conformance::TestStore;
use offload_store_postgres::testing::{self, TestSchema};
use offload_store_postgres::{PostgresOptions, PostgresStore};

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
    TestStore::with_guard(Arc::new(store), schema)
}

offload_store::conformance_tests!(factory, skip_if = skip);
