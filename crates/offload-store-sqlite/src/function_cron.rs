//! Cron triggers of durable functions: each cron function's next fire time, kept with its registration, and the
//! firing that turns due ticks into runs.
//!
//! Invariant: the decisions are [`offload_store::function_cron`]'s; this module reads the facts and writes what
//! they decide, on the write connection inside the caller's transaction. A firing stores each tick's event,
//! creates its run (first call inserted like any run's) and moves the next fire time past now together, so a
//! tick is never fired twice.

use jiff::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::event::EventId;
use offload_core::function::run::RunId;
use offload_store::Result;
use offload_store::fanout::event_json;
use offload_store::function_cron::{
    CronFired, FunctionCronReport, StoredCron, decide, next_fire_on_register, tick_event,
};
use sqlx::sqlite::SqliteConnection;

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::functions;
use crate::run_calls::{self, Calls};

/// Keeps the cron row of a function just written: recomputed when its cadence is new or changed, kept when
/// unchanged, removed when it has no cron trigger.
pub(crate) async fn register(
    conn: &mut SqliteConnection,
    now: Timestamp,
    function: &Function,
) -> Result<()> {
    let Some(cadence) = function.cadence() else {
        return forget(conn, &function.id).await;
    };
    let row = sqlx::query(
        "SELECT cron, timezone, next_fire_at, last_fired_at FROM function_crons WHERE function_id = ?1",
    )
    .bind(&function.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let previous = match &row {
        Some(r) => Some((
            get::<String>(r, "cron")?,
            get::<String>(r, "timezone")?,
            optional_time(get(r, "next_fire_at")?)?,
            optional_time(get(r, "last_fired_at")?)?,
        )),
        None => None,
    };
    let next = next_fire_on_register(
        cadence,
        previous
            .as_ref()
            .map(|(cron, timezone, next, last)| StoredCron {
                cron,
                timezone,
                next_fire_at: *next,
                last_fired_at: *last,
            }),
        now,
    );
    sqlx::query(
        "INSERT INTO function_crons (function_id, cron, timezone, next_fire_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (function_id) DO UPDATE SET cron = ?2, timezone = ?3, next_fire_at = ?4",
    )
    .bind(&function.id)
    .bind(cadence.expr().as_str())
    .bind(cadence.time_zone())
    .bind(next.map(micros))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Removes a function's cron row (the function was removed, or lost its cron trigger).
pub(crate) async fn forget(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM function_crons WHERE function_id = ?1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Fires up to `limit` due crons, earliest first: each due tick's event stored, its run started, its next fire
/// time persisted.
pub(crate) async fn fire(
    conn: &mut SqliteConnection,
    now: Timestamp,
    limit: u32,
    counts: &mut Counts,
) -> Result<FunctionCronReport> {
    let rows = sqlx::query(
        "SELECT function_id, next_fire_at FROM function_crons \
         WHERE next_fire_at IS NOT NULL AND next_fire_at <= ?1 ORDER BY next_fire_at, function_id LIMIT ?2",
    )
    .bind(micros(now))
    .bind(i64::from(limit.max(1)))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut report = FunctionCronReport::default();
    let mut calls = Calls::default();
    for row in &rows {
        let id: String = get(row, "function_id")?;
        let from = codec::timestamp(get(row, "next_fire_at")?)?;
        let Some(function) = functions::load(conn, &id, false).await?.map(|r| r.function) else {
            forget(conn, &id).await?;
            continue;
        };
        let Some(cadence) = function.cadence() else {
            forget(conn, &id).await?;
            continue;
        };
        let decision = decide(cadence, from, now);
        if let Some(tick) = decision.fire {
            let event_id = EventId::new();
            let event = tick_event(&id, cadence, tick.scheduled_at);
            if singleton_is_live(conn, &function, &event_json(event_id, &event)).await? {
                sqlx::query("UPDATE function_crons SET next_fire_at = ?2 WHERE function_id = ?1")
                    .bind(&id)
                    .bind(decision.next_fire_at.map(micros))
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                continue;
            }
            sqlx::query(
                "INSERT INTO events (id, name, data, user_id, ts, received_at) VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            )
            .bind(event_id.0.as_bytes().as_slice())
            .bind(&event.name)
            .bind(event.data.get())
            .bind(micros(event.ts))
            .bind(micros(now))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            let text = event_json(event_id, &event).to_string();
            let run_id: RunId = run_calls::create_run_into(
                conn,
                now,
                &function,
                (event_id, &text, None),
                &mut calls,
            )
            .await?;
            sqlx::query("UPDATE function_crons SET last_fired_at = ?2 WHERE function_id = ?1")
                .bind(&id)
                .bind(micros(tick.scheduled_at))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            report.fired.push(CronFired {
                function_id: id.clone(),
                scheduled_at: tick.scheduled_at,
                missed: tick.missed,
                event_id,
                run_id,
            });
        }
        sqlx::query("UPDATE function_crons SET next_fire_at = ?2 WHERE function_id = ?1")
            .bind(&id)
            .bind(decision.next_fire_at.map(micros))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    calls.insert(conn, now, counts, &mut report.queues).await?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT min(next_fire_at) FROM function_crons WHERE next_fire_at IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    report.next_fire_at = optional_time(next)?;
    Ok(report)
}

fn optional_time(us: Option<i64>) -> Result<Option<Timestamp>> {
    us.map(codec::timestamp).transpose()
}

/// Whether `function` is a singleton with a live run of the tick's key: the tick then starts nothing (whatever
/// the singleton's mode; the live run is the one the schedule wants).
async fn singleton_is_live(
    conn: &mut SqliteConnection,
    function: &Function,
    event: &serde_json::Value,
) -> Result<bool> {
    let Some(key) = function.flow.singleton_key(event) else {
        return Ok(false);
    };
    Ok(crate::events::live_singleton(conn, &function.id, &key)
        .await?
        .is_some())
}
