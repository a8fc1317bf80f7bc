//! Log lines of jobs and runs: append (numbered after the owner's last line, the oldest beyond the bound
//! dropped) and paged reads.
//!
//! Invariant: an owner's lines are numbered 1, 2, ... without gaps in append order and at most
//! [`offload_core::log::MAX_LINES_KEPT`] of them are kept; appends run on the single writer, so numbering needs
//! no lock.

use offload_core::Timestamp;
use offload_core::log::{LogAppended, LogLine, oldest_kept};
use offload_store::{LogAppendParams, LogOwner, LogReadParams, Result, StoreError};
use sqlx::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::error::db;

/// The statements over one owner kind's table.
struct Sql {
    last: &'static str,
    insert: &'static str,
    prune: &'static str,
    read: &'static str,
}

const JOB_SQL: Sql = Sql {
    last: "SELECT coalesce(max(seq), 0) FROM job_logs WHERE job_seq = ?1",
    insert: "INSERT INTO job_logs (job_seq, seq, at, level, message, attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    prune: "DELETE FROM job_logs WHERE job_seq = ?1 AND seq < ?2",
    read: "SELECT seq, at, level, message, attempt FROM job_logs WHERE job_seq = ?1 AND seq > ?2 \
           ORDER BY seq LIMIT ?3",
};

const RUN_SQL: Sql = Sql {
    last: "SELECT coalesce(max(seq), 0) FROM run_logs WHERE run_seq = ?1",
    insert: "INSERT INTO run_logs (run_seq, seq, at, level, message, attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    prune: "DELETE FROM run_logs WHERE run_seq = ?1 AND seq < ?2",
    read: "SELECT seq, at, level, message, attempt FROM run_logs WHERE run_seq = ?1 AND seq > ?2 \
           ORDER BY seq LIMIT ?3",
};

/// Where an owner's lines live: the statements of its kind and the owner's internal key.
struct Place {
    sql: &'static Sql,
    seq: i64,
}

/// The owner's row: its place, and (for a job) its state, lease token and attempt.
async fn place(conn: &mut SqliteConnection, owner: LogOwner) -> Result<(Place, Option<Held>)> {
    match owner {
        LogOwner::Job(id) => {
            let row =
                sqlx::query("SELECT seq, state, lease_token, attempt FROM jobs WHERE id = ?1")
                    .bind(id.as_bytes().as_slice())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
            let held = Held {
                running: get::<String>(&row, "state")? == "running",
                token: get(&row, "lease_token")?,
                attempt: get(&row, "attempt")?,
            };
            let place = Place {
                sql: &JOB_SQL,
                seq: get(&row, "seq")?,
            };
            Ok((place, Some(held)))
        }
        LogOwner::Run(id) => {
            let seq: i64 = sqlx::query_scalar("SELECT seq FROM runs WHERE id = ?1")
                .bind(id.0.as_bytes().as_slice())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?
                .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
            let place = Place { sql: &RUN_SQL, seq };
            Ok((place, None))
        }
    }
}

/// A job's current attempt as stored.
struct Held {
    running: bool,
    token: Option<Vec<u8>>,
    attempt: i64,
}

/// Appends the lines (the writer runs this in a savepoint: all or none).
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: LogAppendParams,
) -> Result<LogAppended> {
    let (place, held) = place(conn, p.owner).await?;
    let attempt = match (p.lease_token, held) {
        (None, _) => None,
        (Some(token), Some(h))
            if h.running && h.token.as_deref() == Some(token.0.as_bytes().as_slice()) =>
        {
            Some(h.attempt)
        }
        (Some(_), _) => return Err(StoreError::LeaseMismatch),
    };
    let Place { sql, seq } = place;
    let last: i64 = sqlx::query_scalar(sql.last)
        .bind(seq)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let mut n = last;
    for line in &p.lines {
        n += 1;
        sqlx::query(sql.insert)
            .bind(seq)
            .bind(n)
            .bind(micros(line.at.unwrap_or(now)))
            .bind(line.level.as_str())
            .bind(line.message.as_str())
            .bind(attempt)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let last_seq = u64::try_from(n).map_err(|_| StoreError::corrupt("log seq"))?;
    let keep = i64::try_from(oldest_kept(last_seq)).map_err(|_| StoreError::corrupt("log seq"))?;
    sqlx::query(sql.prune)
        .bind(seq)
        .bind(keep)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(LogAppended {
        first_seq: u64::try_from(last + 1).map_err(|_| StoreError::corrupt("log seq"))?,
        last_seq,
    })
}

/// A page of the owner's lines after `p.after`, oldest first.
pub(crate) async fn read(conn: &mut SqliteConnection, p: LogReadParams) -> Result<Vec<LogLine>> {
    let (Place { sql, seq }, _) = place(conn, p.owner).await?;
    let rows = sqlx::query(sql.read)
        .bind(seq)
        .bind(i64::try_from(p.after).unwrap_or(i64::MAX))
        .bind(i64::from(p.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(LogLine {
                seq: u64::try_from(get::<i64>(row, "seq")?)
                    .map_err(|_| StoreError::corrupt("log seq"))?,
                at: codec::timestamp(get(row, "at")?)?,
                level: get::<String>(row, "level")?
                    .parse()
                    .map_err(StoreError::corrupt)?,
                message: get(row, "message")?,
                attempt: get::<Option<i64>>(row, "attempt")?
                    .map(|a| codec::u32_of(a, "attempt"))
                    .transpose()?,
            })
        })
        .collect()
}
