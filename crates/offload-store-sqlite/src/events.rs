//! Events: stored and fanned out in the writer's transaction (a run per matching function, waits resolved,
//! `cancel_on` runs cancelled), and read back.
//!
//! Invariant: an event's fan-out is [`offload_store::fanout::fanout`] over the facts read here, written in the
//! transaction that stores the event. A de-duplication id already stored answers the first event and writes
//! nothing; the unique index on `user_id` keeps it so. An event never cancels a run it started (the runs it cancels
//! are looked up by their cancel keys before its runs are created).

use std::collections::HashMap;

use jiff::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::event::{EventId, NewEvent};
use offload_core::function::flow::SingletonMode;
use offload_core::function::path::FieldPath;
use offload_core::function::protocol::Json;
use offload_core::function::record::{WaitOutcome, resolve_wait};
use offload_core::function::run::RunId;
use offload_store::calls::INVOKED_EVENT;
use offload_store::fanout::{
    EventFacts, RateFact, SkipReason, WaitFact, cancel_lookup, event_json, fanout,
};
use offload_store::{
    EventListParams, EventRecord, EventSendParams, EventSendReport, EventSent, Result, Skipped,
    StoreError, skipped_from_db, skipped_to_db,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::codec::{self, get, micros};
use crate::counts::Counts;
use crate::error::db;
use crate::run_calls::{self, Calls};
use crate::run_rows::{self, uuid_of};

/// The stored event holding a de-duplication id.
pub(crate) const DUPLICATE_SQL: &str = "SELECT id FROM events WHERE user_id = ?1";

/// Functions whose `cancel_on` names an event (removed ones too: their runs keep going).
pub(crate) const CANCEL_WATCHERS_SQL: &str =
    "SELECT function_id FROM function_events WHERE name = ?1 AND kind = 'cancel'";

/// Live runs with a cancel key.
pub(crate) const CANCEL_KEYS_SQL: &str = "SELECT run_seq FROM run_cancel_keys \
    WHERE event_name = ?1 AND match_path = ?2 AND match_key = ?3";

/// Registered functions an event name triggers.
pub(crate) const TRIGGERED_SQL: &str = "SELECT f.id FROM function_events fe \
    JOIN functions f ON f.id = fe.function_id \
    WHERE fe.name = ?1 AND fe.kind = 'trigger' AND f.deleted_at IS NULL ORDER BY fe.function_id";

/// The distinct paths waits for an event name compare, one index seek each (a skip scan).
pub(crate) const WAIT_PATHS_SQL: &str = "WITH RECURSIVE p(path) AS ( \
      SELECT min(match_path) FROM run_waits WHERE event_name = ?1 \
      UNION ALL \
      SELECT (SELECT min(match_path) FROM run_waits WHERE event_name = ?1 AND match_path > p.path) \
      FROM p WHERE p.path IS NOT NULL) \
    SELECT path FROM p WHERE path IS NOT NULL";

/// Waits for an event name that take any event of it.
pub(crate) const WAITS_ANY_SQL: &str = "SELECT run_seq, step_id, match_path, match_key FROM run_waits \
    WHERE event_name = ?1 AND match_path IS NULL AND match_key IS NULL";

/// Waits for an event name whose value at a path is a key.
pub(crate) const WAITS_KEY_SQL: &str = "SELECT run_seq, step_id, match_path, match_key FROM run_waits \
    WHERE event_name = ?1 AND match_path = ?2 AND match_key = ?3";

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
    let mut calls = Calls::default();
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
                    started: Vec::new(),
                    resolved_waits: 0,
                    cancelled_runs: 0,
                    skipped: Vec::new(),
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
        let gathered = (&mut known, &mut calls);
        out.push(fan_out(conn, now, id, &event, gathered, counts, woken).await?);
    }
    calls.insert(conn, now, counts, woken).await?;
    Ok(out)
}

/// Fans one stored event out: the runs it starts and the waits it resolves get their next call gathered into
/// `calls`; the runs it cancels are cancelled at once (the calls gathered so far inserted first, so a run an
/// earlier event of the transaction started has its call cancelled with it).
#[allow(clippy::too_many_arguments)] // the event, the cache and the transaction's accumulators
async fn fan_out(
    conn: &mut SqliteConnection,
    now: Timestamp,
    id: EventId,
    event: &NewEvent,
    (known, calls): (&mut Known, &mut Calls),
    counts: &mut Counts,
    woken: &mut Vec<String>,
) -> Result<EventSent> {
    let json = event_json(id, event);
    let text = json.to_string();
    let name = event.name.as_str();

    // Runs this event cancels, found by their cancel keys (read before this event's runs exist).
    let doomed = cancelled_by(conn, name, &json, known).await?;

    let triggered: Vec<String> = sqlx::query_scalar(TRIGGERED_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut functions = Vec::with_capacity(triggered.len());
    for f in &triggered {
        functions.push(known.get(conn, f).await?.clone());
    }

    let wait_rows = waits_for(conn, name, &json).await?;
    let waits = wait_rows
        .iter()
        .map(wait_fact)
        .collect::<Result<Vec<_>>>()?;

    let mut rates = Vec::with_capacity(functions.len());
    for f in &functions {
        rates.push(match f.flow.rate_key(&json) {
            Some(key) if f.is_triggered_by(name, &json) => {
                let tat: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT tat FROM function_rates WHERE function_id = ?1 AND key = ?2",
                )
                .bind(&f.id)
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
                RateFact::Bucket(tat.flatten().map(codec::timestamp).transpose()?)
            }
            _ => RateFact::Unlimited,
        });
    }

    let function_refs: Vec<&Function> = functions.iter().collect();
    let mut plan = fanout(&EventFacts {
        now,
        name,
        event: &json,
        functions: &function_refs,
        rates: &rates,
        waits: &waits,
        cancel: &[],
    });

    // Singletons: a live run of the key skips the new one (`skip`; the event has used the rate limit) or is
    // cancelled (`cancel`).
    let mut replaced = Vec::new();
    let mut starts = Vec::with_capacity(plan.start.len());
    for i in std::mem::take(&mut plan.start) {
        let f = &functions[i];
        let live = match (&f.flow.singleton, f.flow.singleton_key(&json)) {
            (Some(s), Some(key)) => live_singleton(conn, &f.id, &key)
                .await?
                .map(|seq| (s.mode, seq)),
            _ => None,
        };
        match live {
            Some((SingletonMode::Skip, _)) => {
                plan.skipped.push((i, SkipReason::Singleton));
            }
            Some((SingletonMode::Cancel, seq)) => {
                replaced.push(seq);
                starts.push(i);
            }
            None => starts.push(i),
        }
    }
    for &(i, tat) in &plan.rated {
        sqlx::query(
            "INSERT INTO function_rates (function_id, key, tat) VALUES (?1, ?2, ?3) \
             ON CONFLICT (function_id, key) DO UPDATE SET tat = excluded.tat",
        )
        .bind(&functions[i].id)
        .bind(functions[i].flow.rate_key(&json).unwrap_or_default())
        .bind(micros(tat))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    plan.skipped.sort_by_key(|(i, _)| *i);
    let skipped: Vec<Skipped> = plan
        .skipped
        .iter()
        .map(|&(i, reason)| Skipped {
            function_id: functions[i].id.clone(),
            reason,
        })
        .collect();
    if let Some(text) = skipped_to_db(&skipped) {
        sqlx::query("UPDATE events SET skipped = ?2 WHERE id = ?1")
            .bind(id.0.as_bytes().as_slice())
            .bind(text)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    if !replaced.is_empty() {
        calls.insert(conn, now, counts, woken).await?;
    }
    for seq in replaced {
        if let Some(run) = run_rows::load_run_seq(conn, seq).await?
            && !run.state.is_final()
        {
            run_calls::cancel_run(conn, now, &run, counts, woken).await?;
        }
    }

    let mut runs = Vec::with_capacity(starts.len());
    let mut started = Vec::with_capacity(starts.len());
    for i in starts {
        let started_by = (id, text.as_str(), None);
        runs.push(run_calls::create_run_into(conn, now, &functions[i], started_by, calls).await?);
        started.push(functions[i].id.clone());
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
        run_calls::continue_into(conn, now, run_seq, &resolution, calls).await?;
        resolved_waits += 1;
    }
    let mut cancelled_runs = 0;
    if !doomed.is_empty() {
        calls.insert(conn, now, counts, woken).await?;
    }
    for seq in doomed {
        let Some(run) = run_rows::load_run_seq(conn, seq).await? else {
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
        started,
        resolved_waits,
        cancelled_runs,
        skipped,
    })
}

/// The live run of a function's singleton key, if any.
pub(crate) async fn live_singleton(
    conn: &mut SqliteConnection,
    function: &str,
    key: &str,
) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT seq FROM runs WHERE function_id = ?1 AND singleton_key = ?2 \
         AND state NOT IN ('succeeded', 'failed', 'cancelled')",
    )
    .bind(function)
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(db)
}

/// The waits an event may resolve, found by index: those taking any event of its name, and for each path the
/// waits compare, those whose key equals the event's value there. [`fanout`] still judges each.
async fn waits_for(
    conn: &mut SqliteConnection,
    name: &str,
    event: &Value,
) -> Result<Vec<SqliteRow>> {
    let mut rows = sqlx::query(WAITS_ANY_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let paths: Vec<String> = sqlx::query_scalar(WAIT_PATHS_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    for path in paths {
        let Some(key) = FieldPath::parse(&path)
            .ok()
            .and_then(|p| p.match_key(event))
        else {
            continue;
        };
        rows.extend(
            sqlx::query(WAITS_KEY_SQL)
                .bind(name)
                .bind(&path)
                .bind(key)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?,
        );
    }
    Ok(rows)
}

/// The live runs an event named `name` cancels: for each path the `cancel_on` rules naming it compare, the runs
/// whose cancel key equals the event's ([`cancel_lookup`]), each once.
async fn cancelled_by(
    conn: &mut SqliteConnection,
    name: &str,
    event: &Value,
    known: &mut Known,
) -> Result<Vec<i64>> {
    let watchers: Vec<String> = sqlx::query_scalar(CANCEL_WATCHERS_SQL)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut paths: Vec<Option<FieldPath>> = Vec::new();
    for f in &watchers {
        for rule in &known.get(conn, f).await?.cancel_on {
            if rule.event == name && !paths.contains(&rule.match_path) {
                paths.push(rule.match_path.clone());
            }
        }
    }
    let mut doomed = Vec::new();
    for path in &paths {
        let Some((path, key)) = cancel_lookup(path.as_ref(), event) else {
            continue;
        };
        let seqs: Vec<i64> = sqlx::query_scalar(CANCEL_KEYS_SQL)
            .bind(name)
            .bind(path)
            .bind(key)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        for seq in seqs {
            if !doomed.contains(&seq) {
                doomed.push(seq);
            }
        }
    }
    Ok(doomed)
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
    Ok((id, event_json(id, &event).to_string()))
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
        skipped: skipped_from_db(get(row, "skipped")?)?,
    })
}

/// One stored event.
pub(crate) async fn get_one(
    conn: &mut SqliteConnection,
    id: EventId,
) -> Result<Option<EventRecord>> {
    let row = sqlx::query(
        "SELECT id, name, data, user_id, ts, received_at, skipped FROM events WHERE id = ?1",
    )
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
        "SELECT id, name, data, user_id, ts, received_at, skipped FROM events \
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
