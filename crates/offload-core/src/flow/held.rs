//! Held jobs: how many of a queue's available jobs its limits hold right now, by kind of limit.
//!
//! A store lists the groups with available jobs (and the jobs without a group as one more, `None`), with how
//! many each has, and the queue's usage; [`held`] asks [`admit`] — never a rule of its own — which of them a
//! claim taking everything would start now. Each group is represented by at most [`PER_GROUP`] candidates, the
//! groups taking turns; a group's jobs beyond those are held for the reason its last candidate was (they come
//! later in the same group, so a limit that held it holds them), or counted as not held when it would start.
//!
//! Invariant: the counts never exceed the available jobs listed, and a queue without limits holds nothing.

use jiff::Timestamp;

use super::admission::{Candidate, Usage, WaitingFor, admit};
use super::limits::QueueLimits;

/// Candidates examined per group.
pub const PER_GROUP: u64 = 16;

/// A group with available jobs (`None`: the jobs without a group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingGroup<'a> {
    /// The group.
    pub group: Option<&'a str>,
    /// Its available jobs.
    pub available: u64,
}

/// Available jobs held, by the limit that holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldJobs {
    /// Held because the queue runs as many jobs as its `concurrency` allows.
    pub concurrency: u64,
    /// Held because their group runs as many jobs as `group_concurrency` allows.
    pub group_concurrency: u64,
    /// Held by a throttle.
    pub throttle: u64,
}

impl HeldJobs {
    /// The counts with their kind's name, as metrics label them.
    pub fn by_kind(&self) -> [(&'static str, u64); 3] {
        [
            ("concurrency", self.concurrency),
            ("group_concurrency", self.group_concurrency),
            ("throttle", self.throttle),
        ]
    }

    fn add(&mut self, why: WaitingFor, n: u64) {
        match why {
            WaitingFor::Concurrency => self.concurrency += n,
            WaitingFor::GroupConcurrency => self.group_concurrency += n,
            WaitingFor::Throttle { .. } => self.throttle += n,
        }
    }
}

/// How many of the listed groups' available jobs `limits` hold now, given `usage`.
pub fn held(
    limits: &QueueLimits,
    usage: Usage,
    groups: &[WaitingGroup<'_>],
    now: Timestamp,
) -> HeldJobs {
    let mut out = HeldJobs::default();
    if limits.is_unlimited() {
        return out;
    }
    // Groups take turns: each group's first candidate, then each one's second, and so on.
    let mut candidates = Vec::new();
    let mut owner = Vec::new();
    for round in 0..PER_GROUP {
        for (g, waiting) in groups.iter().enumerate() {
            if waiting.available > round {
                candidates.push(Candidate {
                    group: waiting.group,
                });
                owner.push(g);
            }
        }
    }
    let admission = admit(limits, usage, &candidates, candidates.len(), now);
    let mut last: Vec<Option<(usize, Option<WaitingFor>)>> = vec![None; groups.len()];
    for &i in &admission.admitted {
        let g = owner[i];
        if last[g].is_none_or(|(j, _)| j < i) {
            last[g] = Some((i, None));
        }
    }
    for &(i, why) in &admission.held {
        out.add(why, 1);
        let g = owner[i];
        if last[g].is_none_or(|(j, _)| j < i) {
            last[g] = Some((i, Some(why)));
        }
    }
    for (g, waiting) in groups.iter().enumerate() {
        let beyond = waiting.available.saturating_sub(PER_GROUP);
        if let (true, Some((_, Some(why)))) = (beyond > 0, last[g]) {
            out.add(why, beyond);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::DurationSpec;
    use crate::flow::limits::ThrottleSpec;

    fn now() -> Timestamp {
        Timestamp::from_second(1_767_225_600).unwrap()
    }

    fn group(g: &str, available: u64) -> WaitingGroup<'_> {
        WaitingGroup {
            group: Some(g),
            available,
        }
    }

    #[test]
    fn no_limits_hold_nothing() {
        let out = held(
            &QueueLimits::default(),
            Usage::default(),
            &[group("a", 100)],
            now(),
        );
        assert_eq!(out, HeldJobs::default());
    }

    #[test]
    fn group_concurrency_holds_all_but_the_free_slots_even_beyond_the_examined() {
        let limits = QueueLimits {
            group_concurrency: Some(2),
            ..QueueLimits::default()
        };
        let usage = Usage {
            running: 1,
            group_running: BTreeMap::from([("a".to_owned(), 1)]),
            ..Usage::default()
        };
        let groups = [
            group("a", 100),
            group("b", 3),
            WaitingGroup {
                group: None,
                available: 5,
            },
        ];
        let out = held(&limits, usage, &groups, now());
        // a: 1 more may start, 99 held; b: 2 start, 1 held; no group: all 5 start.
        assert_eq!(
            out,
            HeldJobs {
                group_concurrency: 100,
                ..HeldJobs::default()
            }
        );
    }

    #[test]
    fn a_full_queue_holds_every_waiting_job_by_concurrency() {
        let limits = QueueLimits {
            concurrency: Some(3),
            group_concurrency: Some(1),
            ..QueueLimits::default()
        };
        let usage = Usage {
            running: 3,
            ..Usage::default()
        };
        let out = held(&limits, usage, &[group("a", 40), group("b", 2)], now());
        assert_eq!(
            out,
            HeldJobs {
                concurrency: 42,
                ..HeldJobs::default()
            }
        );
    }

    #[test]
    fn a_throttle_holds_what_its_burst_does_not_let_start() {
        let limits = QueueLimits {
            throttle: Some(ThrottleSpec {
                limit: 10,
                period: DurationSpec(Duration::from_secs(1)),
                burst: 1,
                per_group: false,
            }),
            ..QueueLimits::default()
        };
        let out = held(&limits, Usage::default(), &[group("a", 50)], now());
        assert_eq!(out.throttle + out.concurrency + out.group_concurrency, 49);
        assert_eq!(out.throttle, 49);
    }
}
