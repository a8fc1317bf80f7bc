//! Cron schedules: create or replace, read, list, delete, pause, and the enqueuer's look for due ones.
//!
//! Invariant: every change of definition or pause state bumps `revision` (so a fire planned against an older
//! version writes nothing, see `schedule_fire`), and a replace is decided by
//! [`offload_store::schedules::upsert`] from the stored schedule and its last recorded tick, read in the same
//! transaction with the schedule's row locked: the enqueuer (which locks the same row to fire) and other replaces run
//! before or after it, never in between. Creating races with nothing: of two servers creating the same name,
//! the second finds the first's row and replaces it. A schedule is read with its recent ticks in one
//! statement, so the two never disagree.

use offload_core::Timestamp;
use offload_core::cron::{ScheduleRecord, ScheduleSource, Tick};
use offload_store::codec::millis;
use offload_store::schedules::{self, Existing, ScheduleColumns, TickColumns, Upsert, not_found};
use offload_store::{
    DueSchedules, Result, ScheduleDeleteParams, ScheduleDueParams, ScheduleGetParams,
    ScheduleListParams, ScheduleSetPausedParams, ScheduleUpsertParams, ScheduleUpserted,
    StoreError,
};
use sqlx::postgres::{PgArguments, PgConnection, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Connection};

use crate::codec::{self, Ts, ts, ts_opt};
use crate::error::db;

/// The columns [`record_from_row`] reads (`job` as the template's JSON text).
const COLUMNS: &str = "name, cron, timezone, job::text AS job, overlap, catch_up, catch_up_window_ms, jitter_ms, \
     paused, source, next_fire_at, revision, created_at, updated_at";

/// A schedule from a row holding [`COLUMNS`] (without its ticks).
fn record_from_row(row: &PgRow) -> Result<ScheduleRecord> {
    ScheduleColumns {
        name: codec::get(row, "name")?,
        cron: codec::get(row, "cron")?,
        timezone: codec::get(row, "timezone")?,
        job: codec::get(row, "job")?,
        overlap: codec::get(row, "overlap")?,
        catch_up: codec::get(row, "catch_up")?,
        catch_up_window_ms: codec::get(row, "catch_up_window_ms")?,
        jitter_ms: codec::get(row, "jitter_ms")?,
        paused: codec::get(row, "paused")?,
        source: codec::get(row, "source")?,
        next_fire_at: ts_opt(row, "next_fire_at")?,
        revision: codec::get(row, "revision")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    }
    .record()
}

/// Writes a schedule's definition: `INSERT` for a new one, `UPDATE` (bumping the revision) for a replaced one.
/// `$1` name, `$2` cron, `$3` time zone, `$4` job template (JSON text), `$5` overlap, `$6` catch-up,
/// `$7` catch-up window, `$8` jitter, `$9` paused, `$10` source, `$11` next fire time, `$12` now.
fn definition<'q>(
    sql: String,
    p: &'q ScheduleUpsertParams,
    job: String,
    plan: Upsert,
    now: Timestamp,
) -> Query<'q, Postgres, PgArguments> {
    let s = &p.schedule;
    sqlx::query(AssertSqlSafe(sql))
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
        .bind(plan.next_fire_at.map(Ts))
        .bind(Ts(now))
}

/// The latest fire time this schedule recorded a tick for (manual runs aside).
async fn last_tick_at(conn: &mut PgConnection, name: &str) -> Result<Option<Timestamp>> {
    let row = sqlx::query(
        "SELECT max(coalesce(last_fire_at, fire_at)) AS last FROM schedule_ticks \
         WHERE schedule = $1 AND NOT manual",
    )
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(db)?;
    ts_opt(&row, "last")
}

/// Creates or replaces a schedule, in one transaction that locks its row (if it exists) before reading it.
pub(crate) async fn upsert(
    conn: &mut PgConnection,
    now: Timestamp,
    p: ScheduleUpsertParams,
) -> Result<ScheduleUpserted> {
    let s = &p.schedule;
    let job = serde_json::to_string(&s.job).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut tx = conn.begin().await.map_err(db)?;
    // Twice at most: a row created by another server between our look and our insert is replaced instead.
    for _ in 0..2 {
        let existing = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM schedules WHERE name = $1 FOR UPDATE"
        )))
        .bind(&s.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let row = match existing {
            Some(row) => {
                let record = record_from_row(&row)?;
                let old = Existing {
                    record: &record,
                    last_tick_at: last_tick_at(&mut tx, &s.name).await?,
                };
                let plan = schedules::upsert(s, Some(old), now);
                let sql = format!(
                    "UPDATE schedules SET cron = $2, timezone = $3, job = $4::json, overlap = $5, catch_up = $6, \
                     catch_up_window_ms = $7, jitter_ms = $8, paused = $9, source = $10, next_fire_at = $11, \
                     revision = revision + 1, updated_at = $12 WHERE name = $1 RETURNING {COLUMNS}"
                );
                definition(sql, &p, job.clone(), plan, now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .map(|row| (row, plan.created))
            }
            None => {
                let plan = schedules::upsert(s, None, now);
                let sql = format!(
                    "INSERT INTO schedules (name, cron, timezone, job, overlap, catch_up, catch_up_window_ms, \
                     jitter_ms, paused, source, next_fire_at, revision, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4::json, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12) \
                     ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
                );
                definition(sql, &p, job.clone(), plan, now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .map(|row| (row, plan.created))
            }
        };
        if let Some((row, created)) = row {
            let record = record_from_row(&row)?;
            tx.commit().await.map_err(db)?;
            return Ok(ScheduleUpserted { record, created });
        }
    }
    Err(StoreError::Unavailable(format!(
        "schedule {} is being created and deleted concurrently; try again",
        s.name
    )))
}

/// One schedule with its most recent ticks, newest first (the ticks as arrays, so the schedule and its ticks
/// come from the same statement).
pub(crate) async fn get(
    conn: &mut PgConnection,
    p: ScheduleGetParams,
) -> Result<Option<ScheduleRecord>> {
    let sql = format!(
        "SELECT {COLUMNS}, t.* FROM schedules LEFT JOIN LATERAL ( \
           SELECT array_agg(k.fire_at ORDER BY k.seq DESC) AS t_fire_at, \
                  array_agg(k.outcome ORDER BY k.seq DESC) AS t_outcome, \
                  array_agg(k.job_id ORDER BY k.seq DESC) AS t_job_id, \
                  array_agg(k.count ORDER BY k.seq DESC) AS t_count, \
                  array_agg(k.last_fire_at ORDER BY k.seq DESC) AS t_last_fire_at, \
                  array_agg(k.manual ORDER BY k.seq DESC) AS t_manual, \
                  array_agg(k.recorded_at ORDER BY k.seq DESC) AS t_recorded_at \
           FROM (SELECT * FROM schedule_ticks WHERE schedule = schedules.name \
                 ORDER BY seq DESC LIMIT $2) AS k) AS t ON true \
         WHERE name = $1"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(&p.name)
        .bind(i64::from(p.recent_ticks))
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let mut record = record_from_row(&row)?;
    record.recent_ticks = Some(ticks(&row)?);
    Ok(Some(record))
}

/// The ticks aggregated by [`get`] (all arrays NULL when there are none).
fn ticks(row: &PgRow) -> Result<Vec<Tick>> {
    let Some(fire_ats) = codec::get::<Option<Vec<Ts>>>(row, "t_fire_at")? else {
        return Ok(Vec::new());
    };
    let outcomes: Vec<String> = codec::get(row, "t_outcome")?;
    let job_ids: Vec<Option<uuid::Uuid>> = codec::get(row, "t_job_id")?;
    let counts: Vec<i64> = codec::get(row, "t_count")?;
    let lasts: Vec<Option<Ts>> = codec::get(row, "t_last_fire_at")?;
    let manuals: Vec<bool> = codec::get(row, "t_manual")?;
    let recorded: Vec<Ts> = codec::get(row, "t_recorded_at")?;
    let n = fire_ats.len();
    if [
        outcomes.len(),
        job_ids.len(),
        counts.len(),
        lasts.len(),
        manuals.len(),
        recorded.len(),
    ]
    .iter()
    .any(|len| *len != n)
    {
        return Err(StoreError::corrupt("tick arrays differ in length"));
    }
    fire_ats
        .into_iter()
        .zip(outcomes)
        .zip(job_ids)
        .zip(counts)
        .zip(lasts)
        .zip(manuals)
        .zip(recorded)
        .map(
            |((((((fire_at, outcome), job_id), count), last), manual), recorded_at)| {
                TickColumns {
                    fire_at: fire_at.0,
                    outcome: &outcome,
                    job_id: job_id.map(offload_core::JobId),
                    count,
                    last_fire_at: last.map(|t| t.0),
                    manual,
                    recorded_at: recorded_at.0,
                }
                .tick()
            },
        )
        .collect()
}

/// A page of schedules in name order, without ticks.
pub(crate) async fn list(
    conn: &mut PgConnection,
    p: ScheduleListParams,
) -> Result<Vec<ScheduleRecord>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE ($1::text IS NULL OR name > $1) \
         AND ($2::text IS NULL OR source = $2) ORDER BY name LIMIT $3"
    )))
    .bind(p.after.as_deref())
    .bind(p.source.map(ScheduleSource::as_str))
    .bind(i64::from(p.limit))
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter().map(record_from_row).collect()
}

/// Deletes a schedule; its ticks go with it (`ON DELETE CASCADE`), its jobs stay.
pub(crate) async fn delete(conn: &mut PgConnection, p: ScheduleDeleteParams) -> Result<()> {
    let done = sqlx::query("DELETE FROM schedules WHERE name = $1")
        .bind(&p.name)
        .execute(conn)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(not_found(&p.name));
    }
    Ok(())
}

/// Pauses or resumes a schedule, keeping its next fire time (a resume catches up per its policy).
pub(crate) async fn set_paused(
    conn: &mut PgConnection,
    now: Timestamp,
    p: ScheduleSetPausedParams,
) -> Result<ScheduleRecord> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "UPDATE schedules SET paused = $1, revision = revision + 1, updated_at = $2 WHERE name = $3 \
         RETURNING {COLUMNS}"
    )))
    .bind(p.paused)
    .bind(Ts(now))
    .bind(&p.name)
    .fetch_optional(conn)
    .await
    .map_err(db)?
    .ok_or_else(|| not_found(&p.name))?;
    record_from_row(&row)
}

/// Unpaused schedules due by `p.until` (earliest first, walking `schedules_due`), and the earliest next fire
/// time after it.
pub(crate) async fn due(conn: &mut PgConnection, p: ScheduleDueParams) -> Result<DueSchedules> {
    let until = Ts(p.until);
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules \
         WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at <= $1 \
         ORDER BY next_fire_at LIMIT $2"
    )))
    .bind(until)
    .bind(i64::from(p.limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let due = rows
        .iter()
        .map(record_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = sqlx::query(
        "SELECT min(next_fire_at) AS next FROM schedules \
         WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at > $1",
    )
    .bind(until)
    .fetch_one(conn)
    .await
    .map_err(db)?;
    Ok(DueSchedules {
        due,
        next_fire_at: ts_opt(&next, "next")?,
    })
}

/// Ticks kept per schedule; older ones are pruned as new ones are recorded.
pub(crate) const KEEP_TICKS: i64 = 100;

/// Deletes the named schedules' ticks beyond their newest [`KEEP_TICKS`], in one statement (walking
/// `schedule_ticks_recent`).
pub(crate) async fn prune_ticks(conn: &mut PgConnection, names: &[&str]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM schedule_ticks t USING ( \
           SELECT n.name, (SELECT seq FROM schedule_ticks WHERE schedule = n.name \
                           ORDER BY seq DESC OFFSET $2 LIMIT 1) AS cutoff \
           FROM unnest($1::text[]) AS n (name)) AS c \
         WHERE t.schedule = c.name AND t.seq < c.cutoff",
    )
    .bind(names)
    .bind(KEEP_TICKS - 1)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}
