//! Cron schedules, free of I/O: expressions and time zones ([`expr`]), expressions in words ([`describe`]),
//! schedule definitions and their validation ([`schedule`]), and the overlap and catch-up policies
//! ([`policy`]).
//!
//! Cron arithmetic is croner's (pinned to one version, evaluated with jiff and the IANA database bundled
//! into the binary); nothing here computes calendar dates by hand. See the README's "Cron schedules"
//! section for the policies users rely on, including daylight-saving time.

pub mod describe;
pub mod expr;
pub mod policy;
pub mod schedule;

#[cfg(test)]
mod dst_tests;
#[cfg(test)]
mod policy_tests;

pub use describe::describe;
pub use expr::{Cadence, CronExpr, CronPart, ExprError, UnknownTimeZone, time_zone};
pub use policy::{
    ActiveRuns, CatchUp, CatchUpRule, DuePlan, MissedTicks, Overlap, OverlapDecision,
    next_fire_on_upsert, overlap_decision, plan_due,
};
pub use schedule::{
    FireTimes, JobTemplate, JobTemplateSpec, ListSchedulesQuery, Schedule, ScheduleInfo,
    ScheduleList, ScheduleRecord, ScheduleSource, ScheduleSpec, StoredSchedule, Tick, TickOutcome,
    Triggered,
};
