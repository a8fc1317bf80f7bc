//! The database's clock, readable without a round trip.
//!
//! Due times and lease expiry must be judged by one clock for every server sharing the database, or a node
//! whose clock runs ahead would start jobs early and steal live leases. That clock is PostgreSQL's. But
//! [`Store::now`](offload_store::Store::now) is synchronous and every statement needs "now", so the store
//! does not ask the database each time: [`DbClock`] reads the database's `clock_timestamp()` once, notes the
//! local *monotonic* instant at which it was read (the middle of the fastest of a few round trips), and from
//! then on answers the database time plus the monotonic time elapsed since. The local wall clock plays no
//! part, so a skewed or stepped system clock changes nothing. A background task re-reads the database clock
//! every [`REFRESH`], which bounds drift to the monotonic clock's rate error over that period; the error of a
//! reading is at most half a round trip (well under a millisecond on a LAN).
//!
//! Every statement then binds `now` taken from the store's clock. Tests put a
//! [`ManualClock`](offload_core::ManualClock) in its place; nothing else changes.
//!
//! Invariant: [`DbClock::now`] never goes backwards, even when a new reading is slightly behind the old one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use offload_core::{Clock, SignedDuration, Timestamp};
use offload_store::Result;
use sqlx::PgPool;

use crate::codec::Ts;
use crate::error::{acquire, db};

/// How often the database clock is read again.
pub(crate) const REFRESH: Duration = Duration::from_secs(15);

/// Round trips per reading; the fastest one is kept.
const SAMPLES: usize = 3;

/// The database's time, carried forward by the local monotonic clock.
#[derive(Debug)]
pub(crate) struct DbClock {
    anchor: Mutex<(Timestamp, Instant)>,
    /// The latest answer, in microseconds, so answers never go backwards.
    last: AtomicI64,
}

impl DbClock {
    /// Reads the database clock for the first time.
    pub(crate) async fn start(pool: &PgPool) -> Result<Self> {
        let anchor = read(pool).await?;
        Ok(Self {
            last: AtomicI64::new(anchor.0.as_microsecond()),
            anchor: Mutex::new(anchor),
        })
    }

    /// Reads the database clock again.
    pub(crate) async fn refresh(&self, pool: &PgPool) -> Result<()> {
        let anchor = read(pool).await?;
        let before = self.now();
        *self.anchor.lock().unwrap_or_else(|e| e.into_inner()) = anchor;
        let offset = self.computed().duration_since(before);
        if offset.abs() > SignedDuration::from_millis(100) {
            tracing::warn!(
                correction_ms = offset.as_millis(),
                "the local monotonic clock drifted from the database clock"
            );
        }
        Ok(())
    }

    fn computed(&self) -> Timestamp {
        let (at, then) = *self.anchor.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = SignedDuration::try_from(then.elapsed()).unwrap_or(SignedDuration::MAX);
        at.saturating_add(elapsed).unwrap_or(at)
    }
}

impl Clock for DbClock {
    fn now(&self) -> Timestamp {
        let computed = self.computed().as_microsecond();
        let previous = self.last.fetch_max(computed, Ordering::AcqRel);
        Timestamp::from_microsecond(computed.max(previous)).unwrap_or(Timestamp::MAX)
    }
}

/// The database time and the local instant it corresponds to, from the fastest of a few round trips.
async fn read(pool: &PgPool) -> Result<(Timestamp, Instant)> {
    let mut conn = pool.acquire().await.map_err(acquire)?;
    let mut best: Option<(Duration, Timestamp, Instant)> = None;
    for _ in 0..SAMPLES {
        let sent = Instant::now();
        let Ts(at) = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        let round_trip = sent.elapsed();
        if best.is_none_or(|(rt, _, _)| round_trip < rt) {
            best = Some((round_trip, at, sent + round_trip / 2));
        }
    }
    let (_, at, local) = best.expect("at least one sample");
    Ok((at, local))
}
