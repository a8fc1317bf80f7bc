//! Log lines of jobs and runs: append (numbered after the owner's last line, the oldest beyond the bound
//! dropped) and paged reads.
//!
//! Invariant: an owner's lines are numbered 1, 2, ... without gaps in append order and at most
//! [`offload_core::log::MAX_LINES_KEPT`] of them are kept. An append locks its owner's row (`FOR NO KEY
//! UPDATE`, which leaves the key share that inserting the lines takes free), so appends to one owner from many
//! servers are numbered one after the other.

use offload_core::Timestamp;
use offload_core::log::{LogAppended, LogLine, oldest_kept};
use offload_store::{LogAppendParams, LogOwner, LogReadParams, Result, StoreError};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::codec::{self, Ts, get, ts};
use crate::error::db;

/// The statements over one owner kind's table.
struct Sql {
    last: &'static str,
    insert: &'static str,
    prune: &'static str,
    read: &'static str,
}

const JOB_SQL: Sql = Sql {
    last: "SELECT coalesce(max(seq), 0) FROM job_logs WHERE job_id = $1",
    insert: "INSERT INTO job_logs (job_id, seq, at, level, message, attempt) \
             SELECT $1, $2 + l.n, l.at, l.level, l.message, $6 \
             FROM unnest($3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY AS l(at, level, message, n)",
    prune: "DELETE FROM job_logs WHERE job_id = $1 AND seq < $2",
    read: "SELECT seq, at, level, message, attempt FROM job_logs WHERE job_id = $1 AND seq > $2 \
           ORDER BY seq LIMIT $3",
};

const RUN_SQL: Sql = Sql {
    last: "SELECT coalesce(max(seq), 0) FROM run_logs WHERE run_id = $1",
    insert: "INSERT INTO run_logs (run_id, seq, at, level, message, attempt) \
             SELECT $1, $2 + l.n, l.at, l.level, l.message, $6 \
             FROM unnest($3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY AS l(at, level, message, n)",
    prune: "DELETE FROM run_logs WHERE run_id = $1 AND seq < $2",
    read: "SELECT seq, at, level, message, attempt FROM run_logs WHERE run_id = $1 AND seq > $2 \
           ORDER BY seq LIMIT $3",
};

/// A job's current attempt as stored.
struct Held {
    running: bool,
    token: Option<Uuid>,
    attempt: i32,
}

/// The owner's statements and key, and (for a job) its attempt; locks the owner's row when `lock`.
async fn place(
    conn: &mut PgConnection,
    owner: LogOwner,
    lock: bool,
) -> Result<(&'static Sql, Uuid, Option<Held>)> {
    match owner {
        LogOwner::Job(id) => {
            let sql = match lock {
                true => {
                    "SELECT state, lease_token, attempt FROM jobs WHERE id = $1 FOR NO KEY UPDATE"
                }
                false => "SELECT state, lease_token, attempt FROM jobs WHERE id = $1",
            };
            let row = sqlx::query(sql)
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?
                .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
            let held = Held {
                running: get::<String>(&row, "state")? == "running",
                token: get(&row, "lease_token")?,
                attempt: get(&row, "attempt")?,
            };
            Ok((&JOB_SQL, id.0, Some(held)))
        }
        LogOwner::Run(id) => {
            let sql = match lock {
                true => "SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE",
                false => "SELECT 1 FROM runs WHERE id = $1",
            };
            sqlx::query(sql)
                .bind(id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?
                .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
            Ok((&RUN_SQL, id.0, None))
        }
    }
}

fn seq_of(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::corrupt(format!("log seq {v}")))
}

/// Appends the lines in one transaction.
pub(crate) async fn append(
    conn: &mut PgConnection,
    now: Timestamp,
    p: LogAppendParams,
) -> Result<LogAppended> {
    let mut tx = conn.begin().await.map_err(db)?;
    let (sql, key, held) = place(&mut tx, p.owner, true).await?;
    let attempt = match (p.lease_token, held) {
        (None, _) => None,
        (Some(token), Some(h)) if h.running && h.token == Some(token.0) => Some(h.attempt),
        (Some(_), _) => return Err(StoreError::LeaseMismatch),
    };
    let last: i64 = sqlx::query_scalar(sql.last)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let ats: Vec<Ts> = p.lines.iter().map(|l| Ts(l.at.unwrap_or(now))).collect();
    let levels: Vec<&str> = p.lines.iter().map(|l| l.level.as_str()).collect();
    let messages: Vec<String> = p
        .lines
        .iter()
        .map(|l| codec::text(&l.message).into_owned())
        .collect();
    sqlx::query(sql.insert)
        .bind(key)
        .bind(last)
        .bind(ats)
        .bind(levels)
        .bind(messages)
        .bind(attempt)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let n = i64::try_from(p.lines.len()).map_err(|_| StoreError::corrupt("log batch size"))?;
    let last_seq = seq_of(last + n)?;
    let keep = i64::try_from(oldest_kept(last_seq)).map_err(|_| StoreError::corrupt("log seq"))?;
    sqlx::query(sql.prune)
        .bind(key)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(LogAppended {
        first_seq: seq_of(last + 1)?,
        last_seq,
    })
}

/// A page of the owner's lines after `p.after`, oldest first.
pub(crate) async fn read(conn: &mut PgConnection, p: LogReadParams) -> Result<Vec<LogLine>> {
    let (sql, key, _) = place(conn, p.owner, false).await?;
    let rows = sqlx::query(sql.read)
        .bind(key)
        .bind(i64::try_from(p.after).unwrap_or(i64::MAX))
        .bind(i64::from(p.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(LogLine {
                seq: seq_of(get(row, "seq")?)?,
                at: ts(row, "at")?,
                level: get::<String>(row, "level")?
                    .parse()
                    .map_err(StoreError::corrupt)?,
                message: get(row, "message")?,
                attempt: get::<Option<i32>>(row, "attempt")?
                    .map(|a| codec::u32_of(a, "attempt"))
                    .transpose()?,
            })
        })
        .collect()
}
