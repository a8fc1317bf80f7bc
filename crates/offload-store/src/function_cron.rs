//! Cron triggers of durable functions: when a function's cron tick starts a run, decided once for every store.
//!
//! A function with a `{"cron": ..., "timezone": ...}` trigger has one stored next fire time. A store keeps it
//! with [`next_fire_on_register`] when the function is registered or replaced, and a firing transaction takes
//! the due ones, asks [`decide`] what each does, and writes the answer: the tick's event
//! ([`CRON_EVENT`], data from [`tick_data`]), a run of exactly that function, and the new next fire time.
//!
//! Invariants:
//! - A tick fires at most once: the run is started for a fire time at or after the stored next fire time and
//!   at or before now, and the next fire time written is strictly after now.
//! - Catch-up: however many fire times passed since the stored next fire time (downtime, a stalled leader),
//!   one run is started, for the most recent of them; the older ones are missed (counted, never run). A cron
//!   function therefore never receives a burst of runs after an outage.
//! - Fire times are the cadence's, so daylight-saving changes behave as they do for schedules (see
//!   `docs/cron.md`): a time inside a gap fires at the first instant after it (single-time expressions) or is
//!   skipped, a time inside a fold fires once (single-time expressions) or in both passes.
//! - Pure: nothing here reads a clock or a database.

use jiff::{SignedDuration, Timestamp};
use offload_core::cron::Cadence;
use offload_core::function::event::{EventId, NewEvent};
use offload_core::function::protocol::Json;
use offload_core::function::run::RunId;
use serde_json::json;

use crate::firing::stored_precision;

/// `function_cron_fire`: starts the runs of the due cron ticks of registered functions.
#[derive(Debug, Clone, Copy)]
pub struct FunctionCronFireParams {
    /// Most functions fired in one call (earliest next fire time first).
    pub limit: u32,
}

/// One tick that started a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFired {
    /// The function.
    pub function_id: String,
    /// The fire time the run is for.
    pub scheduled_at: Timestamp,
    /// Older fire times that passed unfired (catch-up fires only the most recent one).
    pub missed: u64,
    /// The tick's stored event ([`CRON_EVENT`]).
    pub event_id: EventId,
    /// The run it started.
    pub run_id: RunId,
}

/// What `function_cron_fire` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionCronReport {
    /// The ticks that started runs, earliest next fire time first.
    pub fired: Vec<CronFired>,
    /// Queues in which call jobs became available (the engine wakes their claimers).
    pub queues: Vec<String>,
    /// The earliest persisted next fire time afterwards (the engine sleeps until then).
    pub next_fire_at: Option<Timestamp>,
}

/// The name of the server's own event that starts a cron-triggered run.
pub const CRON_EVENT: &str = "offload/cron.tick";

/// Most missed fire times counted for one firing (the count saturates here, so a long outage costs bounded
/// work).
pub const MAX_COUNTED_MISSED: u64 = 10_000;

/// A function's cron as a store keeps it beside the next fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCron<'a> {
    /// The expression as registered.
    pub cron: &'a str,
    /// The canonical time zone name.
    pub timezone: &'a str,
    /// The persisted next fire time (`None`: it never fires again).
    pub next_fire_at: Option<Timestamp>,
    /// The fire time of the last tick that started a run.
    pub last_fired_at: Option<Timestamp>,
}

/// The next fire time to persist when a function with `cadence` is registered or replaced at `now`.
///
/// An unchanged cadence (same expression, same time zone) keeps its persisted next fire time, so replacing
/// other parts of a function neither loses nor repeats a tick. A new or changed cadence fires first strictly
/// after both `now` and the last tick that fired, so a clock that went backwards never repeats a tick.
pub fn next_fire_on_register(
    cadence: &Cadence,
    previous: Option<StoredCron<'_>>,
    now: Timestamp,
) -> Option<Timestamp> {
    let next = match previous {
        Some(p) if p.cron == cadence.expr().as_str() && p.timezone == cadence.time_zone() => {
            return p.next_fire_at;
        }
        Some(p) => cadence.next_after(p.last_fired_at.map_or(now, |last| last.max(now))),
        None => cadence.next_after(now),
    };
    next.map(stored_precision)
}

/// One tick that starts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronTick {
    /// The fire time the run is for (whole seconds).
    pub scheduled_at: Timestamp,
    /// Earlier fire times since the stored next fire time that start no run (saturating at
    /// [`MAX_COUNTED_MISSED`]).
    pub missed: u64,
}

/// What a firing does with one function's cron.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronDecision {
    /// The tick that starts a run, if one is due.
    pub fire: Option<CronTick>,
    /// The next fire time to persist.
    pub next_fire_at: Option<Timestamp>,
}

/// Decides, at `now`, what the cron with the persisted `next_fire_at` does (see the module's invariants).
pub fn decide(cadence: &Cadence, next_fire_at: Timestamp, now: Timestamp) -> CronDecision {
    if next_fire_at > now {
        return CronDecision {
            fire: None,
            next_fire_at: Some(next_fire_at),
        };
    }
    // The most recent fire time at or before now, never before the persisted one.
    let just_after_now = now
        .checked_add(SignedDuration::from_nanos(1))
        .unwrap_or(now);
    let scheduled_at = cadence
        .prev_before(just_after_now)
        .map_or(next_fire_at, |t| t.max(next_fire_at));
    let missed = cadence
        .iter_from_fire_time(next_fire_at)
        .take_while(|t| *t < scheduled_at)
        .take(usize::try_from(MAX_COUNTED_MISSED).unwrap_or(usize::MAX))
        .count() as u64;
    CronDecision {
        fire: Some(CronTick {
            scheduled_at: stored_precision(scheduled_at),
            missed,
        }),
        next_fire_at: cadence.next_after(now).map(stored_precision),
    }
}

/// The data of a tick's event: `{"function_id", "cron", "timezone", "scheduled_at"}`.
pub fn tick_data(
    function_id: &str,
    cadence: &Cadence,
    scheduled_at: Timestamp,
) -> serde_json::Value {
    json!({
        "function_id": function_id,
        "cron": cadence.expr().as_str(),
        "timezone": cadence.time_zone(),
        "scheduled_at": scheduled_at.to_string(),
    })
}

/// The event of a tick: [`CRON_EVENT`] with [`tick_data`], its `ts` the fire time.
pub fn tick_event(function_id: &str, cadence: &Cadence, scheduled_at: Timestamp) -> NewEvent {
    NewEvent {
        name: CRON_EVENT.to_owned(),
        data: Json(
            serde_json::value::to_raw_value(&tick_data(function_id, cadence, scheduled_at))
                .unwrap_or_else(|_| Json::null().0),
        ),
        id: None,
        ts: scheduled_at,
    }
}

#[cfg(test)]
mod tests {
    use offload_core::cron::CronExpr;

    use super::*;

    fn cadence(expr: &str, tz: &str) -> Cadence {
        Cadence::new(CronExpr::parse(expr).unwrap(), tz).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn nothing_fires_before_the_next_fire_time() {
        let c = cadence("*/5 * * * *", "UTC");
        let d = decide(
            &c,
            at("2026-01-01T00:05:00Z"),
            at("2026-01-01T00:04:59.999Z"),
        );
        assert_eq!(d.fire, None);
        assert_eq!(d.next_fire_at, Some(at("2026-01-01T00:05:00Z")));
    }

    #[test]
    fn a_due_tick_fires_once_and_moves_past_now() {
        let c = cadence("*/5 * * * *", "UTC");
        let d = decide(&c, at("2026-01-01T00:05:00Z"), at("2026-01-01T00:05:00Z"));
        let tick = d.fire.unwrap();
        assert_eq!(tick.scheduled_at, at("2026-01-01T00:05:00Z"));
        assert_eq!(tick.missed, 0);
        assert_eq!(d.next_fire_at, Some(at("2026-01-01T00:10:00Z")));
        // Fired again from the new next fire time at the same instant: nothing.
        let again = decide(&c, d.next_fire_at.unwrap(), at("2026-01-01T00:05:00Z"));
        assert_eq!(again.fire, None);
    }

    #[test]
    fn after_downtime_one_run_for_the_most_recent_tick() {
        let c = cadence("*/5 * * * *", "UTC");
        let d = decide(&c, at("2026-01-01T00:05:00Z"), at("2026-01-01T01:02:03Z"));
        let tick = d.fire.unwrap();
        assert_eq!(tick.scheduled_at, at("2026-01-01T01:00:00Z"));
        // 00:05 .. 00:55: eleven ticks missed.
        assert_eq!(tick.missed, 11);
        assert_eq!(d.next_fire_at, Some(at("2026-01-01T01:05:00Z")));
    }

    #[test]
    fn a_late_single_tick_still_fires() {
        let c = cadence("0 * * * *", "UTC");
        let d = decide(&c, at("2026-01-01T01:00:00Z"), at("2026-01-01T01:59:59Z"));
        assert_eq!(d.fire.unwrap().scheduled_at, at("2026-01-01T01:00:00Z"));
        assert_eq!(d.fire.unwrap().missed, 0);
        assert_eq!(d.next_fire_at, Some(at("2026-01-01T02:00:00Z")));
    }

    #[test]
    fn a_second_resolution_cron_fires_the_current_second() {
        let c = cadence("* * * * * *", "UTC");
        let d = decide(&c, at("2026-01-01T00:00:01Z"), at("2026-01-01T00:00:01.5Z"));
        assert_eq!(d.fire.unwrap().scheduled_at, at("2026-01-01T00:00:01Z"));
        assert_eq!(d.next_fire_at, Some(at("2026-01-01T00:00:02Z")));
    }

    #[test]
    fn dst_gap_fires_after_the_gap_once() {
        // 02:30 does not exist in New York on 8 March 2026: the tick is at 03:00 EDT (07:00Z).
        let c = cadence("30 2 * * *", "America/New_York");
        let next = next_fire_on_register(&c, None, at("2026-03-07T12:00:00Z")).unwrap();
        assert_eq!(next, at("2026-03-08T07:00:00Z"));
        let d = decide(&c, next, at("2026-03-08T07:00:00Z"));
        assert_eq!(d.fire.unwrap().scheduled_at, at("2026-03-08T07:00:00Z"));
        assert_eq!(d.next_fire_at, Some(at("2026-03-09T06:30:00Z")));
    }

    #[test]
    fn dst_fold_fires_a_single_time_expression_once() {
        // 01:30 happens twice in New York on 1 November 2026: only the first (EDT, 05:30Z) fires.
        let c = cadence("30 1 * * *", "America/New_York");
        let d = decide(&c, at("2026-11-01T05:30:00Z"), at("2026-11-01T05:30:00Z"));
        assert_eq!(d.fire.unwrap().scheduled_at, at("2026-11-01T05:30:00Z"));
        assert_eq!(d.next_fire_at, Some(at("2026-11-02T06:30:00Z")));
    }

    #[test]
    fn registering_keeps_an_unchanged_cadence_and_recomputes_a_changed_one() {
        let c = cadence("0 * * * *", "UTC");
        let now = at("2026-01-01T00:30:00Z");
        assert_eq!(
            next_fire_on_register(&c, None, now),
            Some(at("2026-01-01T01:00:00Z"))
        );
        let kept = StoredCron {
            cron: "0 * * * *",
            timezone: "UTC",
            next_fire_at: Some(at("2026-01-01T00:00:00Z")),
            last_fired_at: None,
        };
        // Unchanged: the persisted (even overdue) next fire time stays, so the tick is not lost.
        assert_eq!(
            next_fire_on_register(&c, Some(kept), now),
            Some(at("2026-01-01T00:00:00Z"))
        );
        let other_zone = StoredCron {
            timezone: "Europe/Berlin",
            ..kept
        };
        assert_eq!(
            next_fire_on_register(&c, Some(other_zone), now),
            Some(at("2026-01-01T01:00:00Z"))
        );
        // A clock behind the last fired tick: the changed cadence starts after that tick.
        let fired_later = StoredCron {
            cron: "*/30 * * * *",
            last_fired_at: Some(at("2026-01-01T02:00:00Z")),
            ..kept
        };
        assert_eq!(
            next_fire_on_register(&c, Some(fired_later), now),
            Some(at("2026-01-01T03:00:00Z"))
        );
    }

    #[test]
    fn tick_data_names_the_function_and_its_cron() {
        let c = cadence("0 9 * * MON", "Europe/Berlin");
        let data = tick_data("report", &c, at("2026-01-05T08:00:00Z"));
        assert_eq!(
            data,
            json!({"function_id": "report", "cron": "0 9 * * MON", "timezone": "Europe/Berlin",
                "scheduled_at": "2026-01-05T08:00:00Z"})
        );
    }
}
