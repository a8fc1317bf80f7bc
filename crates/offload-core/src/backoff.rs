//! Retry delays: exponential from `base`, capped at `cap`, with jitter that only ever shortens the delay.
//!
//! Invariant: for every attempt number (0 to `u32::MAX`) and every jitter draw, the delay lies in
//! `[base, cap]` (when `base > cap` the cap wins) and the arithmetic never overflows.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::DurationSpec;

/// A job's retry delay policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backoff {
    /// Delay after the first failed attempt.
    #[serde(default = "Backoff::default_base")]
    pub base: DurationSpec,
    /// The longest delay, whatever the attempt number.
    #[serde(default = "Backoff::default_cap")]
    pub cap: DurationSpec,
    /// Fraction (0.0 to 1.0) of the exponential delay that may be randomly taken off, so that jobs failing
    /// together do not all come back at the same instant.
    #[serde(default = "Backoff::default_jitter")]
    pub jitter: f64,
}

crate::object::object_only!(Backoff, "a backoff");

impl Backoff {
    fn default_base() -> DurationSpec {
        DurationSpec(Duration::from_secs(1))
    }
    fn default_cap() -> DurationSpec {
        DurationSpec(Duration::from_secs(3600))
    }
    fn default_jitter() -> f64 {
        0.2
    }

    /// The delay before the next attempt after `failed_attempts` failures (1 for the first failure).
    ///
    /// `unit` is a uniform random draw in `[0, 1)` supplied by the caller (keeping this function pure);
    /// values outside that range are clamped.
    pub fn delay(&self, failed_attempts: u32, unit: f64) -> Duration {
        let base = self.base.0;
        let cap = self.cap.0;
        if base >= cap {
            return cap;
        }
        // base * 2^(n-1), computed in f64 seconds and clamped before converting back: no overflow possible.
        let exponent = failed_attempts.saturating_sub(1).min(1024) as i32;
        let raw = base.as_secs_f64() * 2f64.powi(exponent);
        let capped = raw.min(cap.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = capped * (1.0 - jitter * unit);
        Duration::from_secs_f64(jittered).clamp(base, cap)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Self::default_base(),
            cap: Self::default_cap(),
            jitter: Self::default_jitter(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(base_ms: u64, cap_ms: u64, jitter: f64) -> Backoff {
        Backoff {
            base: DurationSpec(Duration::from_millis(base_ms)),
            cap: DurationSpec(Duration::from_millis(cap_ms)),
            jitter,
        }
    }

    #[test]
    fn doubles_until_the_cap_without_jitter() {
        let b = policy(1_000, 60_000, 0.0);
        let delays: Vec<u64> = (1..=8)
            .map(|n| b.delay(n, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
    }

    #[test]
    fn huge_attempt_numbers_stay_at_the_cap() {
        let b = policy(1_000, 3_600_000, 0.0);
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(3600));
        assert_eq!(b.delay(0, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn base_above_cap_yields_cap() {
        assert_eq!(
            policy(10_000, 5_000, 0.2).delay(3, 0.9),
            Duration::from_secs(5)
        );
    }

    proptest! {
        #[test]
        fn delay_always_between_base_and_cap(
            base in 0u64..10_000_000,
            extra in 0u64..1_000_000_000,
            jitter in -1.0f64..2.0,
            attempt in any::<u32>(),
            unit in -1.0f64..2.0,
        ) {
            let b = policy(base, base + extra, jitter);
            let d = b.delay(attempt, unit);
            prop_assert!(d >= Duration::from_millis(base));
            prop_assert!(d <= Duration::from_millis(base + extra));
        }

        #[test]
        fn delay_never_shrinks_as_attempts_grow_without_jitter(base in 1u64..100_000, attempt in 1u32..200) {
            let b = policy(base, base * 1000, 0.0);
            prop_assert!(b.delay(attempt + 1, 0.0) >= b.delay(attempt, 0.0));
        }
    }
}
