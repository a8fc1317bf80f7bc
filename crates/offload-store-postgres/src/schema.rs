//! The schema's migrations, the schema name, and the settings every connection uses.
//!
//! Invariants:
//! - Migrations are embedded in order and never edited once released; a new schema version is a new file in
//!   `migrations/` (numbered like the SQLite store's) added to [`MIGRATIONS`] (a test checks the two agree).
//! - Everything Offload stores lives in one schema: the tables, the SQL functions and the migrations table
//!   (`<schema>._sqlx_migrations`), so one database can hold several installations and dropping the schema
//!   removes one completely. Connections set `search_path` to the schema, so the SQL names no schema.
//! - Migrating is safe when several servers start at once: sqlx's PostgreSQL migrator holds a session-level
//!   advisory lock (keyed by the database name) from before the schema is created until the last migration
//!   is recorded, so the others wait and then find nothing left to do.

use std::str::FromStr;
use std::time::Duration;

use offload_store::{Result, StoreError};
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, SqlSafeStr};

use crate::error::{acquire, db};

/// Every migration: version, description, SQL. Versions match the file names' numbers (and SQLite's).
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

/// The schema used unless configured otherwise.
pub const DEFAULT_SCHEMA: &str = "offload";

/// Longest schema name: leaves room for the notification channel's suffix within PostgreSQL's 63-byte names.
const MAX_SCHEMA_LEN: usize = 48;

/// How long one statement may run before PostgreSQL cancels it (the request then fails with 503 instead of
/// hanging on a lock someone forgot to release).
const STATEMENT_TIMEOUT: &str = "30s";

/// Checks a schema name: a lower-case SQL identifier (letters, digits, `_`; not starting with a digit) of at
/// most 48 characters, so it never needs quoting.
pub fn validate_schema(schema: &str) -> Result<(), String> {
    let mut bytes = schema.bytes();
    match bytes.next() {
        None => return Err("must not be empty".into()),
        Some(b) if !(b.is_ascii_lowercase() || b == b'_') => {
            return Err("must start with a lower-case letter or '_'".into());
        }
        Some(_) => {}
    }
    if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err("may only contain lower-case ASCII letters, digits and '_'".into());
    }
    if schema.len() > MAX_SCHEMA_LEN {
        return Err(format!("must be at most {MAX_SCHEMA_LEN} characters"));
    }
    if schema.starts_with("pg_") {
        return Err("must not start with 'pg_' (reserved by PostgreSQL)".into());
    }
    Ok(())
}

/// The NOTIFY channel on which a schema announces queues that got available jobs.
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}.available")
}

/// Connection settings for `url` with Offload's schema first on the search path, UTC, and a name that shows
/// in `pg_stat_activity`. `statement_timeout` applies unless `unbounded` (the migrator waits for its lock).
pub(crate) fn connect_options(
    url: &str,
    schema: &str,
    unbounded: bool,
) -> Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?;
    // Notices ("schema already exists, skipping") are not news for operators.
    let mut settings = vec![
        ("search_path", schema),
        ("TimeZone", "UTC"),
        ("client_min_messages", "warning"),
    ];
    if !unbounded {
        settings.push(("statement_timeout", STATEMENT_TIMEOUT));
    }
    Ok(options
        .application_name("offload")
        .options(settings)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(5)))
}

/// The embedded migrations, recording themselves in `<schema>._sqlx_migrations` and creating the schema.
fn migrator(schema: &str) -> Migrator {
    let mut migrator = Migrator::with_migrations(
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
    );
    migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    migrator.create_schema(schema.to_owned());
    migrator
}

/// What went wrong while migrating, in words an operator can act on.
fn migrate_error(e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(e) => db(e),
        MigrateError::VersionMissing(v) => StoreError::Internal(format!(
            "the schema has migration {v}, which this version of Offload does not know: run a newer Offload"
        )),
        MigrateError::VersionMismatch(v) => StoreError::Internal(format!(
            "migration {v} in the database differs from this version of Offload's"
        )),
        MigrateError::Dirty(v) => StoreError::Internal(format!(
            "migration {v} failed half-way earlier; repair the schema by hand"
        )),
        e => StoreError::Internal(format!("migration failed: {e}")),
    }
}

/// Applies pending migrations to `schema` (creating it if needed) on a connection of its own, which is closed
/// afterwards (releasing every lock even if a migration failed). Returns the versions applied by this call.
///
/// Besides sqlx's own lock (per database), the whole call holds an advisory lock for the schema, so that the
/// versions applied "by this call" are known exactly when several servers start at once.
pub async fn migrate(url: &str, schema: &str) -> Result<Vec<i64>> {
    validate_schema(schema).map_err(|m| StoreError::Internal(format!("schema `{schema}`: {m}")))?;
    // A pool of one connection: the session locks below and sqlx's migrator all live on it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect_options(url, schema, true)?)
        .await
        .map_err(acquire)?;
    let result = async {
        let mut conn = pool.acquire().await.map_err(acquire)?;
        sqlx::query("SELECT pg_advisory_lock(hashtext('offload migrate ' || $1))")
            .bind(schema)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let before = applied(&mut conn, schema).await?;
        drop(conn);
        migrator(schema).run(&pool).await.map_err(migrate_error)?;
        let mut conn = pool.acquire().await.map_err(acquire)?;
        let after = applied(&mut conn, schema).await?;
        sqlx::query("SELECT pg_advisory_unlock(hashtext('offload migrate ' || $1))")
            .bind(schema)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }
    .await;
    pool.close().await;
    result
}

/// Checks that every embedded migration is applied to `schema` (for servers started without migrating).
pub(crate) async fn check_current(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let done = applied(conn, schema).await?;
    let known: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    if let Some(missing) = known.iter().find(|v| !done.contains(v)) {
        return Err(StoreError::Internal(format!(
            "schema `{schema}` lacks migration {missing}: run `offload migrate` (or start without --no-migrate)"
        )));
    }
    if let Some(unknown) = done.iter().find(|v| !known.contains(v)) {
        return Err(StoreError::Internal(format!(
            "schema `{schema}` has migration {unknown}, which this version of Offload does not know: run a newer \
             Offload"
        )));
    }
    Ok(())
}

/// Versions recorded in the schema's migrations table (none when the table does not exist yet).
async fn applied(conn: &mut PgConnection, schema: &str) -> Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{schema}._sqlx_migrations"))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {schema}._sqlx_migrations WHERE success ORDER BY version"
    )))
    .fetch_all(conn)
    .await
    .map_err(db)
}

/// Drops `schema` and everything in it (tests and `offload bench` use throw-away schemas).
pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    validate_schema(schema).map_err(|m| StoreError::Internal(format!("schema `{schema}`: {m}")))?;
    let options = connect_options(url, schema, true)?;
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(acquire)?;
    let result = sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .map(drop)
    .map_err(db);
    let _ = conn.close().await;
    result
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

    #[test]
    fn migration_numbers_match_the_sqlite_store() {
        let sqlite = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../offload-store-sqlite/migrations"
        );
        let mut theirs: Vec<String> = std::fs::read_dir(sqlite)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        theirs.sort();
        let ours: Vec<String> = MIGRATIONS
            .iter()
            .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
            .collect();
        // SQLite may be ahead while a feature's PostgreSQL twin is being written; never out of step.
        assert!(theirs.len() >= ours.len(), "{ours:?} vs {theirs:?}");
        assert_eq!(
            ours,
            theirs[..ours.len()],
            "versions and names follow SQLite's"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(validate_schema("offload").is_ok());
        assert!(validate_schema("_t_0123").is_ok());
        for bad in [
            "",
            "Offload",
            "1x",
            "a-b",
            "a.b",
            "pg_x",
            "a\"b",
            &"x".repeat(49),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }
}
