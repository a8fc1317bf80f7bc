//! What every store decides the same way about schedule rows: how stored columns become a
//! [`ScheduleRecord`] and its [`Tick`]s, and what a create-or-replace writes.
//!
//! Invariant: pure. A replaced schedule's next fire time follows [`next_fire_on_upsert`] with the stored
//! schedule and its last recorded tick; `paused: None` keeps a replaced schedule's pause state and leaves a
//! new one active. A stored value that does not fit the domain is [`StoreError::corrupt`], never a panic.

use offload_core::cron::policy::Replaced;
use offload_core::cron::{
    JobTemplate, Schedule, ScheduleRecord, StoredSchedule, Tick, TickOutcome, next_fire_on_upsert,
};
use offload_core::{JobId, Timestamp};

use crate::codec::{duration, stored_precision};
use crate::{Result, StoreError};

/// The error for a schedule that does not exist.
pub fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("schedule {name}"))
}

/// A schedule's columns as a store read them (times and booleans already in their domain types).
#[derive(Debug, Clone)]
pub struct ScheduleColumns<'r> {
    /// `name`.
    pub name: String,
    /// `cron`: the expression text.
    pub cron: String,
    /// `timezone`.
    pub timezone: String,
    /// `job`: the template's JSON text.
    pub job: &'r str,
    /// `overlap`: the policy's name.
    pub overlap: &'r str,
    /// `catch_up`: the policy's name.
    pub catch_up: &'r str,
    /// `catch_up_window_ms`.
    pub catch_up_window_ms: i64,
    /// `jitter_ms`.
    pub jitter_ms: i64,
    /// `paused`.
    pub paused: bool,
    /// `source`: where it was defined.
    pub source: &'r str,
    /// `next_fire_at`.
    pub next_fire_at: Option<Timestamp>,
    /// `revision`.
    pub revision: i64,
    /// `created_at`.
    pub created_at: Timestamp,
    /// `updated_at`.
    pub updated_at: Timestamp,
}

impl ScheduleColumns<'_> {
    /// The schedule these columns hold (without its ticks).
    pub fn record(self) -> Result<ScheduleRecord> {
        let job: JobTemplate = serde_json::from_str(self.job)
            .map_err(|e| StoreError::corrupt(format!("schedule job template: {e}")))?;
        let stored = StoredSchedule {
            name: self.name,
            cron: self.cron,
            timezone: self.timezone,
            job,
            overlap: self.overlap.parse().map_err(StoreError::corrupt)?,
            catch_up: self.catch_up.parse().map_err(StoreError::corrupt)?,
            catch_up_window: duration(self.catch_up_window_ms)?,
            jitter: duration(self.jitter_ms)?,
            paused: self.paused,
        };
        Ok(ScheduleRecord {
            schedule: stored.into_schedule().map_err(StoreError::corrupt)?,
            paused: self.paused,
            source: self.source.parse().map_err(StoreError::corrupt)?,
            next_fire_at: self.next_fire_at,
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
            recent_ticks: None,
        })
    }
}

/// A tick's columns as a store read them.
#[derive(Debug, Clone)]
pub struct TickColumns<'r> {
    /// `fire_at`.
    pub fire_at: Timestamp,
    /// `outcome`: the outcome's name.
    pub outcome: &'r str,
    /// `job_id`.
    pub job_id: Option<JobId>,
    /// `count`.
    pub count: i64,
    /// `last_fire_at`.
    pub last_fire_at: Option<Timestamp>,
    /// `manual`.
    pub manual: bool,
    /// `recorded_at`.
    pub recorded_at: Timestamp,
}

impl TickColumns<'_> {
    /// The tick these columns hold.
    pub fn tick(self) -> Result<Tick> {
        Ok(Tick {
            fire_at: self.fire_at,
            outcome: self
                .outcome
                .parse::<TickOutcome>()
                .map_err(StoreError::corrupt)?,
            job_id: self.job_id,
            count: u64::try_from(self.count)
                .map_err(|_| StoreError::corrupt(format!("tick count {}", self.count)))?,
            last_fire_at: self.last_fire_at,
            manual: self.manual,
            recorded_at: self.recorded_at,
        })
    }
}

/// The stored schedule a create-or-replace replaces, as the store read it in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct Existing<'a> {
    /// The stored schedule.
    pub record: &'a ScheduleRecord,
    /// The latest fire time it recorded a tick for (manual runs aside).
    pub last_tick_at: Option<Timestamp>,
}

/// What a create-or-replace writes besides the definition itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upsert {
    /// The schedule is new (`INSERT`), not replaced (`UPDATE`, bumping its revision).
    pub created: bool,
    /// Its pause state afterwards.
    pub paused: bool,
    /// Its next fire time, at stored precision.
    pub next_fire_at: Option<Timestamp>,
}

/// Decides a create-or-replace of `schedule` at `now`, given the stored one (if any).
pub fn upsert(schedule: &Schedule, existing: Option<Existing<'_>>, now: Timestamp) -> Upsert {
    let previous = existing.map(|e| Replaced {
        cadence: &e.record.schedule.cadence,
        next_fire_at: e.record.next_fire_at,
        last_tick_at: e.last_tick_at,
    });
    Upsert {
        created: existing.is_none(),
        paused: schedule
            .paused
            .unwrap_or_else(|| existing.is_some_and(|e| e.record.paused)),
        next_fire_at: next_fire_on_upsert(&schedule.cadence, previous, now).map(stored_precision),
    }
}

#[cfg(test)]
mod tests {
    use offload_core::cron::{ScheduleSource, ScheduleSpec};
    use offload_core::spec::Limits;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedule(cron: &str, extra: &str) -> Schedule {
        let json =
            format!(r#"{{"cron":"{cron}","job":{{"queue":"q","payload":{{"n":1}}}}{extra}}}"#);
        serde_json::from_str::<ScheduleSpec>(&json)
            .unwrap()
            .validate(Some("s"), &Limits::default(), at("2026-01-01T00:00:00Z"))
            .unwrap()
    }

    /// A stored job template, as a store writes it.
    fn template() -> String {
        serde_json::to_string(&schedule("0 * * * *", "").job).unwrap()
    }

    fn columns<'r>(job: &'r str, source: &'r str) -> ScheduleColumns<'r> {
        ScheduleColumns {
            name: "s".to_owned(),
            cron: "0 * * * *".to_owned(),
            timezone: "UTC".to_owned(),
            job,
            overlap: "allow",
            catch_up: "none",
            catch_up_window_ms: 60_000,
            jitter_ms: 0,
            paused: true,
            source,
            next_fire_at: Some(at("2026-01-01T01:00:00Z")),
            revision: 3,
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:30:00Z"),
        }
    }

    #[test]
    fn columns_make_a_record_and_bad_values_are_corrupt() {
        let job = &template();
        let record = columns(job, "api").record().unwrap();
        assert_eq!(record.schedule.name, "s");
        assert!(record.paused);
        assert_eq!(record.source, ScheduleSource::Api);
        assert_eq!(record.revision, 3);
        assert_eq!(record.recent_ticks, None);
        assert!(matches!(
            columns("{", "api").record(),
            Err(StoreError::Internal(_))
        ));
        assert!(matches!(
            columns(job, "elsewhere").record(),
            Err(StoreError::Internal(_))
        ));
        let negative = ScheduleColumns {
            jitter_ms: -1,
            ..columns(job, "api")
        };
        assert!(matches!(negative.record(), Err(StoreError::Internal(_))));
    }

    #[test]
    fn tick_columns_reject_unknown_outcomes_and_negative_counts() {
        let tick = |outcome, count| TickColumns {
            fire_at: at("2026-01-01T01:00:00Z"),
            outcome,
            job_id: None,
            count,
            last_fire_at: None,
            manual: false,
            recorded_at: at("2026-01-01T01:00:01Z"),
        };
        let ok = tick("fired", 1).tick().unwrap();
        assert_eq!((ok.outcome, ok.count), (TickOutcome::Fired, 1));
        assert!(tick("nope", 1).tick().is_err());
        assert!(tick("fired", -1).tick().is_err());
    }

    #[test]
    fn a_new_schedule_is_created_active_unless_asked_paused() {
        let now = at("2026-01-01T00:10:00Z");
        let plan = upsert(&schedule("0 * * * *", ""), None, now);
        assert_eq!(
            plan,
            Upsert {
                created: true,
                paused: false,
                next_fire_at: Some(at("2026-01-01T01:00:00Z")),
            }
        );
        let paused = upsert(&schedule("0 * * * *", r#","paused":true"#), None, now);
        assert!(paused.paused);
    }

    #[test]
    fn a_replace_keeps_pause_state_and_an_unchanged_cadence_keeps_its_next_fire() {
        let job = &template();
        let mut old = columns(job, "api").record().unwrap();
        // A next fire time the cadence alone would not give: kept because the cadence is unchanged.
        old.next_fire_at = Some(at("2026-01-01T03:00:00Z"));
        let existing = Existing {
            record: &old,
            last_tick_at: None,
        };
        let now = at("2026-01-01T00:10:00Z");
        let plan = upsert(&schedule("0 * * * *", ""), Some(existing), now);
        assert_eq!(
            plan,
            Upsert {
                created: false,
                paused: true,
                next_fire_at: Some(at("2026-01-01T03:00:00Z")),
            }
        );
        let resumed = upsert(
            &schedule("0 * * * *", r#","paused":false"#),
            Some(existing),
            now,
        );
        assert!(!resumed.paused);
        // A new cadence fires strictly after the last recorded tick.
        let moved = upsert(
            &schedule("*/30 * * * *", ""),
            Some(Existing {
                record: &old,
                last_tick_at: Some(at("2026-01-01T00:30:00Z")),
            }),
            now,
        );
        assert_eq!(moved.next_fire_at, Some(at("2026-01-01T01:00:00Z")));
    }
}
