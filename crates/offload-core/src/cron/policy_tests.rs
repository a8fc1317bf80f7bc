//! The overlap and catch-up policies, the next fire time on replace, and schedule validation.

use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::expr::{Cadence, CronExpr};
use super::policy::*;
use super::schedule::ScheduleSpec;
use crate::spec::Limits;

fn cadence(expr: &str) -> Cadence {
    Cadence::new(CronExpr::parse(expr).unwrap(), "UTC").unwrap()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn rule(policy: CatchUp) -> CatchUpRule {
    CatchUpRule {
        policy,
        window: Duration::from_secs(3600),
        grace: Duration::from_secs(60),
    }
}

fn times(plan: &DuePlan) -> Vec<String> {
    plan.run.iter().map(|t| t.to_string()).collect()
}

#[test]
fn overlap_policies() {
    let idle = ActiveRuns::default();
    let waiting = ActiveRuns {
        waiting: 1,
        running: 0,
    };
    let running = ActiveRuns {
        waiting: 0,
        running: 1,
    };
    let both = ActiveRuns {
        waiting: 1,
        running: 1,
    };
    use OverlapDecision::{Run, Skip};
    let table = [
        (Overlap::Allow, [Run, Run, Run, Run]),
        (Overlap::Skip, [Run, Skip, Skip, Skip]),
        (Overlap::BufferOne, [Run, Skip, Run, Skip]),
    ];
    for (policy, expected) in table {
        let got = [idle, waiting, running, both].map(|a| overlap_decision(policy, a));
        assert_eq!(got, expected, "{policy}");
    }
    assert_eq!(Overlap::default(), Overlap::Skip);
    assert_eq!(CatchUp::default(), CatchUp::Latest);
    assert_eq!("buffer_one".parse::<Overlap>(), Ok(Overlap::BufferOne));
    assert!("sometimes".parse::<CatchUp>().is_err());
}

#[test]
fn nothing_is_due_before_the_next_fire_time() {
    let c = cadence("*/5 * * * *");
    let plan = plan_due(
        &c,
        ts("2026-01-01T10:05:00Z"),
        ts("2026-01-01T10:04:59Z"),
        rule(CatchUp::None),
    );
    assert!(plan.run.is_empty() && plan.missed.is_none());
    assert_eq!(plan.next_fire_at, Some(ts("2026-01-01T10:05:00Z")));
}

#[test]
fn an_on_time_tick_runs_whatever_the_policy() {
    let c = cadence("*/5 * * * *");
    for policy in [CatchUp::None, CatchUp::Latest, CatchUp::All] {
        let plan = plan_due(
            &c,
            ts("2026-01-01T10:05:00Z"),
            ts("2026-01-01T10:05:00.003Z"),
            rule(policy),
        );
        assert_eq!(times(&plan), ["2026-01-01T10:05:00Z"], "{policy}");
        assert_eq!(plan.missed, None);
        assert_eq!(plan.next_fire_at, Some(ts("2026-01-01T10:10:00Z")));
    }
}

#[test]
fn after_an_outage_each_policy_decides_the_late_ticks() {
    // Down from 10:02 to 10:30:45; the ticks 10:05 .. 10:30 are due, 10:30 is within the 60 s grace.
    let c = cadence("*/5 * * * *");
    let (next, now) = (ts("2026-01-01T10:05:00Z"), ts("2026-01-01T10:30:45Z"));
    let none = plan_due(&c, next, now, rule(CatchUp::None));
    assert_eq!(times(&none), ["2026-01-01T10:30:00Z"]);
    assert_eq!(
        none.missed,
        Some(MissedTicks {
            first: ts("2026-01-01T10:05:00Z"),
            last: ts("2026-01-01T10:25:00Z"),
            count: 5
        })
    );
    // With an on-time tick, `latest` needs no late run: the on-time one is the latest.
    assert_eq!(plan_due(&c, next, now, rule(CatchUp::Latest)), none);
    let all = plan_due(&c, next, now, rule(CatchUp::All));
    assert_eq!(all.run.len(), 6);
    assert_eq!(all.missed, None);
    assert_eq!(all.next_fire_at, Some(ts("2026-01-01T10:35:00Z")));

    // Back at 10:33: no tick is on time.
    let now = ts("2026-01-01T10:33:00Z");
    let none = plan_due(&c, next, now, rule(CatchUp::None));
    assert!(none.run.is_empty());
    assert_eq!(none.missed.unwrap().count, 6);
    let latest = plan_due(&c, next, now, rule(CatchUp::Latest));
    assert_eq!(times(&latest), ["2026-01-01T10:30:00Z"]);
    assert_eq!(
        latest.missed,
        Some(MissedTicks {
            first: ts("2026-01-01T10:05:00Z"),
            last: ts("2026-01-01T10:25:00Z"),
            count: 5
        })
    );
}

#[test]
fn catch_up_all_stops_at_its_window() {
    let c = cadence("*/10 * * * *");
    // Down for three hours; the window is one hour.
    let plan = plan_due(
        &c,
        ts("2026-01-01T07:00:00Z"),
        ts("2026-01-01T10:05:00Z"),
        rule(CatchUp::All),
    );
    assert_eq!(
        times(&plan),
        [
            "2026-01-01T09:10:00Z",
            "2026-01-01T09:20:00Z",
            "2026-01-01T09:30:00Z",
            "2026-01-01T09:40:00Z",
            "2026-01-01T09:50:00Z",
            "2026-01-01T10:00:00Z"
        ]
    );
    assert_eq!(
        plan.missed,
        Some(MissedTicks {
            first: ts("2026-01-01T07:00:00Z"),
            last: ts("2026-01-01T09:00:00Z"),
            count: 13
        })
    );
}

#[test]
fn catch_up_all_runs_at_most_its_cap_and_records_the_rest() {
    let c = cadence("* * * * * *");
    let plan = plan_due(
        &c,
        ts("2026-01-01T10:00:00Z"),
        ts("2026-01-01T10:30:00Z"),
        rule(CatchUp::All),
    );
    assert_eq!(plan.run.len(), MAX_CATCH_UP_RUNS);
    assert_eq!(plan.run.last(), Some(&ts("2026-01-01T10:30:00Z")));
    let missed = plan.missed.unwrap();
    assert_eq!(missed.count, 1801 - MAX_CATCH_UP_RUNS as u64);
    assert_eq!(missed.first, ts("2026-01-01T10:00:00Z"));
    assert_eq!(missed.last.duration_until(plan.run[0]).as_secs(), 1);
}

proptest! {
    /// Every due tick gets exactly one fate: the missed record covers the oldest ones, the runs the rest, in
    /// order, and the next fire time is the first after now.
    #[test]
    fn every_due_tick_has_one_fate(
        step in 1u32..30,
        late_secs in 0u64..20_000,
        grace in 0u64..120,
        window in 1u64..5_000,
        policy in prop::sample::select(&[CatchUp::None, CatchUp::Latest, CatchUp::All][..]),
    ) {
        let c = cadence(&format!("*/{step} * * * * *"));
        let next = ts("2026-01-01T00:00:00Z");
        let now = next.checked_add(jiff::SignedDuration::from_secs(late_secs as i64)).unwrap();
        let r = CatchUpRule { policy, window: Duration::from_secs(window), grace: Duration::from_secs(grace) };
        let plan = plan_due(&c, next, now, r);
        let due: Vec<Timestamp> = c.iter_from_fire_time(next).take_while(|t| *t <= now).collect();
        let missed = plan.missed.map_or(0, |m| m.count as usize);
        prop_assert_eq!(missed + plan.run.len(), due.len());
        if let Some(m) = plan.missed {
            prop_assert_eq!(m.first, due[0]);
            prop_assert_eq!(m.last, due[missed - 1]);
        }
        prop_assert_eq!(&plan.run[..], &due[missed..]);
        prop_assert_eq!(plan.next_fire_at, c.next_after(now));
        if policy == CatchUp::Latest && !due.is_empty() {
            prop_assert!(!plan.run.is_empty(), "latest always runs one");
        }
    }
}

#[test]
fn replacing_keeps_or_recomputes_the_next_fire_time() {
    let hourly = cadence("0 * * * *");
    let now = ts("2026-01-01T10:30:00Z");
    assert_eq!(
        next_fire_on_upsert(&hourly, None, now),
        Some(ts("2026-01-01T11:00:00Z"))
    );
    // Same cadence (only the template changed): the persisted time stays, even an overdue one.
    let previous = Replaced {
        cadence: &hourly,
        next_fire_at: Some(ts("2026-01-01T10:00:00Z")),
        last_tick_at: Some(ts("2026-01-01T09:00:00Z")),
    };
    assert_eq!(
        next_fire_on_upsert(&hourly, Some(previous), now),
        Some(ts("2026-01-01T10:00:00Z"))
    );
    // A new cadence starts after now...
    let minutely = cadence("* * * * *");
    assert_eq!(
        next_fire_on_upsert(&minutely, Some(previous), now),
        Some(ts("2026-01-01T10:31:00Z"))
    );
    // ...and after the last recorded tick when the clock went backwards.
    let ahead = Replaced {
        last_tick_at: Some(ts("2026-01-01T12:00:00Z")),
        ..previous
    };
    assert_eq!(
        next_fire_on_upsert(&minutely, Some(ahead), now),
        Some(ts("2026-01-01T12:01:00Z"))
    );
}

#[test]
fn jitter_is_a_share_of_the_jitter() {
    let t = ts("2026-01-01T10:00:00Z");
    assert_eq!(jittered(t, Duration::ZERO, 0.7), t);
    assert_eq!(
        jittered(t, Duration::from_secs(10), 0.5),
        ts("2026-01-01T10:00:05Z")
    );
    assert!(jittered(t, Duration::from_secs(10), 0.999_999) < ts("2026-01-01T10:00:10Z"));
}

fn spec(json: &str) -> ScheduleSpec {
    serde_json::from_str(json).unwrap()
}

fn refused(json: &str) -> String {
    spec(json)
        .validate(
            Some("nightly"),
            &Limits::default(),
            ts("2026-01-01T00:00:00Z"),
        )
        .unwrap_err()
        .field
}

#[test]
fn a_minimal_schedule_gets_the_documented_defaults() {
    let s = spec(r#"{"cron":"0 3 * * *","job":{"queue":"reports"}}"#)
        .validate(
            Some("nightly"),
            &Limits::default(),
            ts("2026-01-01T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(s.name, "nightly");
    assert_eq!(s.cadence.time_zone(), "UTC");
    assert_eq!((s.overlap, s.catch_up), (Overlap::Skip, CatchUp::Latest));
    assert_eq!(s.catch_up_window, DEFAULT_CATCH_UP_WINDOW);
    assert_eq!(s.jitter, Duration::ZERO);
    assert_eq!(s.paused, None);
    assert_eq!(s.job.payload.get(), "null");
    assert_eq!(
        (s.job.max_attempts, s.job.timeout.as_millis()),
        (25, 300_000)
    );
    let job = s.job.new_job(ts("2026-01-01T03:00:00Z")).unwrap();
    assert_eq!(job.queue, "reports");
    assert_eq!(job.run_at, crate::RunAt::At(ts("2026-01-01T03:00:00Z")));
}

#[test]
fn an_over_long_expression_is_refused_before_parsing() {
    // 256 characters that parse (a minute list of zeros); one more, even a space, is refused.
    let long = format!("{}00 * * * *", "0,".repeat(123));
    assert_eq!(long.len(), 256);
    let json = |cron: &str| format!(r#"{{"cron":"{cron}","job":{{"queue":"q"}}}}"#);
    let spec: ScheduleSpec = serde_json::from_str(&json(&long)).unwrap();
    assert!(
        spec.validate(Some("s"), &Limits::default(), ts("2026-01-01T00:00:00Z"))
            .is_ok()
    );
    assert_eq!(refused(&json(&format!(" {long}"))), "cron");
}

#[test]
fn each_bad_field_is_named() {
    let cases = [
        (r#"{"cron":"61 * * * *","job":{"queue":"q"}}"#, "cron"),
        (r#"{"cron":"0 0 30 2 *","job":{"queue":"q"}}"#, "cron"),
        (r#"{"cron":"@reboot","job":{"queue":"q"}}"#, "cron"),
        (
            r#"{"cron":"* * * * *","timezone":"Mars/Base","job":{"queue":"q"}}"#,
            "timezone",
        ),
        (r#"{"cron":"* * * * *","job":{"queue":""}}"#, "job.queue"),
        (
            r#"{"cron":"* * * * *","job":{"queue":"q","max_attempts":0}}"#,
            "job.max_attempts",
        ),
        (
            r#"{"cron":"* * * * *","job":{"queue":"q","timeout":"1ms"}}"#,
            "job.timeout",
        ),
        (
            r#"{"cron":"* * * * *","jitter":"2m","job":{"queue":"q"}}"#,
            "jitter",
        ),
        (
            r#"{"cron":"* * * * *","catch_up_window":"1h","job":{"queue":"q"}}"#,
            "catch_up_window",
        ),
        (
            r#"{"cron":"* * * * *","name":"other","job":{"queue":"q"}}"#,
            "name",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(refused(json), field, "{json}");
    }
    let bad_name = spec(r#"{"cron":"* * * * *","job":{"queue":"q"}}"#)
        .validate(
            Some("has space"),
            &Limits::default(),
            ts("2026-01-01T00:00:00Z"),
        )
        .unwrap_err();
    assert_eq!(bad_name.field, "name");
    assert!(
        serde_json::from_str::<ScheduleSpec>(
            r#"{"cron":"* * * * *","job":{"queue":"q"},"cronn":1}"#
        )
        .is_err()
    );
}

#[test]
fn jitter_up_to_the_interval_is_accepted() {
    let ok = |json: &str| {
        spec(json)
            .validate(Some("s"), &Limits::default(), ts("2026-01-01T00:00:00Z"))
            .is_ok()
    };
    assert!(ok(
        r#"{"cron":"* * * * *","jitter":"1m","job":{"queue":"q"}}"#
    ));
    assert!(ok(
        r#"{"cron":"0 9 * * MON-FRI","jitter":"23h","job":{"queue":"q"}}"#
    ));
    assert!(!ok(
        r#"{"cron":"0 9 * * MON-FRI","jitter":"25h","job":{"queue":"q"}}"#
    ));
    assert!(ok(
        r#"{"cron":"* * * * *","catch_up":"all","catch_up_window":"2h","job":{"queue":"q"}}"#
    ));
}
