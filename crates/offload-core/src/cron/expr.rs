//! Cron expressions and time zones: parsing with errors that name the wrong part, and fire times.
//!
//! Parsing and evaluation are croner's (pinned, see the workspace manifest); this module only adds what croner
//! does not say: *which* part of an expression is wrong, and a refusal of names in the wrong field (croner
//! would read `MON` in the month field as January). Invariant: a [`Cadence`] always holds an expression croner
//! accepted and a time zone from the bundled IANA database, so computing fire times never fails for a reason
//! other than "no fire time left before the year 5000".

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// One part (field) of a cron expression, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronPart {
    /// Seconds, 0-59 (first of six fields).
    Second,
    /// Minutes, 0-59.
    Minute,
    /// Hours, 0-23.
    Hour,
    /// Day of the month, 1-31, `L`, `W`.
    DayOfMonth,
    /// Month, 1-12 or JAN-DEC.
    Month,
    /// Day of the week, 0-7 (0 and 7 are Sunday) or SUN-SAT, `L`, `#`.
    DayOfWeek,
}

impl CronPart {
    /// The part's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CronPart::Second => "second",
            CronPart::Minute => "minute",
            CronPart::Hour => "hour",
            CronPart::DayOfMonth => "day-of-month",
            CronPart::Month => "month",
            CronPart::DayOfWeek => "day-of-week",
        }
    }

    /// What the part accepts, for messages.
    fn accepts(self) -> &'static str {
        match self {
            CronPart::Second | CronPart::Minute => "0-59",
            CronPart::Hour => "0-23",
            CronPart::DayOfMonth => "1-31, L (last day) or NW (weekday nearest day N)",
            CronPart::Month => "1-12 or JAN-DEC",
            CronPart::DayOfWeek => {
                "0-7 (0 and 7 are Sunday) or SUN-SAT, N#K (K-th), NL or N#L (last)"
            }
        }
    }

    /// Position in croner's six-field form (seconds first).
    fn position(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CronPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// Nothing was given.
    #[error("must not be empty")]
    Empty,
    /// Not five or six fields.
    #[error(
        "has {0} fields; use 5 (minute hour day-of-month month day-of-week), 6 (second first) or a nickname \
         such as @daily"
    )]
    FieldCount(usize),
    /// An `@` word that is not a known nickname.
    #[error("unknown nickname `{0}`; use @yearly, @annually, @monthly, @weekly, @daily or @hourly")]
    Nickname(String),
    /// One part is wrong.
    #[error("the {part} field `{text}` is invalid: {reason} (accepts {accepts})", accepts = part.accepts())]
    Part {
        /// Which part.
        part: CronPart,
        /// The part as written.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The parts are each fine but croner refused the whole.
    #[error("is not a valid cron expression: {0}")]
    Invalid(String),
}

/// The nicknames croner expands.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The one parser configuration: seconds optional (5 or 6 fields), no year field, POSIX weekdays.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// A parsed cron expression, as the user wrote it (trimmed). Cheap to clone.
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    cron: Arc<Cron>,
}

/// Most distinct expressions kept parsed; the cache starts over when full.
const CACHE_SIZE: usize = 4096;

/// Expressions already accepted, by text. Parsing (with the per-part checks) costs about 100 µs, and stores
/// rebuild every due schedule's expression on each enqueuer pass; the same text always parses the same way,
/// so it is parsed once per process.
fn cache() -> &'static Mutex<HashMap<String, Arc<Cron>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Cron>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl CronExpr {
    /// Parses a 5-field (minute first) or 6-field (second first) expression, or a nickname.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let text = text.trim();
        if let Some(cron) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(text) {
            return Ok(Self {
                text: text.to_owned(),
                cron: cron.clone(),
            });
        }
        if text.is_empty() {
            return Err(ExprError::Empty);
        }
        if text.starts_with('@') {
            if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(text)) {
                return Err(ExprError::Nickname(text.to_owned()));
            }
        } else {
            check_parts(text)?;
        }
        let cron = Arc::new(
            parser()
                .parse(text)
                .map_err(|e| ExprError::Invalid(croner_message(&e)))?,
        );
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(text.to_owned(), cron.clone());
        Ok(Self {
            text: text.to_owned(),
            cron,
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// croner's parse of the expression: the value sets that decide fire times (for describing them).
    pub(crate) fn pattern(&self) -> &croner::CronPattern {
        &self.cron.pattern
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks each field on its own, so an error names the part it is in.
fn check_parts(text: &str) -> Result<(), ExprError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let parts: &[CronPart] = match fields.len() {
        5 => &[
            CronPart::Minute,
            CronPart::Hour,
            CronPart::DayOfMonth,
            CronPart::Month,
            CronPart::DayOfWeek,
        ],
        6 => &[
            CronPart::Second,
            CronPart::Minute,
            CronPart::Hour,
            CronPart::DayOfMonth,
            CronPart::Month,
            CronPart::DayOfWeek,
        ],
        n => return Err(ExprError::FieldCount(n)),
    };
    for (&part, &field) in parts.iter().zip(&fields) {
        let fail = |reason: String| ExprError::Part {
            part,
            text: field.to_owned(),
            reason,
        };
        check_names(part, field).map_err(fail)?;
        // The field alone, every other field `*` (seconds `0`): croner's verdict on this part only.
        let mut probe = ["0", "*", "*", "*", "*", "*"];
        probe[part.position()] = field;
        parser()
            .parse(&probe.join(" "))
            .map_err(|e| fail(croner_message(&e)))?;
    }
    Ok(())
}

/// Refuses letters a part does not accept (croner replaces month and weekday names anywhere in the text).
fn check_names(part: CronPart, field: &str) -> Result<(), String> {
    let upper = field.to_ascii_uppercase();
    for word in upper
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let ok = match part {
            CronPart::Month => MONTHS.contains(&word),
            CronPart::DayOfWeek => WEEKDAYS.contains(&word) || word == "L",
            CronPart::DayOfMonth => word == "L" || word == "W",
            _ => false,
        };
        if ok {
            continue;
        }
        let hint = if WEEKDAYS.contains(&word) {
            "weekday names belong in the day-of-week field"
        } else if MONTHS.contains(&word) {
            "month names belong in the month field"
        } else {
            "unknown name"
        };
        return Err(format!("`{word}`: {hint}"));
    }
    Ok(())
}

/// croner's message without its prefixes and final period.
fn croner_message(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let text = match e {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

/// Why a time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an IANA time zone; use a name such as UTC, Europe/Berlin or America/New_York"
)]
pub struct UnknownTimeZone(pub String);

/// Looks up an IANA time zone in the database bundled into the binary (never the host's, so every machine
/// computes the same fire times). Returns the zone and its canonical name.
pub fn time_zone(name: &str) -> Result<(TimeZone, String), UnknownTimeZone> {
    let name = name.trim();
    let unknown = || UnknownTimeZone(name.to_owned());
    if name.is_empty() {
        return Err(unknown());
    }
    let tz = jiff::tz::db().get(name).map_err(|_| unknown())?;
    let canonical = tz.iana_name().unwrap_or(name).to_owned();
    Ok((tz, canonical))
}

/// When a schedule fires: an expression evaluated in a time zone.
#[derive(Debug, Clone)]
pub struct Cadence {
    expr: CronExpr,
    tz: TimeZone,
    tz_name: String,
}

impl PartialEq for Cadence {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr && self.tz_name == other.tz_name
    }
}

impl Cadence {
    /// An expression in a time zone.
    pub fn new(expr: CronExpr, tz_name: &str) -> Result<Self, UnknownTimeZone> {
        let (tz, tz_name) = time_zone(tz_name)?;
        Ok(Self { expr, tz, tz_name })
    }

    /// The expression.
    pub fn expr(&self) -> &CronExpr {
        &self.expr
    }

    /// The canonical IANA name of the time zone.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// The first fire time strictly after `t`, or `None` when there is none before the year 5000.
    ///
    /// Fire times are whole seconds. Over a daylight-saving change they follow croner's documented policy:
    /// in a gap (clocks jump forward), an expression with a single second, minute and hour fires once at the
    /// first instant after the gap, and any other expression skips the times that do not exist; in a fold
    /// (clocks go back), the former fires once, at the first of the two instants, and the latter fires at
    /// every instant that matches, in both passes.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.expr
            .cron
            .find_next_occurrence(&t.to_zoned(self.tz.clone()), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// Fire times strictly after `t`, in order.
    pub fn iter_after(&self, t: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        std::iter::successors(self.next_after(t), move |&prev| self.next_after(prev))
    }

    /// `first` (which must itself be a fire time, such as a persisted next fire time), then the fire times
    /// after it, in order.
    pub fn iter_from_fire_time(&self, first: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        std::iter::successors(Some(first), move |&prev| self.next_after(prev))
    }

    /// The last fire time strictly before `t`, if any (after the year 1).
    pub fn prev_before(&self, t: Timestamp) -> Option<Timestamp> {
        // croner searches from whole seconds; a fractional `t` is rounded up so a fire time at its whole
        // second (which is before `t`) is found.
        let start = if t.subsec_nanosecond() == 0 {
            t
        } else {
            t.checked_add(jiff::SignedDuration::from_nanos(
                1_000_000_000 - i64::from(t.subsec_nanosecond()),
            ))
            .ok()?
        };
        self.expr
            .cron
            .find_previous_occurrence(&start.to_zoned(self.tz.clone()), false)
            .ok()
            .map(|z| z.timestamp())
            .filter(|p| *p < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part_of(text: &str) -> CronPart {
        match CronExpr::parse(text) {
            Err(ExprError::Part { part, .. }) => part,
            other => panic!("{text}: expected a part error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_documented_forms() {
        for text in [
            "* * * * *",
            "*/15 * * * *",
            "0 9 * * MON-FRI",
            "0 0 1 JAN,JUL *",
            "30 2 * * *",
            "*/5 * * * * *",
            "0 0 12 * * sun",
            "@hourly",
            "@Daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "0 0 L * *",
            "0 0 * * 5#L",
            "0 0 * * FRI#2",
            "0 0 15W * *",
            "0 0 1-10/3 * *",
            "0 0 * * 7",
            "  5 4 * * *  ",
        ] {
            let expr = CronExpr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(expr.as_str(), text.trim());
        }
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let cases = [
            ("61 * * * *", CronPart::Minute),
            ("* 25 * * *", CronPart::Hour),
            ("* * 0 * *", CronPart::DayOfMonth),
            ("* * 32 * *", CronPart::DayOfMonth),
            ("* * * 13 *", CronPart::Month),
            ("* * * * 8", CronPart::DayOfWeek),
            ("*/0 * * * *", CronPart::Minute),
            ("1-2-3 * * * *", CronPart::Minute),
            ("0/5 * * * *", CronPart::Minute),
            ("60 * * * * *", CronPart::Second),
            ("0 0 * * MON#6", CronPart::DayOfWeek),
            ("0 0 * MON *", CronPart::Month),
            ("0 0 * * JAN", CronPart::DayOfWeek),
            ("0 0 * JUNE *", CronPart::Month),
            ("x * * * *", CronPart::Minute),
        ];
        for (text, part) in cases {
            assert_eq!(part_of(text), part, "{text}");
        }
        let message = CronExpr::parse("* 25 * * *").unwrap_err().to_string();
        assert_eq!(
            message,
            "the hour field `25` is invalid: number out of bounds (accepts 0-23)"
        );
    }

    #[test]
    fn shape_errors() {
        assert_eq!(CronExpr::parse("  "), Err(ExprError::Empty));
        assert_eq!(CronExpr::parse("* * *"), Err(ExprError::FieldCount(3)));
        assert_eq!(
            CronExpr::parse("* * * * * * *"),
            Err(ExprError::FieldCount(7))
        );
        assert_eq!(
            CronExpr::parse("@reboot"),
            Err(ExprError::Nickname("@reboot".into()))
        );
    }

    #[test]
    fn time_zones_come_from_the_bundled_database() {
        assert_eq!(time_zone("Europe/Berlin").unwrap().1, "Europe/Berlin");
        assert_eq!(time_zone("UTC").unwrap().1, "UTC");
        assert_eq!(
            time_zone(" Australia/Lord_Howe ").unwrap().1,
            "Australia/Lord_Howe"
        );
        assert!(time_zone("Mars/Olympus_Mons").is_err());
        assert!(time_zone("").is_err());
        assert!(time_zone("+02:00").is_err());
    }

    #[test]
    fn fire_times_are_strictly_after_and_whole_seconds() {
        let every_second = Cadence::new(CronExpr::parse("* * * * * *").unwrap(), "UTC").unwrap();
        let t: Timestamp = "2026-05-01T10:00:00.5Z".parse().unwrap();
        assert_eq!(
            every_second.next_after(t).unwrap().to_string(),
            "2026-05-01T10:00:01Z"
        );
        let exact: Timestamp = "2026-05-01T10:00:01Z".parse().unwrap();
        assert_eq!(
            every_second.next_after(exact).unwrap().to_string(),
            "2026-05-01T10:00:02Z"
        );
        let after: Vec<String> = every_second
            .iter_after(exact)
            .take(2)
            .map(|t| t.to_string())
            .collect();
        assert_eq!(after, ["2026-05-01T10:00:02Z", "2026-05-01T10:00:03Z"]);
    }

    #[test]
    fn an_impossible_date_has_no_fire_time() {
        let never = Cadence::new(CronExpr::parse("0 0 30 2 *").unwrap(), "UTC").unwrap();
        assert_eq!(
            never.next_after("2026-01-01T00:00:00Z".parse().unwrap()),
            None
        );
    }
}
