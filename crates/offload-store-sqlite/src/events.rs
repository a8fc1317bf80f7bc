//! Events: stored and fanned out in the writer's transaction (a run per matching function, waits resolved,
//! `cancel_on` runs cancelled), and read back.
//!
//! Invariant: an event's fan-out is [`offload_store::fanout::fanout`] over the facts read here, written in the
//! transaction that stores the event. A de-duplication id already stored answers the first event and writes
//! nothing; the unique index on `user_id` keeps it so. An event never cancels a run it started (the candidates
//! are read before its runs are created).

use std::collections::HashMap;

use jiff::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::event::{EventId, NewEvent};
use offload_core::function::protocol::Json;
use offload_core::function::record::{WaitOutcome, resolve_wait};
use offload_core::function::run::RunId;
use offload_store::calls::INVOKED_EVENT;
use offload_store::fanout::{CancelFact, EventFacts, WaitFact, fanout};
use offload_store::{
    EventListParams, EventRecord, EventSendParams, EventSendReport, EventSent, Result, StoreError,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::run_calls::{self, uuid_of};

/// The stored event holding a de-duplication id.
pub(crate) const DUPLICATE_SQL: &str = "SELECT id FROM events WHERE user_id = ?1";

/// Live runs of the functions whose `cancel_on` names an event.
pub(crate) const CANCEL_CANDIDATES_SQL: &str = "SELECT r.seq, r.id, r.event, r.function_id \
    FROM function_events fe JOIN runs r ON r.function_id = fe.function_id \
    WHERE fe.name = ?1 AND fe.kind = 'cancel' AND r.state NOT IN ('succeeded', 'failed', 'cancelled')";

/// Registered functions an event name triggers.
pub(crate) const TRIGGERED_SQL: &str = "SELECT f.id FROM function_events fe \
    JOIN functions f ON f.id = fe.function_id \
    WHERE fe.name = ?1 AND fe.kind = 'trigger' AND f.deleted_at IS NULL ORDER BY fe.function_id";

/// Waits for an event name.
pub(crate) const WAITS_SQL: &str = "SELECT run_seq, step_id, match_path, match_key FROM run_waits \
    WHERE event_name = ?1 AND kind = 'event'";

/// Stores and fans out a request's events.
pub(crate) async fn send(
    conn: &mut SqliteConnection,
    now: Timestamp,
    p: EventSendParams,
    counts: &mut Counts,
) -> Result<EventSendReport> {
    let mut woken = Vec::new();
    let items = p.events.into_iter().map(|e| (EventId::new(), e)).collect();
    let events = store(conn, now, items, counts, &mut woken).await?;
    Ok(EventSendReport { events, woken })
}

/// The event as the code sees it: `{"name", "data", "id", "ts"}` (`id`: the sender's, else the server's).
fn code_json(id: EventId, e: &NewEvent) -> Value {
    serde_json::json!({
        "name": e.name,
        "data": serde_json::from_str::<Value>(e.data.get()).unwrap_or(Value::Null),
        "id": e.id.clone().unwrap_or_else(|| id.to_string()),
        "ts": e.ts.to_string(),
    })
}

/// Functions read during one fan-out, by id (a removed function's too: its runs keep their `cancel_on`).
#[derive(Default)]
struct Known(HashMap<String, Function>);

impl Known {
    async fn get(&mut self, conn: &mut SqliteConnection, id: &str) -> Result<&Function> {
        if !self.0.contains_key(id) {
            let f = run_calls::function_of(conn, id).await?;
            self.0.insert(id.to_owned(), f);
        }
        self.0
            .get(id)
            .ok_or_else(|| StoreError::Internal("function cache".into()))
    }
}

/// Stores events with the given ids and fans each out, in order.
pub(crate) async fn store(
    conn: &mut SqliteConnection,
    now: Timestamp,
    items: Vec<(EventId, NewEvent)>,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<Vec<EventSent>> {
    let mut known = Known::default();
    let mut out = Vec::with_capacity(items.len());
    for (id, event) in items {
        if let Some(user_id) = &event.id {
            let first: Option<Vec<u8>> = sqlx::query_scalar(DUPLICATE_SQL)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
            if let Some(first) = first {
                let first = EventId(uuid_of(&first)?);
                out.push(EventSent {
                    id: first,
                    duplicate: true,
                    runs: runs_of(conn, first).await?,
                    resolved_waits: 0,
                    cancelled_runs: 0,
                });
                continue;
            }
        }
        sqlx::query(
            "INSERT INTO events (id, name, data, user_id, ts, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(id.0.as_bytes().as_slice())
        .bind(&event.name)
        .bind(event.data.get())
        .bind(event.id.as_deref())
        .bind(micros(event.ts))
        .bind(micros(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        out.push(fan_out(conn, now, id, &event, &mut known, counts, woken).await?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)] // the event, the cache and the transaction's accumulators
async fn fan_out(
    conn: &mut SqliteConnection,
    now: Timestamp,
    id: EventId,
    event: &NewEvent,
    known: &mut Known,
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<EventSent> {
    let json = code_json(id, event);
    let text = json.to_string();
    let name = event.name.as_str();

    let candidates = sqlx::query(CANCEL_CANDIDATES_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut cancel_rows = Vec::with_capacity(candidates.len());
    for row in &candidates {
        let function_id: String = get(row, "function_id")?;
        let run_event: String = get(row, "event")?;
        let run_event: Value = serde_json::from_str(&run_event)
            .map_err(|e| StoreError::corrupt(format!("run event: {e}")))?;
        let rules = known.get(conn, &function_id).await?.cancel_on.clone();
        cancel_rows.push((RunId(uuid_of(get::<&[u8]>(row, "id")?)?), rules, run_event));
    }

    let triggered: Vec<String> = sqlx::query_scalar(TRIGGERED_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut functions = Vec::with_capacity(triggered.len());
    for f in &triggered {
        functions.push(known.get(conn, f).await?.clone());
    }

    let wait_rows = sqlx::query(WAITS_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let waits = wait_rows
        .iter()
        .map(wait_fact)
        .collect::<Result<Vec<_>>>()?;

    let function_refs: Vec<&Function> = functions.iter().collect();
    let cancel: Vec<CancelFact<'_>> = cancel_rows
        .iter()
        .map(|(_, rules, run_event)| CancelFact { rules, run_event })
        .collect();
    let plan = fanout(&EventFacts {
        name,
        event: &json,
        functions: &function_refs,
        waits: &waits,
        cancel: &cancel,
    });

    let mut runs = Vec::with_capacity(plan.start.len());
    for i in plan.start {
        runs.push(
            run_calls::create_run(conn, now, &functions[i], id, &text, None, counts, woken).await?,
        );
    }
    let mut resolved_waits = 0;
    for i in plan.resolve {
        let row = &wait_rows[i];
        let run_seq: i64 = get(row, "run_seq")?;
        let step: String = get(row, "step_id")?;
        let claimed = sqlx::query("DELETE FROM run_waits WHERE run_seq = ?1 AND step_id = ?2")
            .bind(run_seq)
            .bind(&step)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        if claimed.rows_affected() == 0 {
            continue;
        }
        let data =
            Json::from_text(text.clone()).map_err(|e| StoreError::Internal(e.to_string()))?;
        let resolution = resolve_wait(&step, WaitOutcome::Event(data));
        run_calls::continue_with(conn, now, run_seq, &resolution, counts, woken).await?;
        resolved_waits += 1;
    }
    let mut cancelled_runs = 0;
    for i in plan.cancel {
        let Some(run) = run_calls::load_run(conn, cancel_rows[i].0).await? else {
            continue;
        };
        if run.state.is_final() {
            continue;
        }
        run_calls::cancel_run(conn, now, &run, counts, woken).await?;
        cancelled_runs += 1;
    }
    Ok(EventSent {
        id,
        duplicate: false,
        runs,
        resolved_waits,
        cancelled_runs,
    })
}

fn wait_fact(row: &SqliteRow) -> Result<WaitFact<'_>> {
    Ok(WaitFact {
        path: get(row, "match_path")?,
        key: get(row, "match_key")?,
    })
}

/// Stores the event that starts an invoked run (not fanned out); returns its id and its JSON as the code sees
/// it.
pub(crate) async fn store_invocation(
    conn: &mut SqliteConnection,
    now: Timestamp,
    data: &Json,
) -> Result<(EventId, String)> {
    let id = EventId::new();
    let event = NewEvent {
        name: INVOKED_EVENT.to_owned(),
        data: data.clone(),
        id: None,
        ts: now,
    };
    sqlx::query(
        "INSERT INTO events (id, name, data, user_id, ts, received_at) VALUES (?1, ?2, ?3, NULL, ?4, ?4)",
    )
    .bind(id.0.as_bytes().as_slice())
    .bind(&event.name)
    .bind(event.data.get())
    .bind(micros(now))
    .execute(conn)
    .await
    .map_err(db)?;
    Ok((id, code_json(id, &event).to_string()))
}

/// The runs an event started, oldest first.
async fn runs_of(conn: &mut SqliteConnection, event: EventId) -> Result<Vec<RunId>> {
    let ids: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT id FROM runs WHERE event_id = ?1 ORDER BY seq")
            .bind(event.0.as_bytes().as_slice())
            .fetch_all(conn)
            .await
            .map_err(db)?;
    ids.iter().map(|b| Ok(RunId(uuid_of(b)?))).collect()
}

async fn event_of(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<EventRecord> {
    let id = EventId(uuid_of(get::<&[u8]>(row, "id")?)?);
    let data: String = get(row, "data")?;
    Ok(EventRecord {
        id,
        name: get(row, "name")?,
        data: Json::from_text(data).map_err(|e| StoreError::corrupt(format!("event data: {e}")))?,
        user_id: get(row, "user_id")?,
        ts: codec::timestamp(get(row, "ts")?)?,
        received_at: codec::timestamp(get(row, "received_at")?)?,
        runs: runs_of(conn, id).await?,
    })
}

/// One stored event.
pub(crate) async fn get_one(
    conn: &mut SqliteConnection,
    id: EventId,
) -> Result<Option<EventRecord>> {
    let row =
        sqlx::query("SELECT id, name, data, user_id, ts, received_at FROM events WHERE id = ?1")
            .bind(id.0.as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    match row {
        Some(row) => Ok(Some(event_of(conn, &row).await?)),
        None => Ok(None),
    }
}

/// A page of events, newest first.
pub(crate) async fn list(
    conn: &mut SqliteConnection,
    p: &EventListParams,
) -> Result<Vec<EventRecord>> {
    let rows = sqlx::query(
        "SELECT id, name, data, user_id, ts, received_at FROM events \
         WHERE (?1 IS NULL OR name = ?1) \
           AND (?2 IS NULL OR seq < coalesce((SELECT seq FROM events WHERE id = ?2), -1)) \
         ORDER BY seq DESC LIMIT ?3",
    )
    .bind(p.name.as_deref())
    .bind(p.before.map(|b| b.0.as_bytes().to_vec()))
    .bind(i64::from(p.limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(event_of(conn, row).await?);
    }
    Ok(out)
}
