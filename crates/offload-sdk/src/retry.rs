//! When a worker tries a request again after the server did not answer: one rule for claims and for reports,
//! used by [`crate::Worker`] and by `offload worker` alike.
//!
//! Invariants: no pause between two tries is longer than [`MAX_PAUSE`], so a worker whose server went away
//! claims again (and delivers its pending reports) within about that long after the server is back. A report
//! is tried again for as long as its job's lease may still last ([`lease_deadline`]), and given up only once
//! the lease has certainly expired, or when the server answered in a way another try would not change.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// Pause after the first failed try.
pub const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// Longest pause between two tries, however long the server has been away.
pub const MAX_PAUSE: Duration = Duration::from_secs(2);
/// Added to a lease's length before a report is given up, for the time a renewal spends on its way to the
/// server and for clocks that run at slightly different rates.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// Exponential backoff between failed tries: [`FIRST_PAUSE`] doubled after each failure, at most
/// [`MAX_PAUSE`], each pause shortened by up to 20 % at random so that many workers do not retry in step.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A backoff that has seen no failure yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pause before the next try, after one more failure.
    pub fn next_pause(&mut self) -> Duration {
        let exp = FIRST_PAUSE.saturating_mul(1 << self.failures.min(10));
        self.failures = self.failures.saturating_add(1);
        exp.min(MAX_PAUSE).mul_f64(1.0 - 0.2 * fastrand::f64())
    }

    /// Starts again from [`FIRST_PAUSE`] (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// True for failures that may pass by themselves: no answer, 429 or 5xx.
pub fn worth_retrying(e: &Error) -> bool {
    e.is_transport() || matches!(e.status(), Some(429 | 500..=599))
}

/// The instant after which a job's lease has certainly expired: `timeout` (the job's lease length) after the
/// last claim or heartbeat that may have renewed it returned, plus [`LEASE_MARGIN`]. A heartbeat that failed
/// counts as a renewal too, since the server may have applied it before the answer was lost.
pub fn lease_deadline(last_renewal: Instant, timeout: Duration) -> Instant {
    last_renewal + timeout + LEASE_MARGIN
}

/// When to try again after a failure at `now`, pausing `pause`: never later than `until`, and not at all
/// once `until` has passed.
fn next_try(now: Instant, pause: Duration, until: Instant) -> Option<Instant> {
    (now < until).then(|| (now + pause).min(until))
}

/// Calls `send` until it succeeds or fails in a way another try would not change, pausing by [`Backoff`]
/// between tries; gives up with the last error once `until` has passed (for a report: the job's
/// [`lease_deadline`], after which the server has handed the job to someone else anyway).
pub async fn until<F, Fut, T>(until: Instant, mut send: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut backoff = Backoff::new();
    loop {
        match send().await {
            Err(e) if worth_retrying(&e) => {
                match next_try(Instant::now(), backoff.next_pause(), until) {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => return Err(e),
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Error {
        Error::Decode {
            status: 503,
            message: "down".into(),
        }
    }

    #[test]
    fn pauses_grow_to_two_seconds_and_no_further() {
        let mut b = Backoff::new();
        let pauses: Vec<Duration> = (0..200).map(|_| b.next_pause()).collect();
        assert!(pauses[0] <= FIRST_PAUSE && pauses[0] >= FIRST_PAUSE.mul_f64(0.8));
        assert!(pauses[2] <= Duration::from_secs(1) && pauses[2] >= Duration::from_millis(800));
        assert!(pauses.iter().all(|p| *p <= MAX_PAUSE), "{pauses:?}");
        assert!(pauses[199] >= MAX_PAUSE.mul_f64(0.8));
        b.reset();
        assert!(b.next_pause() <= FIRST_PAUSE);
    }

    /// On a fake clock: the server is away for `outage`, and tries follow the backoff; the first try after the
    /// server is back comes within [`MAX_PAUSE`] of its return, however long the outage was.
    #[test]
    fn a_worker_tries_again_within_two_seconds_of_the_servers_return() {
        for outage in [1, 5, 13, 60, 600, 3600].map(Duration::from_secs) {
            let start = Instant::now();
            let back = start + outage;
            let mut clock = start;
            let mut backoff = Backoff::new();
            while clock < back {
                clock += backoff.next_pause();
            }
            assert!(
                clock - back <= MAX_PAUSE,
                "after an outage of {outage:?} the first try came {:?} late",
                clock - back
            );
        }
    }

    #[test]
    fn tries_stop_at_the_deadline() {
        let now = Instant::now();
        let until = now + Duration::from_millis(300);
        assert_eq!(
            next_try(now, Duration::from_millis(100), until),
            Some(now + Duration::from_millis(100))
        );
        assert_eq!(next_try(now, Duration::from_secs(2), until), Some(until));
        assert_eq!(next_try(until, Duration::from_millis(1), until), None);
        assert_eq!(
            lease_deadline(now, Duration::from_secs(30)),
            now + Duration::from_secs(31)
        );
    }

    #[tokio::test]
    async fn only_passing_failures_are_tried_again_until_the_deadline() {
        use std::cell::Cell;
        let calls = Cell::new(0u32);
        let started = Instant::now();
        let result: Result<(), Error> = until(started + Duration::from_millis(600), || async {
            calls.set(calls.get() + 1);
            Err(down())
        })
        .await;
        assert!(result.is_err());
        assert!(Instant::now() >= started + Duration::from_millis(600));
        // 0.25 s, 0.5 s (cut to the deadline), then the try at the deadline.
        assert!((3..=4).contains(&calls.get()), "{} tries", calls.get());

        calls.set(0);
        let refused: Result<(), Error> =
            until(Instant::now() + Duration::from_secs(60), || async {
                calls.set(calls.get() + 1);
                Err(Error::Decode {
                    status: 409,
                    message: "no".into(),
                })
            })
            .await;
        assert!(refused.is_err());
        assert_eq!(calls.get(), 1, "a refusal is final");

        calls.set(0);
        let recovered = until(Instant::now() + Duration::from_secs(60), || async {
            calls.set(calls.get() + 1);
            if calls.get() < 3 { Err(down()) } else { Ok(7) }
        })
        .await;
        assert_eq!(recovered.unwrap(), 7);
    }
}
