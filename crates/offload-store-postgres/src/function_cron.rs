//! Cron triggers of durable functions: each cron function's next fire time, kept with its registration, and the
//! firing that turns due ticks into runs.
//!
//! Invariant: the decisions are [`offload_store::function_cron`]'s; this module reads the facts and writes what
//! they decide. A firing locks the due rows (`FOR UPDATE SKIP LOCKED`: a row another server is firing is left
//! to it, and once committed it is no longer due), and in the same transaction stores each tick's event,
//! creates its run with its first call and moves the next fire time past now, so with any number of servers a
//! tick is fired once. Registration locks the row it reads, so it never writes back a next fire time a
//! concurrent firing has moved.

use offload_core::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::event::EventId;
use offload_core::function::protocol::Json;
use offload_core::function::record::RecordLimits;
use offload_core::function::run::RunId;
use offload_store::fanout::event_json;
use offload_store::function_cron::{
    CronFired, FunctionCronReport, StoredCron, decide, next_fire_on_register, tick_event,
};
use offload_store::{Result, StoreError};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::codec::{Ts, get, ts, ts_opt};
use crate::error::db;
use crate::events::{NewRun, insert_runs};
use crate::functions;

/// Keeps the cron row of a function just written (inside its transaction): recomputed when its cadence is new
/// or changed, kept when unchanged, removed when it has no cron trigger.
pub(crate) async fn register(
    conn: &mut PgConnection,
    now: Timestamp,
    function: &Function,
) -> Result<()> {
    let Some(cadence) = function.cadence() else {
        return forget(conn, &function.id).await;
    };
    let row = sqlx::query(
        "SELECT cron, timezone, next_fire_at, last_fired_at FROM function_crons \
         WHERE function_id = $1 FOR UPDATE",
    )
    .bind(&function.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let previous = match &row {
        Some(r) => Some((
            get::<String>(r, "cron")?,
            get::<String>(r, "timezone")?,
            ts_opt(r, "next_fire_at")?,
            ts_opt(r, "last_fired_at")?,
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
        "INSERT INTO function_crons (function_id, cron, timezone, next_fire_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (function_id) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
             next_fire_at = excluded.next_fire_at",
    )
    .bind(&function.id)
    .bind(cadence.expr().as_str())
    .bind(cadence.time_zone())
    .bind(next.map(Ts))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Removes a function's cron row (the function was removed, or lost its cron trigger).
pub(crate) async fn forget(conn: &mut PgConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM function_crons WHERE function_id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Fires up to `limit` due crons in one transaction of its own (see the module's invariant).
pub(crate) async fn fire(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    limit: u32,
) -> Result<FunctionCronReport> {
    let mut tx = conn.begin().await.map_err(db)?;
    let out = fire_in(&mut tx, now, limits, limit).await;
    crate::run_flow::settle(tx, out).await
}

/// [`fire`] inside its transaction.
async fn fire_in(
    tx: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    limit: u32,
) -> Result<FunctionCronReport> {
    let rows = sqlx::query(
        "SELECT function_id, next_fire_at FROM function_crons
         WHERE next_fire_at <= $1 ORDER BY next_fire_at, function_id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(Ts(now))
    .bind(i64::from(limit.max(1)))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut report = FunctionCronReport::default();
    let mut started: Vec<(Function, RunId, EventId, Json)> = Vec::new();
    let mut ids = Vec::with_capacity(rows.len());
    let mut nexts = Vec::with_capacity(rows.len());
    let mut lasts = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = get(row, "function_id")?;
        let from = ts(row, "next_fire_at")?;
        let Some(function) = functions::get_one(tx, &id).await?.map(|r| r.function) else {
            forget(tx, &id).await?;
            continue;
        };
        let Some(cadence) = function.cadence() else {
            forget(tx, &id).await?;
            continue;
        };
        let decision = decide(cadence, from, now);
        let mut last = None;
        if let Some(tick) = decision.fire {
            let event_id = EventId::new();
            let event = tick_event(&id, cadence, tick.scheduled_at);
            sqlx::query(
                "INSERT INTO events (id, name, data, user_id, ts, received_at)
                 VALUES ($1, $2, $3::json, NULL, $4, $5)",
            )
            .bind(event_id.0)
            .bind(&event.name)
            .bind(event.data.get())
            .bind(Ts(event.ts))
            .bind(Ts(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let json = Json::from_text(event_json(event_id, &event).to_string())
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            let run_id = RunId::new();
            report.fired.push(CronFired {
                function_id: id.clone(),
                scheduled_at: tick.scheduled_at,
                missed: tick.missed,
                event_id,
                run_id,
            });
            last = Some(Ts(tick.scheduled_at));
            started.push((function.clone(), run_id, event_id, json));
        }
        ids.push(id);
        nexts.push(decision.next_fire_at.map(Ts));
        lasts.push(last);
    }
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE function_crons AS c SET next_fire_at = u.next_fire_at,
                 last_fired_at = coalesce(u.last_fired_at, c.last_fired_at)
             FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS u (id, next_fire_at, last_fired_at)
             WHERE c.function_id = u.id",
        )
        .bind(&ids)
        .bind(&nexts)
        .bind(&lasts)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    let runs: Vec<NewRun<'_>> = started
        .iter()
        .map(|(function, id, event_id, event)| NewRun {
            id: *id,
            function,
            event_id: *event_id,
            event: event.clone(),
            parent: None,
        })
        .collect();
    // A singleton whose run of the tick's key is still live starts nothing (whatever its mode).
    let (queues, refused) = insert_runs(tx, now, limits, &runs).await?;
    report.queues = queues;
    report.fired.retain(|f| !refused.contains(&f.run_id));
    let next: Option<Ts> = sqlx::query_scalar("SELECT min(next_fire_at) FROM function_crons")
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    report.next_fire_at = next.map(|t| t.0);
    Ok(report)
}
