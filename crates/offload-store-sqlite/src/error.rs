//! The one place where database failures become [`StoreError`]s.
//!
//! Invariant: no other module inspects a `sqlx::Error`; they call [`db`]. Constraint violations are never
//! the normal way a domain rule is enforced here (the writer decides idempotency before it writes), so one
//! that does occur is reported as [`StoreError::Internal`] naming the constraint.

use offload_store::StoreError;

/// Primary SQLite result codes that mean "the database cannot be used right now" rather than "this request is
/// wrong": BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
const UNAVAILABLE_CODES: [i64; 6] = [5, 6, 8, 10, 13, 14];

/// Maps a database error.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => {
            let primary = d
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            if primary.is_some_and(|c| UNAVAILABLE_CODES.contains(&c)) {
                StoreError::Unavailable(d.message().to_owned())
            } else if d.is_unique_violation() {
                StoreError::Internal(format!("constraint violated: {}", d.message()))
            } else {
                StoreError::Internal(d.message().to_owned())
            }
        }
        e @ (sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed) => StoreError::Unavailable(e.to_string()),
        e => StoreError::Internal(e.to_string()),
    }
}
