//! Flow counters against the jobs they count: which counters drifted, and by how much.
//!
//! Invariant: a counter is reported when, and only when, its stored value differs from the number of jobs it
//! counts, both read at one instant (one transaction or one consistent snapshot); a counter missing on either
//! side counts as zero, so a stored counter without jobs and jobs without a stored counter are both found.
//! The decision is made here once, for every store; stores only read both sides and write the fixes.

use std::collections::BTreeMap;

/// A flow-control counter that [`crate::Store::flow_counters_repair`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowCounter {
    /// A group's available jobs (its `queue_groups.available`).
    GroupAvailable,
    /// A group's running jobs (its `queue_groups.running`): the slots a group concurrency counts.
    GroupRunning,
    /// A queue's available jobs (its `queue_counts`).
    QueueAvailable,
    /// A queue's running jobs (its `queue_counts`): the slots a queue concurrency counts.
    QueueRunning,
    /// A queue's available grouped jobs, where a store keeps that shortcut for its claims.
    QueueGroupedAvailable,
}

impl FlowCounter {
    /// The counter's name in logs, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GroupAvailable => "group_available",
            Self::GroupRunning => "group_running",
            Self::QueueAvailable => "queue_available",
            Self::QueueRunning => "queue_running",
            Self::QueueGroupedAvailable => "queue_grouped_available",
        }
    }
}

/// Which counter: the queue, the group for per-group counters, and the kind.
pub type CounterKey = (String, Option<String>, FlowCounter);

/// A counter found different from the jobs it counts, and set to their number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRepair {
    /// The queue.
    pub queue: String,
    /// The group, for per-group counters.
    pub group: Option<String>,
    /// Which counter.
    pub counter: FlowCounter,
    /// The stored value found.
    pub was: i64,
    /// The number of jobs it counts: the value it was set to.
    pub now: i64,
}

impl CounterRepair {
    /// By how much the stored value must change to be right.
    pub fn delta(&self) -> i64 {
        self.now - self.was
    }
}

/// The counters whose stored value (`stored`) differs from the truth (`truth`), in key order. Keys absent from
/// a side count as zero there.
pub fn drift(
    stored: &BTreeMap<CounterKey, i64>,
    truth: &BTreeMap<CounterKey, i64>,
) -> Vec<CounterRepair> {
    let mut keys: Vec<&CounterKey> = stored.keys().chain(truth.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let was = stored.get(key).copied().unwrap_or(0);
            let now = truth.get(key).copied().unwrap_or(0);
            (was != now).then(|| CounterRepair {
                queue: key.0.clone(),
                group: key.1.clone(),
                counter: key.2,
                was,
                now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &str, g: Option<&str>, c: FlowCounter) -> CounterKey {
        (q.to_owned(), g.map(str::to_owned), c)
    }

    #[test]
    fn equal_sides_report_nothing() {
        let both = BTreeMap::from([
            (key("q", Some("a"), FlowCounter::GroupRunning), 2),
            (key("q", None, FlowCounter::QueueRunning), 2),
        ]);
        assert!(drift(&both, &both).is_empty());
        assert!(drift(&BTreeMap::new(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn differences_and_missing_sides_are_reported_in_key_order() {
        let stored = BTreeMap::from([
            (key("q", Some("a"), FlowCounter::GroupRunning), 5),
            (key("q", Some("b"), FlowCounter::GroupAvailable), 1),
            (key("q", None, FlowCounter::QueueRunning), 0),
        ]);
        let truth = BTreeMap::from([
            (key("q", Some("a"), FlowCounter::GroupRunning), 2),
            (key("q", Some("c"), FlowCounter::GroupAvailable), 3),
            (key("q", None, FlowCounter::QueueRunning), 0),
        ]);
        let found = drift(&stored, &truth);
        let short: Vec<_> = found
            .iter()
            .map(|r| (r.group.as_deref(), r.counter, r.was, r.now, r.delta()))
            .collect();
        assert_eq!(
            short,
            vec![
                (Some("a"), FlowCounter::GroupRunning, 5, 2, -3),
                (Some("b"), FlowCounter::GroupAvailable, 1, 0, -1),
                (Some("c"), FlowCounter::GroupAvailable, 0, 3, 3),
            ]
        );
    }

    #[test]
    fn a_stored_zero_equals_a_missing_truth() {
        let stored = BTreeMap::from([(key("q", Some("a"), FlowCounter::GroupAvailable), 0)]);
        assert!(drift(&stored, &BTreeMap::new()).is_empty());
    }
}
