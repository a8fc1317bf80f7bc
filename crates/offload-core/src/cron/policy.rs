//! What happens to each tick: the overlap policy (may this tick's run start while earlier runs are
//! unfinished?), the catch-up policy (which late ticks still run?), and where the next fire time goes when a
//! schedule is replaced. Pure functions; the engine and the stores apply what they decide.
//!
//! Invariant: every tick between a schedule's persisted next fire time and "now" gets exactly one fate: it
//! runs, or it is recorded as missed (a contiguous run of missed ticks is one record with a count), or, at
//! firing time, it is recorded as skipped by the overlap policy. Nothing is dropped without a record.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cron::expr::Cadence;
use crate::state::add;

/// May a tick's run start while earlier runs of the same schedule are unfinished?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Overlap {
    /// Every tick runs, however many earlier runs are still waiting or running.
    Allow,
    /// A tick whose schedule still has a run waiting or running is recorded as skipped (the default: a slow
    /// run never piles up copies of itself).
    #[default]
    Skip,
    /// At most one run waits: a tick is skipped only when a run is already waiting to start; one may run
    /// while another waits.
    BufferOne,
}

/// Which ticks that were due while the server was down (or the schedule paused) still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CatchUp {
    /// None: every late tick is recorded as missed.
    None,
    /// One run, for the most recent late tick; the others are recorded as missed (the default).
    #[default]
    Latest,
    /// Every late tick inside the catch-up window runs, oldest first; older ones are recorded as missed.
    All,
}

macro_rules! names {
    ($ty:ident, $what:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// The name used in the API, the configuration and storage.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(concat!("unknown ", $what, " `{}`; expected one of ", $($name, " "),+), s)),
                }
            }
        }
    };
}

names!(Overlap, "overlap policy", Allow => "allow", Skip => "skip", BufferOne => "buffer_one");
names!(CatchUp, "catch-up policy", None => "none", Latest => "latest", All => "all");

/// The default catch-up window of `catch_up = "all"`.
pub const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most late ticks one catch-up runs; older ones are recorded as missed, so a long outage of a
/// every-second schedule cannot flood a queue.
pub const MAX_CATCH_UP_RUNS: usize = 1000;
/// How far the late ticks are enumerated to count them; beyond this the count of a missed record saturates.
pub const MAX_COUNTED_TICKS: u64 = 10_000_000;

/// A schedule's unfinished runs when a tick fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveRuns {
    /// Runs not started yet: scheduled (jittered), available or retrying.
    pub waiting: u64,
    /// Runs a worker holds.
    pub running: u64,
}

/// The overlap policy's verdict on one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Create the tick's job.
    Run,
    /// Record the tick as skipped.
    Skip,
}

/// Decides whether a tick runs, given the schedule's unfinished runs. After a `Run`, the caller counts the new
/// job as waiting before deciding the next tick of the same pass.
pub fn overlap_decision(policy: Overlap, active: ActiveRuns) -> OverlapDecision {
    let run = match policy {
        Overlap::Allow => true,
        Overlap::Skip => active.waiting == 0 && active.running == 0,
        Overlap::BufferOne => active.waiting == 0,
    };
    if run {
        OverlapDecision::Run
    } else {
        OverlapDecision::Skip
    }
}

/// A contiguous run of ticks recorded as missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedTicks {
    /// The first missed fire time.
    pub first: Timestamp,
    /// The last missed fire time (equal to `first` for one tick).
    pub last: Timestamp,
    /// How many fire times from `first` to `last` (saturating at [`MAX_COUNTED_TICKS`]).
    pub count: u64,
}

/// The fate of a schedule's due ticks, decided at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DuePlan {
    /// Fire times to run, oldest first (the overlap policy still decides each at firing).
    pub run: Vec<Timestamp>,
    /// Late ticks that will not run.
    pub missed: Option<MissedTicks>,
    /// The first fire time after `now`: the schedule's new persisted next fire time (`None`: it never fires
    /// again).
    pub next_fire_at: Option<Timestamp>,
}

/// How late ticks are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpRule {
    /// The policy.
    pub policy: CatchUp,
    /// For [`CatchUp::All`]: how far back late ticks still run.
    pub window: Duration,
    /// A tick at most this late is on time: it runs whatever the policy (a short stall, a restart or a leader
    /// change is not an outage).
    pub grace: Duration,
}

/// Decides the fate of every fire time from `next_fire_at` (a fire time, the schedule's persisted next one)
/// up to and including `now`.
///
/// Ticks at most `grace` old are on time and run. Older ones are late: with `none` they are missed; with
/// `latest` the most recent late tick runs when no on-time tick does, and the others are missed; with `all`
/// those inside the window run (at most [`MAX_CATCH_UP_RUNS`], the most recent ones) and older ones are
/// missed. Missed ticks are always the oldest ones, so they form one contiguous record.
pub fn plan_due(
    cadence: &Cadence,
    next_fire_at: Timestamp,
    now: Timestamp,
    rule: CatchUpRule,
) -> DuePlan {
    let mut plan = DuePlan {
        run: Vec::new(),
        missed: None,
        next_fire_at: Some(next_fire_at),
    };
    if next_fire_at > now {
        return plan;
    }
    let on_time_from = sub(now, rule.grace);
    let keep_from = match rule.policy {
        CatchUp::None | CatchUp::Latest => on_time_from,
        CatchUp::All => sub(now, rule.window).min(on_time_from),
    };
    // Late ticks that will not run: [next_fire_at, keep_from).
    if next_fire_at < keep_from {
        let count = cadence
            .iter_from_fire_time(next_fire_at)
            .take_while(|t| *t < keep_from)
            .take(usize::try_from(MAX_COUNTED_TICKS).unwrap_or(usize::MAX))
            .count() as u64;
        let last = cadence
            .prev_before(keep_from)
            .unwrap_or(next_fire_at)
            .max(next_fire_at);
        plan.missed = Some(MissedTicks {
            first: next_fire_at,
            last,
            count,
        });
    }
    // Ticks that may run: [keep_from, now], the most recent MAX_CATCH_UP_RUNS of them.
    let start = if next_fire_at >= keep_from {
        Some(next_fire_at)
    } else {
        cadence.next_after(sub(keep_from, Duration::from_nanos(1)))
    };
    let mut kept: VecDeque<Timestamp> = VecDeque::new();
    let mut too_old: Option<MissedTicks> = None;
    for t in std::iter::successors(start, |&t| cadence.next_after(t)).take_while(|t| *t <= now) {
        kept.push_back(t);
        if kept.len() > MAX_CATCH_UP_RUNS
            && let Some(old) = kept.pop_front()
        {
            note_missed(&mut too_old, old);
        }
    }
    if let Some(extra) = too_old {
        plan.missed = Some(match plan.missed {
            Some(m) => MissedTicks {
                first: m.first,
                last: extra.last,
                count: m.count.saturating_add(extra.count).min(MAX_COUNTED_TICKS),
            },
            None => extra,
        });
    }
    plan.run = kept.into_iter().collect();
    if rule.policy == CatchUp::Latest
        && plan.run.is_empty()
        && let Some(m) = plan.missed
    {
        // The most recent late tick runs; the missed record ends just before it.
        plan.run.push(m.last);
        plan.missed = (m.count > 1).then(|| MissedTicks {
            first: m.first,
            last: cadence.prev_before(m.last).unwrap_or(m.first).max(m.first),
            count: m.count - 1,
        });
    }
    plan.next_fire_at = cadence.next_after(now);
    plan
}

fn note_missed(missed: &mut Option<MissedTicks>, t: Timestamp) {
    match missed {
        Some(m) => {
            m.last = t;
            m.count = m.count.saturating_add(1);
        }
        None => {
            *missed = Some(MissedTicks {
                first: t,
                last: t,
                count: 1,
            })
        }
    }
}

fn sub(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

/// What a store knows about a schedule it is about to replace.
#[derive(Debug, Clone, Copy)]
pub struct Replaced<'a> {
    /// Its cadence.
    pub cadence: &'a Cadence,
    /// Its persisted next fire time.
    pub next_fire_at: Option<Timestamp>,
    /// The latest fire time it recorded a tick for.
    pub last_tick_at: Option<Timestamp>,
}

/// The next fire time to persist when a schedule is created or replaced at `now`.
///
/// An unchanged cadence (same expression, same time zone) keeps its persisted next fire time, so replacing
/// a schedule's job template or policies neither loses nor repeats a tick. A new cadence fires first strictly
/// after both `now` and its last recorded tick, so a clock that went backwards never repeats a tick.
pub fn next_fire_on_upsert(
    cadence: &Cadence,
    previous: Option<Replaced<'_>>,
    now: Timestamp,
) -> Option<Timestamp> {
    match previous {
        Some(p) if p.cadence == cadence => p.next_fire_at,
        Some(p) => cadence.next_after(p.last_tick_at.map_or(now, |last| last.max(now))),
        None => cadence.next_after(now),
    }
}

/// The shortest time between two consecutive fire times among the next `limit` ones after `from` (`None`
/// when fewer than two remain). Jitter must not be longer than this.
pub fn shortest_interval(cadence: &Cadence, from: Timestamp, limit: usize) -> Option<Duration> {
    let mut shortest: Option<Duration> = None;
    let mut previous: Option<Timestamp> = None;
    for t in cadence.iter_after(from).take(limit) {
        if let Some(p) = previous {
            let gap = Duration::try_from(t.duration_since(p)).unwrap_or(Duration::ZERO);
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
        }
        previous = Some(t);
    }
    shortest
}

/// When a tick's job becomes due: its fire time plus `unit` (a uniform draw in `[0, 1)`) of the jitter.
pub fn jittered(fire_at: Timestamp, jitter: Duration, unit: f64) -> Timestamp {
    if jitter.is_zero() {
        return fire_at;
    }
    add(fire_at, jitter.mul_f64(unit.clamp(0.0, 1.0)))
}
