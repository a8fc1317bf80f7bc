//! The schema's migrations and the connection settings every connection uses.
//!
//! Invariant: migrations are embedded in order and never edited once released; a new schema version is a
//! new file in `migrations/` added to [`MIGRATIONS`] (a test checks that the two agree).

use std::path::Path;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

/// Every migration: version, description, SQL. Versions match the file names' numbers.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "schedules",
        include_str!("../migrations/0002_schedules.sql"),
    ),
    (3, "push", include_str!("../migrations/0003_push.sql")),
    (
        4,
        "throughput",
        include_str!("../migrations/0004_throughput.sql"),
    ),
    (
        5,
        "push_failures",
        include_str!("../migrations/0005_push_failures.sql"),
    ),
    (
        6,
        "functions",
        include_str!("../migrations/0006_functions.sql"),
    ),
    (7, "flow", include_str!("../migrations/0007_flow.sql")),
    (
        8,
        "function_flow",
        include_str!("../migrations/0008_function_flow.sql"),
    ),
    (
        9,
        "push_running",
        include_str!("../migrations/0009_push_running.sql"),
    ),
    (
        10,
        "function_cron",
        include_str!("../migrations/0010_function_cron.sql"),
    ),
    (11, "logs", include_str!("../migrations/0011_logs.sql")),
];

/// The embedded migrations (built by hand rather than with `sqlx::migrate!`, which would pull in sqlx's
/// proc-macro crates and a second build of SQLite).
pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// How long a connection waits for a lock before failing (only other processes can hold one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows a connection's worker thread may queue before the reader takes them (lists return up to hundreds);
/// with sqlx's default (50) the worker thread stalls every 50 rows waiting for the async side.
const ROW_BUFFER: usize = 1024;

/// The write connection: creates the file, WAL, fsync on every commit, foreign keys for the history cascade.
pub(crate) fn write_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .statement_cache_capacity(256)
        .row_buffer_size(ROW_BUFFER)
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory")
}

/// A read connection: read-only, so no read can ever take the write lock.
pub(crate) fn read_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT)
        .row_buffer_size(ROW_BUFFER)
        .pragma("cache_size", "-16384")
        .pragma("temp_store", "memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
            .collect();
        assert_eq!(files, embedded);
    }
}
