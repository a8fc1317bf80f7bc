//! Admission under each limit, and the invariant that no limit is ever exceeded, checked by simulation.

use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::duration::DurationSpec;
use crate::flow::limits::ThrottleSpec;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
}

fn jobs<'a>(groups: &[Option<&'a str>]) -> Vec<Candidate<'a>> {
    groups.iter().map(|g| Candidate { group: *g }).collect()
}

#[test]
fn without_limits_everything_asked_for_starts_in_order() {
    let c = jobs(&[Some("a"), None, Some("b")]);
    let a = admit(&QueueLimits::default(), Usage::default(), &c, 2, t(0));
    assert_eq!(a.admitted, [0, 1]);
    assert!(a.held.is_empty());
    assert_eq!(a.usage.running, 2);
}

#[test]
fn queue_concurrency_holds_the_rest_once_full() {
    let limits = QueueLimits {
        concurrency: Some(3),
        ..Default::default()
    };
    let usage = Usage {
        running: 2,
        ..Default::default()
    };
    let a = admit(&limits, usage, &jobs(&[None, None, None]), 10, t(0));
    assert_eq!(a.admitted, [0]);
    assert_eq!(
        a.held,
        [(1, WaitingFor::Concurrency), (2, WaitingFor::Concurrency)]
    );
    assert_eq!(a.usage.running, 3);
}

#[test]
fn group_concurrency_skips_full_groups_and_takes_the_next() {
    let limits = QueueLimits {
        group_concurrency: Some(1),
        ..Default::default()
    };
    let mut usage = Usage::default();
    usage.group_running.insert("a".into(), 1);
    let a = admit(
        &limits,
        usage,
        &jobs(&[Some("a"), Some("b"), Some("b"), None]),
        10,
        t(0),
    );
    assert_eq!(a.admitted, [1, 3]);
    assert_eq!(
        a.held,
        [
            (0, WaitingFor::GroupConcurrency),
            (2, WaitingFor::GroupConcurrency)
        ]
    );
    assert_eq!(a.usage.group_running["b"], 1);
}

#[test]
fn a_queue_throttle_holds_everyone_until_its_time() {
    let limits = QueueLimits {
        throttle: Some(ThrottleSpec {
            limit: 10,
            period: DurationSpec(Duration::from_secs(1)),
            burst: 2,
            per_group: false,
        }),
        ..Default::default()
    };
    let a = admit(
        &limits,
        Usage::default(),
        &jobs(&[None, None, None]),
        10,
        t(0),
    );
    assert_eq!(a.admitted, [0, 1]);
    assert_eq!(a.held, [(2, WaitingFor::Throttle { until: t(100) })]);
    assert_eq!(a.wake_at, Some(t(100)));
    let later = admit(&limits, a.usage, &jobs(&[None]), 10, t(100));
    assert_eq!(later.admitted, [0]);
}

#[test]
fn per_group_throttles_are_independent() {
    let limits = QueueLimits {
        throttle: Some(ThrottleSpec {
            limit: 1,
            period: DurationSpec(Duration::from_secs(1)),
            burst: 1,
            per_group: true,
        }),
        ..Default::default()
    };
    let a = admit(
        &limits,
        Usage::default(),
        &jobs(&[Some("a"), Some("a"), Some("b"), None, None]),
        10,
        t(0),
    );
    assert_eq!(a.admitted, [0, 2, 3]);
    assert_eq!(a.held.len(), 2);
}

#[test]
fn fair_claims_take_groups_in_turn() {
    let limits = QueueLimits {
        fair: true,
        ..Default::default()
    };
    let mut groups = vec![Some("big"); 100];
    groups.extend([Some("small"); 5]);
    groups.push(None);
    let a = admit(&limits, Usage::default(), &jobs(&groups), 6, t(0));
    assert_eq!(a.admitted, [0, 100, 105, 1, 101, 2]);
}

#[test]
fn release_gives_slots_back_and_never_goes_negative() {
    let mut usage = Usage {
        running: 1,
        ..Default::default()
    };
    usage.group_running.insert("a".into(), 1);
    usage.release(Some("a"));
    assert_eq!(usage, Usage::default());
    usage.release(Some("a"));
    assert_eq!(usage.running, 0);
}

proptest! {
    /// Simulated claims and finishes under random limits: at no point do more jobs run than a limit allows.
    #[test]
    fn limits_are_never_exceeded(
        concurrency in proptest::option::of(1u32..6),
        group_concurrency in proptest::option::of(1u32..3),
        fair in any::<bool>(),
        steps in proptest::collection::vec((0usize..8, 0u8..4, any::<bool>()), 1..60),
    ) {
        let limits = QueueLimits { concurrency, group_concurrency, throttle: None, fair };
        let names = ["a", "b", "c"];
        let mut usage = Usage::default();
        let mut running: Vec<Option<&str>> = Vec::new();
        for (n, group, finish) in steps {
            if finish && !running.is_empty() {
                let g = running.remove(0);
                usage.release(g);
            }
            let groups: Vec<Option<&str>> = (0..n).map(|i| names.get((i + group as usize) % 4).copied()).collect();
            let c = jobs(&groups);
            let a = admit(&limits, usage.clone(), &c, 4, t(0));
            prop_assert!(a.admitted.len() <= 4);
            usage = a.usage;
            running.extend(a.admitted.iter().map(|&i| c[i].group));
            prop_assert_eq!(usage.running as usize, running.len());
            if let Some(limit) = concurrency {
                prop_assert!(running.len() <= limit as usize);
            }
            if let Some(limit) = group_concurrency {
                for g in names {
                    prop_assert!(running.iter().filter(|r| **r == Some(g)).count() <= limit as usize);
                }
            }
        }
    }
}
