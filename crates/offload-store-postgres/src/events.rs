//! Events: storing them with their de-duplication, fanning each out in the transaction that stores it, and
//! reading them back.
//!
//! Invariant: exact with several servers. An event's sender id is unique among stored events and is inserted
//! with `ON CONFLICT DO NOTHING`, which waits for a concurrent transaction holding the same id and then finds
//! its row: exactly one stored event fans out, the others are duplicates. A run per (function, event) is the
//! only run the fan-out creates (a unique index backs it). A wait is resolved by whoever deletes its row;
//! cancels lock the runs' call jobs and then the runs. What each event does is
//! [`offload_store::fanout::fanout`]'s decision.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use offload_core::Timestamp;
use offload_core::function::definition::Function;
use offload_core::function::event::{DEFAULT_MAX_EVENT_BYTES, EventId, EventRequest, NewEvent};
use offload_core::function::flow::SingletonMode;
use offload_core::function::path::FieldPath;
use offload_core::function::protocol::Json;
use offload_core::function::record::{self, RecordLimits, WaitOutcome};
use offload_core::function::run::RunId;
use offload_store::calls::{self, CallSpec, INVOKED_EVENT};
use offload_store::fanout::{
    CancelFact, EventFacts, RateFact, SkipReason, WaitFact, cancel_keys, cancel_lookup, fanout,
};
use offload_store::{
    EventListParams, EventRecord, EventSendParams, EventSendReport, EventSent, Result, Skipped,
    StoreError, skipped_from_db, skipped_to_db,
};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgRow};

use crate::codec::{self, RawJson, Ts, get, ts};
use crate::error::db;
use crate::run_flow::{self, lock_runs};

/// Stores and fans out a request's events, all in one transaction.
pub(crate) async fn send(
    conn: &mut PgConnection,
    now: Timestamp,
    p: EventSendParams,
) -> Result<EventSendReport> {
    let mut tx = conn.begin().await.map_err(db)?;
    let events = p.events.into_iter().map(|e| (EventId::new(), e)).collect();
    let out = store_and_fan_out(&mut tx, now, &p.limits, events).await;
    let (sent, woken) = run_flow::settle(tx, out).await?;
    Ok(EventSendReport {
        events: sent,
        woken: dedup(woken),
    })
}

/// Stores the events of a `send_event` step (with the ids its record names) and fans them out, in the caller's
/// transaction; returns the queues to announce.
pub(crate) async fn store_sent(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    events: Vec<(EventId, EventRequest)>,
) -> Result<Vec<String>> {
    let mut valid = Vec::with_capacity(events.len());
    for (id, request) in events {
        // The end of the call validated them already (`jobs_finish`).
        match request.validate(now, DEFAULT_MAX_EVENT_BYTES) {
            Ok(event) => valid.push((id, event)),
            Err(e) => {
                tracing::warn!(error = %e.message, "an event of a send_event step is invalid; not sent")
            }
        }
    }
    let (_, woken) = store_and_fan_out(conn, now, limits, valid).await?;
    Ok(woken)
}

/// The event as the code sees it: `{"name", "data", "id", "ts"}`, `id` the sender's id or else the server's.
fn event_value(id: EventId, e: &NewEvent) -> Value {
    serde_json::json!({
        "name": e.name,
        "data": serde_json::from_str::<Value>(e.data.get()).unwrap_or(Value::Null),
        "id": e.id.clone().unwrap_or_else(|| id.to_string()),
        "ts": codec::stored_precision(e.ts).to_string(),
    })
}

/// A function's row read for fan-out.
struct Subscriber {
    function: Function,
    triggers: bool,
}

/// The heart of `event_send`: store, de-duplicate, fan out.
async fn store_and_fan_out(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    events: Vec<(EventId, NewEvent)>,
) -> Result<(Vec<EventSent>, Vec<String>)> {
    if events.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let stored = insert_events(conn, now, &events).await?;
    // The first stored holder of each sender id seen in this request (stored now or before).
    let user_ids: Vec<&str> = events.iter().filter_map(|(_, e)| e.id.as_deref()).collect();
    let holders: HashMap<String, uuid::Uuid> = if stored.len() == events.len() {
        HashMap::new()
    } else {
        let rows = sqlx::query("SELECT id, user_id FROM events WHERE user_id = ANY($1)")
            .bind(&user_ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| Ok((get::<String>(r, "user_id")?, get::<uuid::Uuid>(r, "id")?)))
            .collect::<Result<_>>()?
    };
    let fresh: Vec<usize> = (0..events.len())
        .filter(|i| stored.contains(&events[*i].0.0))
        .collect();
    let values: Vec<Value> = fresh
        .iter()
        .map(|&i| event_value(events[i].0, &events[i].1))
        .collect();
    let names: Vec<&str> = {
        let set: BTreeSet<&str> = fresh.iter().map(|&i| events[i].1.name.as_str()).collect();
        set.into_iter().collect()
    };

    // Facts, read before anything is written (an event never cancels a run it starts).
    let subscribers = subscribers(conn, &names).await?;
    let cancelling: Vec<&Function> = subscribers
        .iter()
        .filter(|s| !s.function.cancel_on.is_empty())
        .map(|s| &s.function)
        .collect();
    let keyed: Vec<(&str, &Value)> = fresh
        .iter()
        .zip(&values)
        .map(|(&i, v)| (events[i].1.name.as_str(), v))
        .collect();
    let waits = waits(conn, &names, &keyed).await?;
    let live = live_runs(conn, &cancelling, &keyed).await?;
    let mut buckets = rate_buckets(conn, &subscribers, &keyed).await?;

    // Decide each event in request order; a wait or a run is taken by the first event that matches it.
    let mut taken_waits = vec![false; waits.len()];
    let mut taken_runs = vec![false; live.len()];
    let mut starts: Vec<(usize, &Function)> = Vec::new();
    let mut skips: Vec<(usize, &Function, SkipReason)> = Vec::new();
    let mut resolves: Vec<(usize, usize)> = Vec::new();
    let mut cancels: Vec<(usize, usize)> = Vec::new();
    let functions: Vec<&Function> = subscribers
        .iter()
        .filter(|s| s.triggers)
        .map(|s| &s.function)
        .collect();
    for (k, &i) in fresh.iter().enumerate() {
        let name = events[i].1.name.as_str();
        let wait_idx: Vec<usize> = (0..waits.len())
            .filter(|&w| !taken_waits[w] && waits[w].event == name)
            .collect();
        let wait_facts: Vec<WaitFact<'_>> = wait_idx
            .iter()
            .map(|&w| WaitFact {
                path: waits[w].path.as_deref(),
                key: waits[w].key.as_deref(),
            })
            .collect();
        let run_idx: Vec<usize> = (0..live.len()).filter(|&r| !taken_runs[r]).collect();
        let cancel_facts: Vec<CancelFact<'_>> = run_idx
            .iter()
            .map(|&r| CancelFact {
                rules: &live[r].function.cancel_on,
                run_event: &live[r].event,
            })
            .collect();
        let rates: Vec<RateFact> = functions
            .iter()
            .map(|f| {
                f.flow
                    .rate_key(&values[k])
                    .and_then(|key| buckets.get(&(f.id.clone(), key)))
                    .map_or(RateFact::Unlimited, |tat| RateFact::Bucket(*tat))
            })
            .collect();
        let plan = fanout(&EventFacts {
            now,
            name,
            event: &values[k],
            functions: &functions,
            rates: &rates,
            waits: &wait_facts,
            cancel: &cancel_facts,
        });
        for &(f, tat) in &plan.rated {
            if let Some(key) = functions[f].flow.rate_key(&values[k]) {
                buckets.insert((functions[f].id.clone(), key), Some(tat));
            }
        }
        skips.extend(plan.skipped.iter().map(|&(f, r)| (k, functions[f], r)));
        starts.extend(plan.start.into_iter().map(|f| (k, functions[f])));
        for w in plan.resolve {
            taken_waits[wait_idx[w]] = true;
            resolves.push((k, wait_idx[w]));
        }
        for r in plan.cancel {
            taken_runs[run_idx[r]] = true;
            cancels.push((k, run_idx[r]));
        }
    }

    let mut announce = Vec::new();
    let mut outcome: Vec<EventSent> = fresh
        .iter()
        .map(|&i| EventSent {
            id: events[i].0,
            duplicate: false,
            runs: Vec::new(),
            started: Vec::new(),
            resolved_waits: 0,
            cancelled_runs: 0,
            skipped: Vec::new(),
        })
        .collect();
    write_buckets(conn, &buckets).await?;

    // Cancels first: they lock call jobs before runs, like every end of a call.
    let cancel_ids: Vec<RunId> = cancels.iter().map(|&(_, r)| live[r].id).collect();
    if !cancel_ids.is_empty() {
        let (done, queues) = run_flow::cancel_runs(conn, now, limits, &cancel_ids).await?;
        announce.extend(queues);
        // Only the runs this transaction cancelled (another server may have ended some meanwhile).
        for &(k, r) in &cancels {
            if done.contains(&live[r].id) {
                outcome[k].cancelled_runs += 1;
            }
        }
    }

    // Singletons in `cancel` mode: events of one key wait for each other, and each cancels the live run of its
    // key before starting its own.
    let mut replaced: Vec<RunId> = Vec::new();
    for &(k, function) in &starts {
        if let (Some(s), Some(key)) = (
            &function.flow.singleton,
            function.flow.singleton_key(&values[k]),
        ) && s.mode == SingletonMode::Cancel
        {
            replaced.extend(live_singleton(conn, &function.id, &key).await?);
        }
    }
    if !replaced.is_empty() {
        let (_, queues) = run_flow::cancel_runs(conn, now, limits, &replaced).await?;
        announce.extend(queues);
    }

    // New runs, one per (function, event), each with its first call.
    let mut new_runs = Vec::with_capacity(starts.len());
    for &(k, function) in &starts {
        let id = RunId::new();
        outcome[k].runs.push(id);
        outcome[k].started.push(function.id.clone());
        new_runs.push(NewRun {
            id,
            function,
            event_id: outcome[k].id,
            event: Json::from_text(values[k].to_string())
                .map_err(|e| StoreError::Internal(e.to_string()))?,
            parent: None,
        });
    }
    let (queues, refused) = insert_runs(conn, now, limits, &new_runs).await?;
    announce.extend(queues);
    // A run the singleton index refused: a live run of its key exists (or was started concurrently).
    for (r, &(k, function)) in new_runs.iter().zip(&starts) {
        if refused.contains(&r.id) {
            outcome[k].runs.retain(|id| *id != r.id);
            outcome[k].started.retain(|f| *f != function.id);
            skips.push((k, function, SkipReason::Singleton));
        }
    }
    for &(k, function, reason) in &skips {
        outcome[k].skipped.push(Skipped {
            function_id: function.id.clone(),
            reason,
        });
    }
    for o in &mut outcome {
        o.skipped.sort_by(|a, b| a.function_id.cmp(&b.function_id));
        if let Some(text) = skipped_to_db(&o.skipped) {
            sqlx::query("UPDATE events SET skipped = $2 WHERE id = $1")
                .bind(o.id.0)
                .bind(text)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
    }

    // Waits: lock their runs, then delete the rows; a deleted row is this transaction's to resolve.
    if !resolves.is_empty() {
        let runs: Vec<uuid::Uuid> = resolves.iter().map(|&(_, w)| waits[w].run_id).collect();
        lock_runs(conn, &runs).await?;
        for &(k, w) in &resolves {
            let wait = &waits[w];
            let claimed: Option<i32> = sqlx::query_scalar(
                "DELETE FROM run_waits WHERE run_id = $1 AND step_id = $2 AND kind = 'event' RETURNING 1",
            )
            .bind(wait.run_id)
            .bind(&wait.step_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
            if claimed.is_none() {
                continue;
            }
            let event = Json::from_text(values[k].to_string())
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            let step = record::resolve_wait(&wait.step_id, WaitOutcome::Event(event));
            announce.extend(run_flow::resolve(conn, now, limits, RunId(wait.run_id), step).await?);
            outcome[k].resolved_waits += 1;
        }
    }

    // Every event in request order: the stored ones with their outcome, duplicates with their first event's.
    let mut by_id: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (k, o) in outcome.iter().enumerate() {
        by_id.insert(o.id.0, k);
    }
    let mut earlier: Vec<uuid::Uuid> = Vec::new();
    for (id, e) in &events {
        if !stored.contains(&id.0)
            && let Some(holder) = e.id.as_ref().and_then(|u| holders.get(u))
            && !by_id.contains_key(holder)
        {
            earlier.push(*holder);
        }
    }
    let earlier_runs = runs_of(conn, &earlier).await?;
    let mut answer = Vec::with_capacity(events.len());
    for (id, e) in &events {
        if let Some(&k) = by_id.get(&id.0) {
            answer.push(outcome[k].clone());
            continue;
        }
        let holder =
            e.id.as_ref()
                .and_then(|u| holders.get(u))
                .copied()
                .ok_or_else(|| {
                    StoreError::Internal("a duplicate event without its first event".into())
                })?;
        let runs = match by_id.get(&holder) {
            Some(&k) => outcome[k].runs.clone(),
            None => earlier_runs.get(&holder).cloned().unwrap_or_default(),
        };
        answer.push(EventSent {
            id: EventId(holder),
            duplicate: true,
            runs,
            started: Vec::new(),
            resolved_waits: 0,
            cancelled_runs: 0,
            skipped: Vec::new(),
        });
    }
    Ok((answer, announce))
}

/// The rate limit buckets the events may use (those of the triggered functions with a rate limit, per key
/// value), created when new and locked in (function, key) order, so concurrent events on several servers use a
/// bucket one after the other; by (function, key), their TAT.
async fn rate_buckets(
    conn: &mut PgConnection,
    subscribers: &[Subscriber],
    events: &[(&str, &Value)],
) -> Result<HashMap<(String, String), Option<Timestamp>>> {
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for s in subscribers.iter().filter(|s| s.triggers) {
        for (name, event) in events {
            if let Some(key) = s.function.flow.rate_key(event)
                && s.function.is_triggered_by(name, event)
            {
                wanted.insert((s.function.id.clone(), key));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let (functions, keys): (Vec<String>, Vec<String>) = wanted.into_iter().unzip();
    sqlx::query(
        "INSERT INTO function_rates (function_id, key)
         SELECT f, k FROM unnest($1::text[], $2::text[]) AS u (f, k) ORDER BY f, k
         ON CONFLICT (function_id, key) DO NOTHING",
    )
    .bind(&functions)
    .bind(&keys)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let rows = sqlx::query(
        "SELECT r.function_id, r.key, r.tat FROM function_rates r
         JOIN unnest($1::text[], $2::text[]) AS u (f, k) ON r.function_id = u.f AND r.key = u.k
         ORDER BY r.function_id, r.key FOR UPDATE OF r",
    )
    .bind(&functions)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok((
                (get(r, "function_id")?, get(r, "key")?),
                codec::ts_opt(r, "tat")?,
            ))
        })
        .collect()
}

/// Stores the buckets' TATs (those the events used; the others are written back unchanged).
async fn write_buckets(
    conn: &mut PgConnection,
    buckets: &HashMap<(String, String), Option<Timestamp>>,
) -> Result<()> {
    let used: Vec<(&(String, String), Timestamp)> = buckets
        .iter()
        .filter_map(|(k, tat)| tat.map(|t| (k, t)))
        .collect();
    if used.is_empty() {
        return Ok(());
    }
    let functions: Vec<&str> = used.iter().map(|((f, _), _)| f.as_str()).collect();
    let keys: Vec<&str> = used.iter().map(|((_, k), _)| k.as_str()).collect();
    let tats: Vec<Ts> = used.iter().map(|(_, t)| Ts(*t)).collect();
    sqlx::query(
        "UPDATE function_rates r SET tat = u.t
         FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u (f, k, t)
         WHERE r.function_id = u.f AND r.key = u.k",
    )
    .bind(functions)
    .bind(keys)
    .bind(tats)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The live runs of a function's singleton key, after waiting for other transactions starting runs of that key.
async fn live_singleton(conn: &mut PgConnection, function: &str, key: &str) -> Result<Vec<RunId>> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("offload.singleton {function} {key}"))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM runs WHERE function_id = $1 AND singleton_key = $2
         AND state NOT IN ('succeeded', 'failed', 'cancelled')",
    )
    .bind(function)
    .bind(key)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(ids.into_iter().map(RunId).collect())
}

/// Inserts the events whose sender id is not stored yet (in sender-id order, so two transactions never wait for
/// each other's ids in a cycle; of two events of one request with the same id, the first is stored); returns
/// the ids of those stored.
async fn insert_events(
    conn: &mut PgConnection,
    now: Timestamp,
    events: &[(EventId, NewEvent)],
) -> Result<BTreeSet<uuid::Uuid>> {
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut tss = Vec::with_capacity(n);
    for (id, e) in events {
        ids.push(id.0);
        names.push(e.name.as_str());
        data.push(e.data.get());
        users.push(e.id.as_deref().map(|u| codec::text(u).into_owned()));
        tss.push(Ts(codec::stored_precision(e.ts)));
    }
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO events (id, name, data, user_id, ts, received_at)
         SELECT id, name, data::json, user_id, ts, $1
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) WITH ORDINALITY
             AS u (id, name, data, user_id, ts, n)
         ORDER BY user_id NULLS LAST, n
         ON CONFLICT (user_id) WHERE user_id IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(Ts(now))
    .bind(ids)
    .bind(names)
    .bind(data)
    .bind(users)
    .bind(tss)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(stored.into_iter().collect())
}

/// Functions (not removed) whose triggers or `cancel_on` rules name one of `names`.
async fn subscribers(conn: &mut PgConnection, names: &[&str]) -> Result<Vec<Subscriber>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT id, spec, trigger_events && $1 AS triggers FROM functions
         WHERE deleted_at IS NULL AND (trigger_events && $1 OR cancel_events && $1) ORDER BY id",
    )
    .bind(names)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = get(r, "id")?;
        let spec: RawJson = get(r, "spec")?;
        let spec: Value = serde_json::from_str(spec.0.get())
            .map_err(|e| StoreError::corrupt(format!("function {id}: {e}")))?;
        out.push(Subscriber {
            function: crate::functions::parse(&id, &spec)?,
            triggers: get(r, "triggers")?,
        });
    }
    Ok(out)
}

/// A run that has not ended, of a function with `cancel_on` rules.
struct LiveRun<'a> {
    id: RunId,
    function: &'a Function,
    event: Value,
}

/// The live runs the events (`(name, event as JSON)`) may cancel: those of `functions` whose cancel keys match
/// the events' lookups ([`cancel_lookup`]); the fan-out decision checks each against its rules.
async fn live_runs<'a>(
    conn: &mut PgConnection,
    functions: &[&'a Function],
    events: &[(&str, &Value)],
) -> Result<Vec<LiveRun<'a>>> {
    let mut lookups: BTreeSet<(&str, String, String)> = BTreeSet::new();
    for f in functions {
        for rule in &f.cancel_on {
            for (name, event) in events {
                if rule.event == *name
                    && let Some((path, key)) = cancel_lookup(rule.match_path.as_ref(), event)
                {
                    lookups.insert((name, path, codec::text(&key).into_owned()));
                }
            }
        }
    }
    if lookups.is_empty() {
        return Ok(Vec::new());
    }
    let (mut names, mut paths, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for (name, path, key) in lookups {
        names.push(name);
        paths.push(path);
        keys.push(key);
    }
    let ids: Vec<&str> = functions.iter().map(|f| f.id.as_str()).collect();
    let rows = sqlx::query(
        "SELECT r.id, r.function_id, r.event FROM runs r
         WHERE r.function_id = ANY($4) AND r.state IN ('queued', 'running', 'sleeping', 'waiting')
           AND r.id IN (SELECT c.run_id FROM unnest($1::text[], $2::text[], $3::text[]) AS l (event, path, key)
                        JOIN run_cancel_keys c ON c.event = l.event AND c.match_path = l.path AND c.match_key = l.key)
         ORDER BY r.id",
    )
    .bind(names)
    .bind(paths)
    .bind(keys)
    .bind(&ids)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    let by_id: BTreeMap<&str, &'a Function> =
        functions.iter().map(|f| (f.id.as_str(), *f)).collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let function_id: String = get(r, "function_id")?;
        let Some(function) = by_id.get(function_id.as_str()) else {
            continue;
        };
        let event: RawJson = get(r, "event")?;
        out.push(LiveRun {
            id: RunId(get(r, "id")?),
            function,
            event: serde_json::from_str(event.0.get()).unwrap_or(Value::Null),
        });
    }
    Ok(out)
}

/// Writes the cancel keys of live runs ([`cancel_keys`] of each run's function's rules and event).
pub(crate) async fn insert_cancel_keys(
    conn: &mut PgConnection,
    runs: &[(RunId, &Function, &Value)],
) -> Result<()> {
    let (mut ids, mut names, mut paths, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (run, function, event) in runs {
        for k in cancel_keys(&function.cancel_on, event) {
            ids.push(run.0);
            names.push(k.event);
            paths.push(k.path);
            keys.push(codec::text(&k.key).into_owned());
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO run_cancel_keys (run_id, event, match_path, match_key)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(ids)
    .bind(names)
    .bind(paths)
    .bind(keys)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// A stored wait for an event.
struct Wait {
    run_id: uuid::Uuid,
    step_id: String,
    event: String,
    path: Option<String>,
    key: Option<String>,
}

/// The waits the events (`(name, event as JSON)`) may resolve: those of their names waiting for any event,
/// and those whose key is an event's value at their path.
async fn waits(
    conn: &mut PgConnection,
    names: &[&str],
    events: &[(&str, &Value)],
) -> Result<Vec<Wait>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let paths = sqlx::query("SELECT event, match_path FROM run_wait_paths WHERE event = ANY($1)")
        .bind(names)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut keyed: BTreeSet<(&str, String, String)> = BTreeSet::new();
    for row in &paths {
        let event: &str = get(row, "event")?;
        let text: &str = get(row, "match_path")?;
        let Ok(path) = FieldPath::parse(text) else {
            continue;
        };
        for (name, value) in events {
            if *name == event
                && let Some(key) = path.match_key(value)
            {
                keyed.insert((name, text.to_owned(), codec::text(&key).into_owned()));
            }
        }
    }
    let (mut k_names, mut k_paths, mut k_keys) = (Vec::new(), Vec::new(), Vec::new());
    for (name, path, key) in keyed {
        k_names.push(name);
        k_paths.push(path);
        k_keys.push(key);
    }
    let rows = sqlx::query(
        "SELECT run_id, step_id, event, match_path, match_key FROM run_waits
         WHERE kind = 'event' AND event = ANY($1) AND match_path IS NULL AND match_key IS NULL
         UNION
         SELECT w.run_id, w.step_id, w.event, w.match_path, w.match_key
         FROM unnest($2::text[], $3::text[], $4::text[]) AS k (event, match_path, match_key)
         JOIN run_waits w ON w.kind = 'event' AND w.event = k.event AND w.match_path = k.match_path
             AND w.match_key = k.match_key
         ORDER BY run_id, step_id",
    )
    .bind(names)
    .bind(k_names)
    .bind(k_paths)
    .bind(k_keys)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(Wait {
                run_id: get(r, "run_id")?,
                step_id: get(r, "step_id")?,
                event: get(r, "event")?,
                path: get(r, "match_path")?,
                key: get(r, "match_key")?,
            })
        })
        .collect()
}

/// A run to create.
pub(crate) struct NewRun<'a> {
    pub(crate) id: RunId,
    pub(crate) function: &'a Function,
    pub(crate) event_id: EventId,
    pub(crate) event: Json,
    pub(crate) parent: Option<(RunId, &'a str)>,
}

/// Creates runs, each with its first call (attempt 1, no steps); returns the queues to announce and the runs the
/// singleton index refused (a live run of their function and key exists), which get nothing.
pub(crate) async fn insert_runs(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    runs: &[NewRun<'_>],
) -> Result<(Vec<String>, BTreeSet<RunId>)> {
    if runs.is_empty() {
        return Ok((Vec::new(), BTreeSet::new()));
    }
    let n = runs.len();
    let mut ids = Vec::with_capacity(n);
    let mut functions = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut event_texts = Vec::with_capacity(n);
    let mut parents = Vec::with_capacity(n);
    let mut parent_steps = Vec::with_capacity(n);
    let mut singleton_keys = Vec::with_capacity(n);
    let no_steps = BTreeMap::new();
    let mut jobs = Vec::with_capacity(n);
    for r in runs {
        // Only runs an event starts are singletons; invoked runs are not.
        singleton_keys.push(match r.parent {
            None => serde_json::from_str::<Value>(r.event.get())
                .ok()
                .and_then(|e| r.function.flow.singleton_key(&e)),
            Some(_) => None,
        });
        ids.push(r.id.0);
        functions.push(r.function.id.as_str());
        event_ids.push(r.event_id.0);
        event_texts.push(r.event.get());
        parents.push(r.parent.map(|(p, _)| p.0));
        parent_steps.push(r.parent.map(|(_, s)| codec::text(s).into_owned()));
        jobs.push(calls::call_job(&CallSpec {
            function: r.function,
            run_id: r.id,
            event: &r.event,
            steps: &no_steps,
            attempt: 1,
            run_step: None,
            at: now,
            max_state_bytes: limits.max_state_bytes,
        })?);
    }
    let inserted: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO runs (id, function_id, state, event_id, event, parent_run_id, parent_step, created_at, updated_at,
             singleton_key)
         SELECT id, function_id, 'queued', event_id, event::json, parent, parent_step, $1, $1, singleton_key
         FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::uuid[], $7::text[], $8::text[])
             AS u (id, function_id, event_id, event, parent, parent_step, singleton_key)
         ON CONFLICT (function_id, singleton_key)
             WHERE singleton_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled') DO NOTHING
         RETURNING id",
    )
    .bind(Ts(now))
    .bind(ids)
    .bind(functions)
    .bind(event_ids)
    .bind(event_texts)
    .bind(parents)
    .bind(parent_steps)
    .bind(singleton_keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let inserted: BTreeSet<uuid::Uuid> = inserted.into_iter().collect();
    let refused: BTreeSet<RunId> = runs
        .iter()
        .filter(|r| !inserted.contains(&r.id.0))
        .map(|r| r.id)
        .collect();
    let jobs: Vec<_> = jobs
        .into_iter()
        .zip(runs)
        .filter(|(_, r)| !refused.contains(&r.id))
        .map(|(j, _)| j)
        .collect();
    let values: Vec<Value> = runs
        .iter()
        .map(|r| serde_json::from_str(r.event.get()).unwrap_or(Value::Null))
        .collect();
    let keyed: Vec<(RunId, &Function, &Value)> = runs
        .iter()
        .zip(&values)
        .filter(|(r, _)| !r.function.cancel_on.is_empty() && !refused.contains(&r.id))
        .map(|(r, v)| (r.id, r.function, v))
        .collect();
    insert_cancel_keys(conn, &keyed).await?;
    let out = crate::jobs_insert::insert_calls(conn, now, jobs).await?;
    for answer in out.answers {
        answer?;
    }
    Ok((out.announce, refused))
}

/// Starts the child run of an `invoke` step: its event (`offload/function.invoked` with the step's data) is
/// stored, and the run gets its first call. Returns the queues to announce.
pub(crate) async fn start_invoked(
    conn: &mut PgConnection,
    now: Timestamp,
    limits: &RecordLimits,
    function: &Function,
    child: RunId,
    data: Json,
    parent: (RunId, &str),
) -> Result<Vec<String>> {
    let event_id = EventId::new();
    let event = NewEvent {
        name: INVOKED_EVENT.to_owned(),
        data,
        id: None,
        ts: now,
    };
    insert_events(conn, now, &[(event_id, event.clone())]).await?;
    let value = event_value(event_id, &event);
    let run = NewRun {
        id: child,
        function,
        event_id,
        event: Json::from_text(value.to_string())
            .map_err(|e| StoreError::Internal(e.to_string()))?,
        parent: Some(parent),
    };
    Ok(insert_runs(conn, now, limits, std::slice::from_ref(&run))
        .await?
        .0)
}

/// The runs each of `events` started, by event.
async fn runs_of(
    conn: &mut PgConnection,
    events: &[uuid::Uuid],
) -> Result<HashMap<uuid::Uuid, Vec<RunId>>> {
    let mut out: HashMap<uuid::Uuid, Vec<RunId>> = HashMap::new();
    if events.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query("SELECT event_id, id FROM runs WHERE event_id = ANY($1) ORDER BY id")
        .bind(events)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    for r in &rows {
        out.entry(get(r, "event_id")?)
            .or_default()
            .push(RunId(get(r, "id")?));
    }
    Ok(out)
}

/// The columns [`event`] reads.
const EVENT_COLUMNS: &str = "id, name, data, user_id, ts, received_at, skipped";

fn event(row: &PgRow, runs: Vec<RunId>) -> Result<EventRecord> {
    Ok(EventRecord {
        id: EventId(get(row, "id")?),
        name: get(row, "name")?,
        data: Json(get::<RawJson>(row, "data")?.0),
        user_id: get(row, "user_id")?,
        ts: ts(row, "ts")?,
        received_at: ts(row, "received_at")?,
        runs,
        skipped: skipped_from_db(get::<Option<&str>>(row, "skipped")?)?,
    })
}

/// One stored event with the runs it started.
pub(crate) async fn get_event(conn: &mut PgConnection, id: EventId) -> Result<Option<EventRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"
    )))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let mut runs = runs_of(conn, &[id.0]).await?;
    Ok(Some(event(&row, runs.remove(&id.0).unwrap_or_default())?))
}

/// A page of events, newest first, with the runs each started.
pub(crate) async fn list_events(
    conn: &mut PgConnection,
    p: EventListParams,
) -> Result<Vec<EventRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE ($1::text IS NULL OR name = $1)
         AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    )))
    .bind(p.name)
    .bind(p.before.map(|e| e.0))
    .bind(i64::from(p.limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let ids: Vec<uuid::Uuid> = rows
        .iter()
        .map(|r| get::<uuid::Uuid>(r, "id"))
        .collect::<Result<_>>()?;
    let mut runs = runs_of(conn, &ids).await?;
    rows.iter()
        .map(|r| {
            let id: uuid::Uuid = get(r, "id")?;
            event(r, runs.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// Each queue once.
pub(crate) fn dedup(mut queues: Vec<String>) -> Vec<String> {
    queues.sort_unstable();
    queues.dedup();
    queues
}
