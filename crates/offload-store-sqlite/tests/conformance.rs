//! The shared store conformance suite, run against SQLite (a fresh database file per test).

use std::sync::Arc;

use offload_core::ManualClock;
use offload_store::conformance::TestStore;
use offload_store_sqlite::{SqliteOptions, SqliteStore};

async fn factory(clock: Arc<ManualClock>) -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteOptions::new(dir.path().join("offload.db")).with_clock(clock);
    let store = SqliteStore::open(options).await.expect("open");
    TestStore::with_guard(Arc::new(store), dir)
}

offload_store::conformance_tests!(factory);
