//! Next fire times through every 2026 daylight-saving transition of the zones users asked about, and through
//! calendar edges; then properties of fire-time sequences over random expressions, zones and starts.
//!
//! Expected instants are written in UTC, worked out by hand from each zone's 2026 rules, with the local
//! reading beside them. The policy they prove is the README's "Daylight-saving time" section.

use jiff::Timestamp;
use proptest::prelude::*;

use super::expr::{Cadence, CronExpr};

fn cadence(expr: &str, tz: &str) -> Cadence {
    Cadence::new(CronExpr::parse(expr).unwrap(), tz).unwrap()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The first `expected.len()` fire times strictly after `from`, compared as UTC instants.
#[track_caller]
fn assert_fires(expr: &str, tz: &str, from: &str, expected: &[&str]) {
    let c = cadence(expr, tz);
    let got: Vec<String> = c
        .iter_after(ts(from))
        .take(expected.len())
        .map(|t| t.to_string())
        .collect();
    assert_eq!(got, expected, "`{expr}` in {tz} after {from}");
}

// --- America/New_York: 8 March 02:00 EST -> 03:00 EDT; 1 November 02:00 EDT -> 01:00 EST. ---

#[test]
fn new_york_spring_forward() {
    // Daily 02:30 does not exist on 8 March: it runs once, at 03:00 EDT, then at 02:30 EDT again.
    assert_fires(
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T00:00:00Z",
        &[
            "2026-03-07T07:30:00Z", // 7 Mar 02:30 EST
            "2026-03-08T07:00:00Z", // 8 Mar 03:00 EDT (02:30 skipped forward)
            "2026-03-09T06:30:00Z", // 9 Mar 02:30 EDT
        ],
    );
    // Every 15 minutes: the nonexistent 02:00-02:45 are skipped.
    assert_fires(
        "*/15 * * * *",
        "America/New_York",
        "2026-03-08T06:20:00Z",
        &[
            "2026-03-08T06:30:00Z", // 01:30 EST
            "2026-03-08T06:45:00Z", // 01:45 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T07:15:00Z", // 03:15 EDT
        ],
    );
}

#[test]
fn new_york_fall_back() {
    // Daily 01:30 happens twice on 1 November: it runs once, at the first (EDT).
    assert_fires(
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T00:00:00Z",
        &[
            "2026-10-31T05:30:00Z", // 31 Oct 01:30 EDT
            "2026-11-01T05:30:00Z", // 1 Nov 01:30 EDT (not again at 01:30 EST)
            "2026-11-02T06:30:00Z", // 2 Nov 01:30 EST
        ],
    );
    // Every 15 minutes runs through both passes of 01:00-01:59.
    assert_fires(
        "*/15 * * * *",
        "America/New_York",
        "2026-11-01T04:50:00Z",
        &[
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:15:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:45:00Z", // 01:45 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST
            "2026-11-01T06:15:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T06:45:00Z", // 01:45 EST
            "2026-11-01T07:00:00Z", // 02:00 EST
        ],
    );
}

// --- Europe/London: 29 March 01:00 GMT -> 02:00 BST; 25 October 02:00 BST -> 01:00 GMT. ---

#[test]
fn london_spring_forward() {
    assert_fires(
        "30 1 * * *",
        "Europe/London",
        "2026-03-28T00:00:00Z",
        &[
            "2026-03-28T01:30:00Z", // 28 Mar 01:30 GMT
            "2026-03-29T01:00:00Z", // 29 Mar 02:00 BST (01:30 does not exist)
            "2026-03-30T00:30:00Z", // 30 Mar 01:30 BST
        ],
    );
    // 02:30 exists on the day in London: an ordinary run.
    assert_fires(
        "30 2 * * *",
        "Europe/London",
        "2026-03-29T00:00:00Z",
        &["2026-03-29T01:30:00Z"],
    );
    assert_fires(
        "*/15 * * * *",
        "Europe/London",
        "2026-03-29T00:40:00Z",
        &[
            "2026-03-29T00:45:00Z", // 00:45 GMT
            "2026-03-29T01:00:00Z", // 02:00 BST
            "2026-03-29T01:15:00Z", // 02:15 BST
        ],
    );
}

#[test]
fn london_fall_back() {
    assert_fires(
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T12:00:00Z",
        &[
            "2026-10-25T00:30:00Z", // 25 Oct 01:30 BST, once
            "2026-10-26T01:30:00Z", // 26 Oct 01:30 GMT
        ],
    );
    assert_fires(
        "*/15 * * * *",
        "Europe/London",
        "2026-10-24T23:50:00Z",
        &[
            "2026-10-25T00:00:00Z", // 01:00 BST
            "2026-10-25T00:15:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T00:45:00Z",
            "2026-10-25T01:00:00Z", // 01:00 GMT
            "2026-10-25T01:15:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T01:45:00Z",
            "2026-10-25T02:00:00Z", // 02:00 GMT
        ],
    );
}

// --- Europe/Berlin: 29 March 02:00 CET -> 03:00 CEST; 25 October 03:00 CEST -> 02:00 CET. ---

#[test]
fn berlin_spring_forward() {
    assert_fires(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T00:00:00Z",
        &[
            "2026-03-28T01:30:00Z", // 28 Mar 02:30 CET
            "2026-03-29T01:00:00Z", // 29 Mar 03:00 CEST
            "2026-03-30T00:30:00Z", // 30 Mar 02:30 CEST
        ],
    );
    assert_fires(
        "*/15 * * * *",
        "Europe/Berlin",
        "2026-03-29T00:40:00Z",
        &[
            "2026-03-29T00:45:00Z", // 01:45 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T01:15:00Z",
        ],
    );
}

#[test]
fn berlin_fall_back() {
    assert_fires(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        &[
            "2026-10-25T00:30:00Z", // 25 Oct 02:30 CEST, once
            "2026-10-26T01:30:00Z", // 26 Oct 02:30 CET
        ],
    );
    // 01:30 is before the fold in Berlin: an ordinary run.
    assert_fires(
        "30 1 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        &["2026-10-24T23:30:00Z"],
    );
    assert_fires(
        "*/15 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:50:00Z",
        &[
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:15:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T00:45:00Z",
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T01:15:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T01:45:00Z",
            "2026-10-25T02:00:00Z", // 03:00 CET
        ],
    );
}

// --- Australia/Sydney: 5 April 03:00 AEDT -> 02:00 AEST; 4 October 02:00 AEST -> 03:00 AEDT. ---

#[test]
fn sydney_fall_back_in_april() {
    assert_fires(
        "30 2 * * *",
        "Australia/Sydney",
        "2026-04-04T12:00:00Z",
        &[
            "2026-04-04T15:30:00Z", // 5 Apr 02:30 AEDT, once
            "2026-04-05T16:30:00Z", // 6 Apr 02:30 AEST
        ],
    );
    assert_fires(
        "*/15 * * * *",
        "Australia/Sydney",
        "2026-04-04T14:50:00Z",
        &[
            "2026-04-04T15:00:00Z", // 02:00 AEDT
            "2026-04-04T15:15:00Z",
            "2026-04-04T15:30:00Z",
            "2026-04-04T15:45:00Z",
            "2026-04-04T16:00:00Z", // 02:00 AEST
            "2026-04-04T16:15:00Z",
            "2026-04-04T16:30:00Z",
            "2026-04-04T16:45:00Z",
            "2026-04-04T17:00:00Z", // 03:00 AEST
        ],
    );
}

#[test]
fn sydney_spring_forward_in_october() {
    assert_fires(
        "30 2 * * *",
        "Australia/Sydney",
        "2026-10-02T12:00:00Z",
        &[
            "2026-10-02T16:30:00Z", // 3 Oct 02:30 AEST
            "2026-10-03T16:00:00Z", // 4 Oct 03:00 AEDT
            "2026-10-04T15:30:00Z", // 5 Oct 02:30 AEDT
        ],
    );
    assert_fires(
        "*/15 * * * *",
        "Australia/Sydney",
        "2026-10-03T15:40:00Z",
        &[
            "2026-10-03T15:45:00Z", // 01:45 AEST
            "2026-10-03T16:00:00Z", // 03:00 AEDT
            "2026-10-03T16:15:00Z",
        ],
    );
}

// --- Australia/Lord_Howe, a 30-minute shift: 5 April 02:00 (+11) -> 01:30 (+10:30); 4 October 02:00
// (+10:30) -> 02:30 (+11). ---

#[test]
fn lord_howe_fall_back_by_half_an_hour() {
    assert_fires(
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00Z",
        &[
            "2026-04-04T14:45:00Z", // 5 Apr 01:45 +11, once
            "2026-04-05T15:15:00Z", // 6 Apr 01:45 +10:30
        ],
    );
    assert_fires(
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2026-04-04T14:20:00Z",
        &[
            "2026-04-04T14:30:00Z", // 01:30 +11
            "2026-04-04T14:45:00Z", // 01:45 +11
            "2026-04-04T15:00:00Z", // 01:30 +10:30
            "2026-04-04T15:15:00Z", // 01:45 +10:30
            "2026-04-04T15:30:00Z", // 02:00 +10:30
        ],
    );
}

#[test]
fn lord_howe_spring_forward_by_half_an_hour() {
    assert_fires(
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-02T12:00:00Z",
        &[
            "2026-10-02T15:45:00Z", // 3 Oct 02:15 +10:30
            "2026-10-03T15:30:00Z", // 4 Oct 02:30 +11 (02:15 does not exist)
            "2026-10-04T15:15:00Z", // 5 Oct 02:15 +11
        ],
    );
    // 02:30 exists on the day: an ordinary run at the end of the gap.
    assert_fires(
        "30 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00Z",
        &["2026-10-03T15:30:00Z"],
    );
    assert_fires(
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2026-10-03T15:10:00Z",
        &[
            "2026-10-03T15:15:00Z", // 01:45 +10:30
            "2026-10-03T15:30:00Z", // 02:30 +11
            "2026-10-03T15:45:00Z", // 02:45 +11
        ],
    );
}

// --- Calendar edges. ---

#[test]
fn february_29_fires_only_in_leap_years() {
    assert_fires(
        "0 0 29 2 *",
        "UTC",
        "2026-03-01T00:00:00Z",
        &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
    );
    assert_fires(
        "0 9 29 FEB *",
        "America/New_York",
        "2026-01-01T00:00:00Z",
        &["2028-02-29T14:00:00Z"],
    );
    // The last day of February is the 28th in 2026.
    assert_fires(
        "0 12 L * *",
        "UTC",
        "2026-02-01T00:00:00Z",
        &["2026-02-28T12:00:00Z", "2026-03-31T12:00:00Z"],
    );
    assert_fires(
        "0 12 L 2 *",
        "UTC",
        "2027-03-01T00:00:00Z",
        &["2028-02-29T12:00:00Z"],
    );
}

#[test]
fn december_31_rolls_over_to_january_1() {
    assert_fires(
        "59 23 31 12 *",
        "UTC",
        "2026-06-01T00:00:00Z",
        &["2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"],
    );
    assert_fires(
        "*/30 * * * *",
        "UTC",
        "2026-12-31T23:15:00Z",
        &[
            "2026-12-31T23:30:00Z",
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:30:00Z",
        ],
    );
    assert_fires(
        "@yearly",
        "Europe/Berlin",
        "2026-06-01T00:00:00Z",
        &["2026-12-31T23:00:00Z"], // 1 Jan 2027 00:00 CET
    );
    assert_fires(
        "0 0 1 1 *",
        "Australia/Sydney",
        "2026-06-01T00:00:00Z",
        &["2026-12-31T13:00:00Z"], // 1 Jan 2027 00:00 AEDT
    );
}

// --- Properties over random expressions, zones and starts. ---

const ZONES: [&str; 6] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
];

fn field(max: u32, first: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (1..=max.min(30)).prop_map(|step| format!("*/{step}")),
        (first..=max).prop_map(|v| v.to_string()),
        (first..=max, first..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (first..=max, first..=max).prop_map(|(a, b)| format!("{a},{b}")),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (
        prop::option::of(field(59, 0)),
        field(59, 0),
        field(23, 0),
        prop_oneof![4 => Just("*".to_owned()), 1 => field(28, 1)],
        prop_oneof![4 => Just("*".to_owned()), 1 => field(12, 1)],
        prop_oneof![4 => Just("*".to_owned()), 1 => field(6, 0)],
    )
        .prop_map(|(s, m, h, dom, mon, dow)| match s {
            Some(s) => format!("{s} {m} {h} {dom} {mon} {dow}"),
            None => format!("{m} {h} {dom} {mon} {dow}"),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Fire times strictly increase (so none repeats) and none is at or before the start, across DST changes.
    #[test]
    fn fire_times_strictly_increase_from_the_start(
        expr in expression(),
        zone in prop::sample::select(&ZONES[..]),
        start in 1_767_225_600i64..1_893_456_000, // 2026 to 2030
        nanos in 0i32..1_000_000_000,
    ) {
        let c = cadence(&expr, zone);
        let start = Timestamp::new(start, nanos).unwrap();
        let times: Vec<Timestamp> = c.iter_after(start).take(60).collect();
        prop_assert!(!times.is_empty(), "`{}` never fires", expr);
        prop_assert!(times[0] > start);
        for pair in times.windows(2) {
            prop_assert!(pair[0] < pair[1], "`{}` in {}: {} then {}", expr, zone, pair[0], pair[1]);
        }
        for t in &times {
            prop_assert_eq!(t.subsec_nanosecond(), 0);
        }
        // The next fire time after any instant between two fire times is the later one: none is skipped
        // by restarting the search from an arbitrary instant.
        for pair in times.windows(2) {
            let mid = pair[0].checked_add(pair[1].duration_since(pair[0]) / 2).unwrap();
            prop_assert_eq!(c.next_after(mid), Some(pair[1]));
        }
    }
}
