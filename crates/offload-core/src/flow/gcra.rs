//! The generic cell rate algorithm (GCRA): at most `limit` starts per `period`, with a `burst`.
//!
//! The state is one instant per bucket, the theoretical arrival time (TAT). A start at `now` is allowed when
//! `TAT - tolerance <= now`, and moves the TAT to `max(TAT, now) + interval`, where `interval = period / limit`
//! and `tolerance = interval * (burst - 1)`. So a bucket at rest allows `burst` starts at once, then one per
//! `interval`; over any window of length `period` at most `limit + burst - 1` start.
//!
//! Invariant: the TAT never moves backwards, and a refused start leaves it unchanged; a throttle stores nothing
//! but the TAT, so it survives restarts and is shared by every server reading the same row.

use std::time::Duration;

use jiff::Timestamp;

use crate::state::add;

/// A rate: `limit` starts per `period`, up to `burst` at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval: Duration,
    tolerance: Duration,
}

impl Gcra {
    /// A rate of `limit` per `period` with `burst` (at least 1). Callers pass validated values (`limit >= 1`,
    /// `period >= 1 ms`); degenerate values are clamped, never a panic.
    pub fn new(limit: u32, period: Duration, burst: u32) -> Self {
        let interval = period / limit.max(1);
        let interval = interval.max(Duration::from_nanos(1));
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        Self {
            interval,
            tolerance,
        }
    }

    /// The time between two starts at the steady rate.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How far ahead of now a TAT may be and still allow a start (the burst: `interval * (burst - 1)`).
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Whether a start at `now` is allowed by a bucket whose TAT is `tat` (`None`: never used). `Ok` carries the
    /// new TAT to store; `Err` the earliest instant a start will be allowed.
    pub fn check(&self, tat: Option<Timestamp>, now: Timestamp) -> Result<Timestamp, Timestamp> {
        let tat = tat.map_or(now, |t| t.max(now));
        let allowed_at = allowed_at(tat, self.tolerance);
        if allowed_at > now {
            return Err(allowed_at);
        }
        Ok(add(tat, self.interval))
    }
}

/// The earliest instant a bucket whose TAT is `tat` allows a start, given the throttle's `tolerance`
/// ([`Gcra::tolerance`]): `tat - tolerance`, saturating.
pub fn allowed_at(tat: Timestamp, tolerance: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(tolerance).unwrap_or(jiff::SignedDuration::MAX);
    tat.checked_sub(d).unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_steady_rate_allows_one_start_per_interval() {
        let gcra = Gcra::new(10, Duration::from_secs(1), 1);
        let tat = gcra.check(None, t(0)).unwrap();
        assert_eq!(tat, t(100));
        assert_eq!(gcra.check(Some(tat), t(50)), Err(t(100)));
        assert_eq!(gcra.check(Some(tat), t(100)), Ok(t(200)));
    }

    #[test]
    fn burst_allows_that_many_at_once_then_the_rate() {
        let gcra = Gcra::new(10, Duration::from_secs(1), 3);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra.check(tat, t(0)).unwrap());
        }
        assert_eq!(gcra.check(tat, t(0)), Err(t(100)));
        assert!(gcra.check(tat, t(100)).is_ok());
    }

    #[test]
    fn over_any_window_at_most_limit_plus_burst_minus_one_start() {
        // Simulate a greedy claimer polling every millisecond for 5 s at 10/s with burst 1: 50 starts (±1).
        let gcra = Gcra::new(10, Duration::from_secs(1), 1);
        let mut tat = None;
        let mut starts = vec![];
        for ms in 0..5000 {
            if let Ok(next) = gcra.check(tat, t(ms)) {
                tat = Some(next);
                starts.push(ms);
            }
        }
        assert_eq!(starts.len(), 50);
        for window in starts.windows(11) {
            assert!(
                window[10] - window[0] >= 1000,
                "11 starts within a second: {window:?}"
            );
        }
    }

    #[test]
    fn a_quiet_bucket_does_not_bank_more_than_its_burst() {
        let gcra = Gcra::new(5, Duration::from_secs(1), 2);
        let tat = gcra.check(None, t(0)).unwrap();
        // An hour later the TAT is in the past: it counts from now, so only the burst is available.
        let later = t(3_600_000);
        let a = gcra.check(Some(tat), later).unwrap();
        let b = gcra.check(Some(a), later).unwrap();
        assert!(gcra.check(Some(b), later).is_err());
    }

    #[test]
    fn degenerate_inputs_are_clamped_not_panics() {
        let gcra = Gcra::new(0, Duration::ZERO, 0);
        assert!(gcra.interval() > Duration::ZERO);
        // At the end of time the TAT saturates instead of overflowing, and the next start is refused.
        let tat = gcra.check(None, Timestamp::MAX).unwrap();
        assert_eq!(tat, Timestamp::MAX);
        let huge = Gcra::new(1, Duration::MAX, u32::MAX);
        assert!(huge.check(None, t(0)).is_ok());
    }
}
