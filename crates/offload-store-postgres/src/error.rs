//! The one place where database failures become [`StoreError`]s.
//!
//! Invariant: no other module inspects a `sqlx::Error`; they call [`db`] (or [`acquire`] for a failure to get a
//! connection). "The database cannot be used right now" (connection lost or refused, server shutting down,
//! out of resources, a statement timeout, a deadlock or serialization failure, a read-only standby) is
//! [`StoreError::Unavailable`], which the API answers with 503: nothing was committed, the request may be
//! repeated. Everything else is [`StoreError::Internal`]. Constraint violations are never the normal way a
//! domain rule is enforced here, so one that does occur is an internal error naming the constraint.

use offload_store::StoreError;

/// SQLSTATE classes meaning the server cannot serve us now: connection exception, insufficient resources,
/// operator intervention (admin shutdown, cannot connect now, ...), system error (I/O).
const UNAVAILABLE_CLASSES: [&str; 4] = ["08", "53", "57", "58"];

/// Single SQLSTATEs that are transient: serialization failure, deadlock, lock not available, read-only
/// transaction (a standby after a fail-over).
const UNAVAILABLE_CODES: [&str; 4] = ["40001", "40P01", "55P03", "25006"];

/// True for a SQLSTATE that means "try again later".
pub(crate) fn is_transient_code(code: &str) -> bool {
    UNAVAILABLE_CODES.contains(&code) || UNAVAILABLE_CLASSES.iter().any(|c| code.starts_with(c))
}

/// Whether an [`StoreError::Unavailable`] message is a deadlock or a serialization failure: the transaction was
/// aborted by the database and may be run again at once.
pub(crate) fn is_retryable_message(message: &str) -> bool {
    message.ends_with("(40P01)") || message.ends_with("(40001)")
}

/// Maps a database error.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if is_transient_code(&code) {
                StoreError::Unavailable(format!("{} ({code})", d.message()))
            } else if d.is_unique_violation() {
                StoreError::Internal(format!("constraint violated: {}", d.message()))
            } else {
                StoreError::Internal(format!("{} ({code})", d.message()))
            }
        }
        e @ (sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed) => StoreError::Unavailable(e.to_string()),
        e => StoreError::Internal(e.to_string()),
    }
}

/// Maps a failure to get a connection from the pool: whatever the cause (refused, authentication, a database
/// that does not accept connections), nothing can be done now.
pub(crate) fn acquire(e: sqlx::Error) -> StoreError {
    match db(e) {
        StoreError::Internal(m) => StoreError::Unavailable(format!("cannot connect: {m}")),
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_recognised() {
        for code in ["08006", "57P01", "53300", "40P01", "40001", "58030"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22023", ""] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
