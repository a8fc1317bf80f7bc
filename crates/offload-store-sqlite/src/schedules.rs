//! Schedules: create or replace, read, list, delete, pause, and the enqueuer's look for due ones.
//!
//! Invariant: a replace is decided by [`offload_store::schedules::upsert`] from the stored schedule and its
//! last recorded tick, read in the same transaction, and every change of definition or pause state bumps
//! `revision`, so a fire planned against an older version writes nothing (see `schedule_fire`).

use offload_core::Timestamp;
use offload_core::cron::{ScheduleRecord, ScheduleSource, Tick};
use offload_store::codec::millis;
use offload_store::schedules::{self, Existing, ScheduleColumns, TickColumns, not_found};
use offload_store::{
    DueSchedules, Result, ScheduleDeleteParams, ScheduleDueParams, ScheduleGetParams,
    ScheduleListParams, ScheduleSetPausedParams, ScheduleUpsertParams, ScheduleUpserted,
    StoreError,
};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::error::db;

/// The columns [`record_from_row`] reads.
const COLUMNS: &str = "name, cron, timezone, job, overlap, catch_up, catch_up_window_ms, jitter_ms, paused, \
     source, next_fire_at, revision, created_at, updated_at";

/// A schedule from a row holding [`COLUMNS`] (without its ticks).
fn record_from_row(row: &SqliteRow) -> Result<ScheduleRecord> {
    ScheduleColumns {
        name: get(row, "name")?,
        cron: get(row, "cron")?,
        timezone: get(row, "timezone")?,
        job: get(row, "job")?,
        overlap: get(row, "overlap")?,
        catch_up: get(row, "catch_up")?,
        catch_up_window_ms: get(row, "catch_up_window_ms")?,
        jitter_ms: get(row, "jitter_ms")?,
        paused: get::<i64>(row, "paused")? != 0,
        source: get(row, "source")?,
        next_fire_at: get::<Option<i64>>(row, "next_fire_at")?
            .map(codec::timestamp)
            .transpose()?,
        revision: get(row, "revision")?,
        created_at: codec::timestamp(get(row, "created_at")?)?,
        updated_at: codec::timestamp(get(row, "updated_at")?)?,
    }
    .record()
}

/// The schedule named `name`, without ticks.
pub(crate) async fn read(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<Option<ScheduleRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE name = ?1"
    )))
    .bind(name)
    .fetch_optional(conn)
    .await
    .map_err(db)?;
    row.as_ref().map(record_from_row).transpose()
}

/// The latest fire time this schedule recorded a tick for (manual runs aside).
async fn last_tick_at(conn: &mut SqliteConnection, name: &str) -> Result<Option<Timestamp>> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(coalesce(last_fire_at, fire_at)) FROM schedule_ticks WHERE schedule = ?1 AND manual = 0",
    )
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(db)?;
    last.map(codec::timestamp).transpose()
}

/// Creates or replaces a schedule.
pub(crate) async fn upsert(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: ScheduleUpsertParams,
) -> Result<ScheduleUpserted> {
    let s = &p.schedule;
    let existing = read(conn, &s.name).await?;
    let plan = match &existing {
        Some(record) => {
            let last_tick_at = last_tick_at(conn, &s.name).await?;
            let old = Existing {
                record,
                last_tick_at,
            };
            schedules::upsert(s, Some(old), now)
        }
        None => schedules::upsert(s, None, now),
    };
    let job = serde_json::to_string(&s.job).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO schedules (name, cron, timezone, job, overlap, catch_up, catch_up_window_ms, jitter_ms, \
         paused, source, next_fire_at, revision, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?12) \
         ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, job = excluded.job, \
         overlap = excluded.overlap, catch_up = excluded.catch_up, \
         catch_up_window_ms = excluded.catch_up_window_ms, jitter_ms = excluded.jitter_ms, \
         paused = excluded.paused, source = excluded.source, next_fire_at = excluded.next_fire_at, \
         revision = schedules.revision + 1, updated_at = excluded.updated_at",
    )
    .bind(&s.name)
    .bind(s.cadence.expr().as_str())
    .bind(s.cadence.time_zone())
    .bind(job)
    .bind(s.overlap.as_str())
    .bind(s.catch_up.as_str())
    .bind(millis(s.catch_up_window))
    .bind(millis(s.jitter))
    .bind(plan.paused)
    .bind(p.source.as_str())
    .bind(plan.next_fire_at.map(micros))
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let record = read(conn, &s.name)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("schedule {} vanished", s.name)))?;
    Ok(ScheduleUpserted {
        record,
        created: plan.created,
    })
}

/// One schedule with its recent ticks.
pub(crate) async fn get_one(
    conn: &mut SqliteConnection,
    p: &ScheduleGetParams,
) -> Result<Option<ScheduleRecord>> {
    let Some(mut record) = read(conn, &p.name).await? else {
        return Ok(None);
    };
    record.recent_ticks = Some(recent_ticks(conn, &p.name, p.recent_ticks).await?);
    Ok(Some(record))
}

async fn recent_ticks(conn: &mut SqliteConnection, name: &str, limit: u32) -> Result<Vec<Tick>> {
    let rows = sqlx::query(
        "SELECT fire_at, outcome, job_id, count, last_fire_at, manual, recorded_at FROM schedule_ticks \
         WHERE schedule = ?1 ORDER BY seq DESC LIMIT ?2",
    )
    .bind(name)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            TickColumns {
                fire_at: codec::timestamp(get(r, "fire_at")?)?,
                outcome: get(r, "outcome")?,
                job_id: get::<Option<&[u8]>>(r, "job_id")?
                    .map(codec::job_id)
                    .transpose()?,
                count: get(r, "count")?,
                last_fire_at: get::<Option<i64>>(r, "last_fire_at")?
                    .map(codec::timestamp)
                    .transpose()?,
                manual: get::<i64>(r, "manual")? != 0,
                recorded_at: codec::timestamp(get(r, "recorded_at")?)?,
            }
            .tick()
        })
        .collect()
}

/// A page of schedules in name order.
pub(crate) async fn list(
    conn: &mut SqliteConnection,
    p: &ScheduleListParams,
) -> Result<Vec<ScheduleRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE (?1 IS NULL OR name > ?1) AND (?2 IS NULL OR source = ?2) \
         ORDER BY name LIMIT ?3"
    )))
    .bind(p.after.as_deref())
    .bind(p.source.map(ScheduleSource::as_str))
    .bind(i64::from(p.limit))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter().map(record_from_row).collect()
}

/// Deletes a schedule; its ticks go with it (`ON DELETE CASCADE`).
pub(crate) async fn delete(conn: &mut SqliteConnection, p: ScheduleDeleteParams) -> Result<()> {
    let done = sqlx::query("DELETE FROM schedules WHERE name = ?1")
        .bind(&p.name)
        .execute(conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(not_found(&p.name));
    }
    Ok(())
}

/// Pauses or resumes a schedule.
pub(crate) async fn set_paused(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: ScheduleSetPausedParams,
) -> Result<ScheduleRecord> {
    let done = sqlx::query(
        "UPDATE schedules SET paused = ?1, revision = revision + 1, updated_at = ?2 WHERE name = ?3",
    )
    .bind(p.paused)
    .bind(micros(now))
    .bind(&p.name)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(not_found(&p.name));
    }
    read(conn, &p.name).await?.ok_or_else(|| not_found(&p.name))
}

/// Unpaused schedules due by `p.until`, and the earliest next fire time after it.
pub(crate) async fn due(conn: &mut SqliteConnection, p: ScheduleDueParams) -> Result<DueSchedules> {
    let now = p.until;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= ?1 \
         ORDER BY next_fire_at LIMIT ?2"
    )))
    .bind(micros(now))
    .bind(i64::from(p.limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let due = rows
        .iter()
        .map(record_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0 AND next_fire_at > ?1",
    )
    .bind(micros(now))
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(DueSchedules {
        due,
        next_fire_at: next.map(codec::timestamp).transpose()?,
    })
}

/// Ticks kept per schedule; older ones are pruned as new ones are recorded.
pub(crate) const KEEP_TICKS: i64 = 100;

/// Deletes a schedule's ticks beyond the newest [`KEEP_TICKS`].
pub(crate) async fn prune_ticks(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM schedule_ticks WHERE schedule = ?1 AND seq < \
         (SELECT seq FROM schedule_ticks WHERE schedule = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
    )
    .bind(name)
    .bind(KEEP_TICKS - 1)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}
