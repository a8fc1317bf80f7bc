//! The bench's figures and the machine-readable `RESULT` line.

use std::fmt;

/// Figures of one bench run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchReport {
    pub(crate) enqueue_per_s: f64,
    pub(crate) batch_enqueue_per_s: f64,
    pub(crate) drain_per_s: f64,
    /// The same drain by the SDK's worker with no-op handlers.
    pub(crate) sdk_drain_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) push_per_s: f64,
    pub(crate) push_p50_ms: f64,
    pub(crate) push_p99_ms: f64,
    pub(crate) cron_lag_p50_ms: f64,
    pub(crate) cron_lag_p99_ms: f64,
    pub(crate) cron_idle_cpu_pct: f64,
    /// Events ingested per second, one per request, two functions subscribed.
    pub(crate) events_single_per_s: f64,
    /// Events ingested per second in batches of up to 1,000, two functions subscribed.
    pub(crate) events_batch_per_s: f64,
    /// Steps per second of a ten-step no-op function through HTTP pull workers.
    pub(crate) fn_pull_steps_per_s: f64,
    /// The same through push to a no-op endpoint.
    pub(crate) fn_push_steps_per_s: f64,
    /// From a step's answer to the next call's delivery to a pull worker, at low load.
    pub(crate) step_p50_ms: f64,
    pub(crate) step_p99_ms: f64,
}

impl fmt::Display for BenchReport {
    /// `RESULT enqueue_per_s=.. batch_enqueue_per_s=.. drain_per_s=.. sdk_drain_per_s=.. p50_ms=.. p99_ms=..
    /// push_per_s=.. push_p50_ms=.. push_p99_ms=.. cron_lag_p50_ms=.. cron_lag_p99_ms=.. cron_idle_cpu_pct=..
    /// events_single_per_s=.. events_batch_per_s=.. fn_pull_steps_per_s=.. fn_push_steps_per_s=.. step_p50_ms=..
    /// step_p99_ms=..`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT enqueue_per_s={:.0} batch_enqueue_per_s={:.0} drain_per_s={:.0} sdk_drain_per_s={:.0} \
             p50_ms={:.3} p99_ms={:.3}",
            self.enqueue_per_s,
            self.batch_enqueue_per_s,
            self.drain_per_s,
            self.sdk_drain_per_s,
            self.p50_ms,
            self.p99_ms
        )?;
        write!(
            f,
            " push_per_s={:.0} push_p50_ms={:.3} push_p99_ms={:.3}",
            self.push_per_s, self.push_p50_ms, self.push_p99_ms
        )?;
        write!(
            f,
            " cron_lag_p50_ms={:.3} cron_lag_p99_ms={:.3} cron_idle_cpu_pct={:.2}",
            self.cron_lag_p50_ms, self.cron_lag_p99_ms, self.cron_idle_cpu_pct
        )?;
        write!(
            f,
            " events_single_per_s={:.0} events_batch_per_s={:.0} fn_pull_steps_per_s={:.0} \
             fn_push_steps_per_s={:.0} step_p50_ms={:.3} step_p99_ms={:.3}",
            self.events_single_per_s,
            self.events_batch_per_s,
            self.fn_pull_steps_per_s,
            self.fn_push_steps_per_s,
            self.step_p50_ms,
            self.step_p99_ms
        )
    }
}

/// The value at quantile `q` (0..=1) of sorted samples (nearest rank).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_has_every_figure() {
        let r = BenchReport {
            enqueue_per_s: 1234.4,
            batch_enqueue_per_s: 5.0,
            drain_per_s: 6.0,
            sdk_drain_per_s: 7.0,
            p50_ms: 0.25,
            p99_ms: 1.5,
            push_per_s: 20_000.4,
            push_p50_ms: 0.5,
            push_p99_ms: 2.0,
            cron_lag_p50_ms: 3.0,
            cron_lag_p99_ms: 12.25,
            cron_idle_cpu_pct: 0.4,
            events_single_per_s: 9_000.2,
            events_batch_per_s: 30_000.0,
            fn_pull_steps_per_s: 12_000.0,
            fn_push_steps_per_s: 6_000.0,
            step_p50_ms: 1.25,
            step_p99_ms: 4.0,
        };
        assert_eq!(
            r.to_string(),
            "RESULT enqueue_per_s=1234 batch_enqueue_per_s=5 drain_per_s=6 sdk_drain_per_s=7 p50_ms=0.250 p99_ms=1.500 \
             push_per_s=20000 push_p50_ms=0.500 push_p99_ms=2.000 \
             cron_lag_p50_ms=3.000 cron_lag_p99_ms=12.250 cron_idle_cpu_pct=0.40 \
             events_single_per_s=9000 events_batch_per_s=30000 fn_pull_steps_per_s=12000 \
             fn_push_steps_per_s=6000 step_p50_ms=1.250 step_p99_ms=4.000"
        );
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
