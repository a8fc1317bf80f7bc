//! Multi-row statements in a few fixed sizes.
//!
//! Bulk writes bind many rows into one statement. Preparing a statement for every distinct row count would
//! fill the statement cache and spend more time preparing than executing, so rows are cut into chunks whose
//! sizes come from a short ladder (1024, 256, 64, 16, 4, 1): at most six distinct statements per kind ever
//! exist, and any count needs at most three statements per rung. Invariant: every chunk stays under SQLite's
//! bound-variable limit.

use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{Arguments, AssertSqlSafe};

use crate::error::db;
use offload_store::{Result, StoreError};

/// Chunk sizes, largest first; each divides the previous one.
const LADDER: [usize; 6] = [1024, 256, 64, 16, 4, 1];

/// SQLite's default limit on bound variables in one statement.
const MAX_VARIABLES: usize = 32_766;

/// Binds one row's values.
pub(crate) type BindRow<'a, R> =
    dyn Fn(&mut SqliteArguments, &R) -> Result<(), sqlx::error::BoxDynError> + Sync + 'a;

/// Splits `len` rows into chunk lengths taken from the ladder (never more than `max_rows` per chunk).
pub(crate) fn chunk_lengths(mut len: usize, max_rows: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for rung in LADDER.into_iter().filter(|r| *r <= max_rows.max(1)) {
        while len >= rung {
            out.push(rung);
            len -= rung;
        }
    }
    out
}

/// Runs `sql(n)` once per chunk of `rows`, binding each row's `per_row` values in order. Returns the rows
/// affected.
///
/// Placeholders must be anonymous `?` (see [`values`]): for numbered ones (`?NNN`) sqlx asks SQLite for each
/// parameter's name, a linear search, which makes binding a large statement quadratic. Values shared by all
/// rows are therefore bound once per row.
pub(crate) async fn execute<R: Sync>(
    conn: &mut SqliteConnection,
    rows: &[R],
    per_row: usize,
    sql: &(dyn Fn(usize) -> String + Sync),
    bind: &BindRow<'_, R>,
) -> Result<u64> {
    let max_rows = MAX_VARIABLES / per_row.max(1);
    let mut affected = 0;
    let mut start = 0;
    for n in chunk_lengths(rows.len(), max_rows) {
        let mut args = SqliteArguments::default();
        args.reserve(n * per_row, 0);
        for row in &rows[start..start + n] {
            bind(&mut args, row).map_err(encode)?;
        }
        start += n;
        let done = sqlx::query_with(AssertSqlSafe(sql(n)), args)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        affected += done.rows_affected();
    }
    Ok(affected)
}

/// `(?, ?, ...), (...)`: `rows` rows of `per_row` anonymous placeholders.
pub(crate) fn values(rows: usize, per_row: usize) -> String {
    let mut one = String::with_capacity(per_row * 3 + 2);
    one.push('(');
    for c in 0..per_row {
        one.push_str(if c == 0 { "?" } else { ", ?" });
    }
    one.push(')');
    vec![one; rows].join(", ")
}

/// Adds one value to statement arguments.
pub(crate) fn add<'q, T>(
    args: &mut SqliteArguments,
    value: T,
) -> Result<(), sqlx::error::BoxDynError>
where
    T: sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    args.add(value)
}

fn encode(e: sqlx::error::BoxDynError) -> StoreError {
    StoreError::Internal(format!("cannot encode a value: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_with_few_sizes() {
        for len in [0, 1, 3, 5, 100, 1023, 1024, 1025, 10_000] {
            let chunks = chunk_lengths(len, usize::MAX);
            assert_eq!(chunks.iter().sum::<usize>(), len);
            assert!(chunks.iter().all(|c| LADDER.contains(c)));
        }
        assert!(chunk_lengths(5000, 300).iter().all(|c| *c <= 300));
        assert_eq!(values(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
