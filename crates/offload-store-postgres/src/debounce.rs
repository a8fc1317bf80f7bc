//! Debounce on enqueue: a job with a debounce key whose queue holds a waiting job (scheduled or available) of
//! that key updates that job (payload, start) instead of being inserted.
//!
//! Invariant: at most one waiting job per (queue, debounce key), whichever servers enqueue it at once: the group
//! takes a transaction-scoped advisory lock per (queue, key) (in the locks' id order, so two groups never wait
//! for each other in a cycle) before reading the waiting jobs, so a concurrent enqueue of the same key waits for
//! this transaction and then sees its job; the unique index `jobs_debounce` stays as a backstop. Where the start
//! moves is decided by [`offload_core::flow::debounce::DebounceSpec::start_at`], never in SQL. Moves between
//! `scheduled` and `available` are counted in the same transaction (and the group triggers count them too).

use std::collections::HashMap;

use offload_core::state::due_state;
use offload_core::{JobId, JobState, Timestamp};
use offload_store::{Inserted, Result};
use serde_json::value::RawValue;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use crate::codec::{self, Ts, get, ts};
use crate::counts::Counts;
use crate::error::db;
use crate::jobs_insert::Row;

/// Advisory-lock class of debounce keys (the first half of the two-part lock key).
const DEBOUNCE_LOCK_CLASS: i32 = 0x00ff_10ae;

/// The waiting jobs of the (queue, key) pairs `($1[i], $2[i])`, locked.
pub(crate) const FIND_SQL: &str = "SELECT id, queue, debounce_key, state, run_at, created_at FROM jobs \
     WHERE (queue, debounce_key) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
       AND debounce_key IS NOT NULL AND state IN ('scheduled', 'available') \
     ORDER BY id FOR UPDATE";

/// A stored waiting job of a debounce key.
struct Stored<'a> {
    id: Uuid,
    queue: String,
    created_at: Timestamp,
    state: JobState,
    run_at: Timestamp,
    /// The state it was read in.
    read_state: JobState,
    /// The new payload, once an enqueue of the group took it.
    payload: Option<&'a RawValue>,
}

/// Where the waiting job of a key is: stored, or a row this group inserts.
enum Holder {
    Stored(usize),
    Row(usize),
}

/// Takes the debounced rows whose key has a waiting job (stored, or inserted earlier in the group) out of
/// `rows`, updates that job, and rewrites their answers; returns the queues whose updated jobs are available.
pub(crate) async fn absorb<'a>(
    conn: &mut PgConnection,
    now: Timestamp,
    rows: &mut Vec<Row<'a>>,
    answers: &mut [Result<Vec<Inserted>>],
) -> Result<Vec<String>> {
    let mut keys: Vec<(&str, &str)> = rows
        .iter()
        .filter_map(|r| {
            r.job
                .debounce
                .as_ref()
                .map(|d| (r.job.queue.as_str(), d.key.as_str()))
        })
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    keys.sort_unstable();
    keys.dedup();
    let queues: Vec<&str> = keys.iter().map(|(q, _)| *q).collect();
    let names: Vec<&str> = keys.iter().map(|(_, k)| *k).collect();
    // Queue names never hold a newline, so `queue \n key` names one pair.
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, h) FROM \
         (SELECT DISTINCT hashtext(q || E'\\n' || k) AS h FROM unnest($2::text[], $3::text[]) AS u (q, k) \
          ORDER BY 1 OFFSET 0) AS ordered",
    )
    .bind(DEBOUNCE_LOCK_CLASS)
    .bind(&queues)
    .bind(&names)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let found = sqlx::query(FIND_SQL)
        .bind(&queues)
        .bind(&names)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut stored = Vec::with_capacity(found.len());
    let mut holders: HashMap<(String, String), Holder> = HashMap::new();
    for r in &found {
        let state = codec::state(get::<&str>(r, "state")?)?;
        let queue: String = get(r, "queue")?;
        holders.insert(
            (queue.clone(), get(r, "debounce_key")?),
            Holder::Stored(stored.len()),
        );
        stored.push(Stored {
            id: get(r, "id")?,
            queue,
            created_at: ts(r, "created_at")?,
            state,
            run_at: ts(r, "run_at")?,
            read_state: state,
            payload: None,
        });
    }
    let mut kept: Vec<Row<'a>> = Vec::with_capacity(rows.len());
    for row in rows.drain(..) {
        let Some(spec) = row.job.debounce.as_ref() else {
            kept.push(row);
            continue;
        };
        let key = (row.job.queue.clone(), spec.key.clone());
        let answer = match holders.get(&key) {
            None => {
                holders.insert(key, Holder::Row(kept.len()));
                kept.push(row);
                continue;
            }
            Some(Holder::Stored(i)) => {
                let s = &mut stored[*i];
                s.run_at = codec::stored_precision(spec.start_at(s.created_at, s.run_at, now));
                s.state = due_state(s.run_at, now, JobState::Scheduled);
                s.payload = Some(row.payload);
                Inserted {
                    id: JobId(s.id),
                    state: s.state,
                    run_at: s.run_at,
                    created_at: s.created_at,
                    duplicate: false,
                    debounced: true,
                }
            }
            Some(Holder::Row(i)) => {
                let k = &mut kept[*i];
                k.run_at = codec::stored_precision(spec.start_at(now, k.run_at, now));
                k.state = due_state(k.run_at, now, JobState::Scheduled);
                k.payload = row.payload;
                Inserted {
                    id: k.job.id,
                    state: k.state,
                    run_at: k.run_at,
                    created_at: now,
                    duplicate: false,
                    debounced: true,
                }
            }
        };
        let (command, index) = row.at;
        if let Some(Ok(list)) = answers.get_mut(command)
            && let Some(slot) = list.get_mut(index)
        {
            *slot = answer;
        }
    }
    *rows = kept;
    // The earlier answers of jobs of this group that later enqueues moved: their final start.
    for row in rows.iter() {
        if row.job.debounce.is_some()
            && let Some(Ok(list)) = answers.get_mut(row.at.0)
            && let Some(slot) = list.get_mut(row.at.1)
        {
            slot.state = row.state;
            slot.run_at = row.run_at;
        }
    }
    update_stored(conn, &stored).await?;
    let mut announce: Vec<String> = stored
        .iter()
        .filter(|s| s.payload.is_some() && s.state == JobState::Available)
        .map(|s| s.queue.clone())
        .collect();
    announce.sort_unstable();
    announce.dedup();
    Ok(announce)
}

/// Writes the stored jobs that took a new payload and start, and counts their moves, in one statement each.
async fn update_stored(conn: &mut PgConnection, stored: &[Stored<'_>]) -> Result<()> {
    let changed: Vec<&Stored<'_>> = stored.iter().filter(|s| s.payload.is_some()).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changed.iter().map(|s| s.id).collect();
    let payloads: Vec<&str> = changed
        .iter()
        .filter_map(|s| s.payload.map(RawValue::get))
        .collect();
    let run_ats: Vec<Ts> = changed.iter().map(|s| Ts(s.run_at)).collect();
    let states: Vec<&str> = changed.iter().map(|s| s.state.as_str()).collect();
    sqlx::query(
        "UPDATE jobs SET payload = u.payload::json, run_at = u.run_at, state = u.state \
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[]) AS u (id, payload, run_at, state) \
         WHERE jobs.id = u.id",
    )
    .bind(&ids)
    .bind(&payloads)
    .bind(&run_ats)
    .bind(&states)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let mut counts = Counts::default();
    for s in &changed {
        counts.moved(&s.queue, s.read_state, s.state);
    }
    counts.flush(conn).await
}
