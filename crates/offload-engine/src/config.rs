//! Engine settings, with the defaults documented in the README.

use std::time::Duration;

use offload_core::function::event::DEFAULT_MAX_EVENT_BYTES;
use offload_core::function::record::RecordLimits;
use serde::{Deserialize, Serialize};

/// How long finished jobs are kept before the pruner deletes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Succeeded jobs (default 24 hours).
    #[serde(with = "duration_text")]
    pub succeeded: Duration,
    /// Cancelled jobs (default 7 days).
    #[serde(with = "duration_text")]
    pub cancelled: Duration,
    /// Dead jobs (default 30 days), kept longer so someone can look at them and retry.
    #[serde(with = "duration_text")]
    pub dead: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            succeeded: Duration::from_secs(DAY),
            cancelled: Duration::from_secs(7 * DAY),
            dead: Duration::from_secs(30 * DAY),
        }
    }
}

/// Durable functions: how long events and ended runs are kept, and the limits on events and step records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionsConfig {
    /// Stored events (default 7 days); an event's de-duplication `id` is remembered this long.
    pub event_retention: Duration,
    /// Ended runs (succeeded, failed or cancelled), with their steps (default 7 days, by `ended_at`).
    pub run_retention: Duration,
    /// Largest `data` of one event, in bytes of JSON (default 512 KiB).
    pub max_event_bytes: usize,
    /// Steps per run, bytes per step result, bytes of recorded state per run.
    pub limits: RecordLimits,
    /// Longest sleep of the wait-timeout service between looks for waits whose timeout passed.
    pub wake_interval: Duration,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            event_retention: Duration::from_secs(7 * DAY),
            run_retention: Duration::from_secs(7 * DAY),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            limits: RecordLimits::default(),
            wake_interval: Duration::from_secs(1),
        }
    }
}

/// Timings of the engine's loops.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This process's identity for leader election; random per process, never the hostname, so two servers
    /// on one host are two nodes.
    pub node_id: String,
    /// Finished-job retention.
    pub retention: Retention,
    /// Longest sleep of the stager between checks for due jobs (it also wakes for new delayed jobs).
    pub stage_interval: Duration,
    /// How often expired leases are looked for.
    pub rescue_interval: Duration,
    /// How often finished jobs are pruned.
    pub prune_interval: Duration,
    /// How often flow counters are recounted from the jobs and repaired where they drifted.
    pub flow_repair_interval: Duration,
    /// Leader lease length; renewed every third of it.
    pub leader_ttl: Duration,
    /// Backstop poll of long-polling claimers, in case a wake-up was missed (jittered by up to 50 %).
    pub claim_poll: Duration,
    /// Rows per maintenance statement, bounding each transaction.
    pub maintenance_batch: u32,
    /// Push delivery (off unless it has a signing secret).
    pub push: crate::push::PushConfig,
    /// Cron: a tick at most this late is on time and runs whatever the schedule's catch-up policy (a short
    /// stall, a restart or a change of leader is not an outage); later ticks follow the catch-up policy.
    pub cron_grace: Duration,
    /// Cron: longest sleep of the enqueuer between looks for due schedules (it sleeps until the next fire time
    /// and wakes at once when a schedule changes on this node; this bounds how long a change made on another
    /// node, or a jump of the clock, goes unnoticed).
    pub cron_poll: Duration,
    /// Cron: most schedules fired in one transaction.
    pub cron_batch: u32,
    /// Durable functions: retention and limits.
    pub functions: FunctionsConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            retention: Retention::default(),
            stage_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(1),
            prune_interval: Duration::from_secs(60),
            flow_repair_interval: Duration::from_secs(300),
            leader_ttl: Duration::from_secs(15),
            claim_poll: Duration::from_secs(1),
            maintenance_batch: 1000,
            push: crate::push::PushConfig::default(),
            cron_grace: Duration::from_secs(60),
            cron_poll: Duration::from_secs(1),
            cron_batch: 2000,
            functions: FunctionsConfig::default(),
        }
    }
}

/// Durations in configuration files as text (`"24h"`, `"7d"`) or milliseconds.
mod duration_text {
    use std::time::Duration;

    use offload_core::DurationSpec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        DurationSpec(*d).to_string().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        DurationSpec::deserialize(d).map(|d| d.0)
    }
}
