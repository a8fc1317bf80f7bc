//! Cron expressions in words, for people: `*/5 * * * *` reads "Every 5 minutes", `0 9 * * 1-5` "At 09:00,
//! Monday through Friday".
//!
//! Invariant: a description is exact or absent. It is phrased from croner's own parse of the expression (the
//! value sets that decide the fire times), so it cannot disagree with them; whatever has no short exact
//! phrase here (`L` except alone in the day-of-month field, `W`, `#`, the `+` prefix, long irregular lists,
//! several seconds) gets `None`, and callers show the expression alone. Times are wall-clock times in the
//! schedule's time zone, 24-hour.
//!
//! croner has a `describe` of its own; it is not used because it guesses steps from the values and so can
//! be wrong (`0-30/5 * * * *` would read "every 5 minutes").

use croner::{CronComponent, CronPattern};

use crate::cron::expr::CronExpr;

/// Most fire times of a day listed one by one ("At 09:00, 12:00 and 17:30").
const MAX_TIMES: usize = 6;
/// Most separate runs of hours, days or months named in one phrase.
const MAX_RUNS: usize = 3;
/// Most single values listed in one phrase ("at minutes 0, 20 and 45").
const MAX_VALUES: usize = 6;

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The expression in words ("Every 15 minutes from 09:00 through 17:45, Monday through Friday"), or `None`
/// when it has no short exact phrase (show the expression alone then).
pub fn describe(expr: &CronExpr) -> Option<String> {
    let p = expr.pattern();
    let time = time_phrase(
        values(&p.seconds, 0, 59)?,
        values(&p.minutes, 0, 59)?,
        values(&p.hours, 0, 23)?,
    )?;
    let Days { day, month } = day_and_month(p, last_day_field(expr.as_str()))?;
    let mut text = time.text;
    if time.fixed && day.is_none() {
        text.push_str(" every day");
    }
    for part in [day, month].into_iter().flatten() {
        text.push_str(", ");
        text.push_str(&part);
    }
    Some(text)
}

/// The values one field matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Set {
    /// Every value of the field's range.
    Any,
    /// `min`, `min + n`, `min + 2n`, … through the end of the range, where `n` divides the range's size (so
    /// the distance between two matches is always `n`, also across the wrap-around).
    Every(u16),
    /// These values, ascending (a proper, non-empty subset of the range).
    Values(Vec<u16>),
}

impl Set {
    /// The matched values, ascending.
    fn list(&self, min: u16, max: u16) -> Vec<u16> {
        match self {
            Set::Any => (min..=max).collect(),
            Set::Every(n) => (min..=max).step_by(usize::from(*n)).collect(),
            Set::Values(v) => v.clone(),
        }
    }
}

/// The set of a field whose values run from `min` to `max`; `None` when it uses `L`, `W` or `#`.
fn values(c: &CronComponent, min: u16, max: u16) -> Option<Set> {
    if c.has_modifiers() {
        return None;
    }
    let v: Vec<u16> = c.values().into_iter().filter(|x| *x <= max).collect();
    let size = max - min + 1;
    if v.is_empty() {
        return None;
    }
    if v.len() == usize::from(size) {
        return Some(Set::Any);
    }
    if v.len() >= 2 && v[0] == min {
        let n = v[1] - v[0];
        let regular = (min..=max).step_by(usize::from(n)).eq(v.iter().copied());
        if n > 1 && size.is_multiple_of(n) && regular {
            return Some(Set::Every(n));
        }
    }
    Some(Set::Values(v))
}

/// Consecutive values as `(first, last)` runs.
fn runs(values: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == v => *last = v,
            _ => out.push((v, v)),
        }
    }
    out
}

/// `a`, `a and b`, `a, b and c`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn clock(h: u16, m: u16, s: u16) -> String {
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The time-of-day part, and whether it is a list of fixed times (which "every day" may follow).
struct TimePhrase {
    text: String,
    fixed: bool,
}

fn phrase(text: String) -> Option<TimePhrase> {
    Some(TimePhrase { text, fixed: false })
}

fn time_phrase(s: Set, m: Set, h: Set) -> Option<TimePhrase> {
    // Several times a minute: only around the clock.
    let sec = match s {
        Set::Values(v) if v.len() == 1 => v[0],
        Set::Any if m == Set::Any && h == Set::Any => return phrase("Every second".into()),
        Set::Every(n) if m == Set::Any && h == Set::Any => {
            return phrase(format!("Every {n} seconds"));
        }
        _ => return None,
    };
    let hours = h.list(0, 23);
    let minutes = m.list(0, 59);
    // A few times a day: list them.
    if m != Set::Any && h != Set::Any && hours.len() * minutes.len() <= MAX_TIMES {
        let times: Vec<String> = hours
            .iter()
            .flat_map(|&hh| minutes.iter().map(move |&mm| clock(hh, mm, sec)))
            .collect();
        return Some(TimePhrase {
            text: format!("At {}", join(&times)),
            fixed: true,
        });
    }
    let at_second = if sec == 0 {
        String::new()
    } else {
        format!(", at second {sec}")
    };
    // Hour by hour, from the first fire time of a run of hours to the last.
    let during = |first_minute: u16, last_minute: u16| -> Option<String> {
        let hour_runs = runs(&hours);
        if hour_runs.len() > MAX_RUNS {
            return None;
        }
        let spans: Vec<String> = hour_runs
            .iter()
            .map(|&(a, b)| {
                format!(
                    "from {} through {}",
                    clock(a, first_minute, sec),
                    clock(b, last_minute, sec)
                )
            })
            .collect();
        Some(join(&spans))
    };
    match (&m, &h) {
        (Set::Any, Set::Any) => phrase(format!("Every minute{at_second}")),
        (Set::Any, _) => phrase(format!("Every minute {}", during(0, 59)?)),
        (Set::Every(n), Set::Any) => phrase(format!("Every {n} minutes{at_second}")),
        (Set::Every(n), _) => phrase(format!("Every {n} minutes {}", during(0, 60 - n)?)),
        (Set::Values(v), Set::Any) if sec == 0 && v.len() == 1 => phrase(if v[0] == 0 {
            "Every hour, on the hour".to_owned()
        } else {
            format!("Every hour, at minute {}", v[0])
        }),
        (Set::Values(v), Set::Every(n)) if sec == 0 && v.len() == 1 => phrase(if v[0] == 0 {
            format!("Every {n} hours, on the hour")
        } else {
            format!("Every {n} hours, at minute {}", v[0])
        }),
        (Set::Values(v), Set::Values(_))
            if v.len() == 1 && runs(&hours).iter().all(|(a, b)| a < b) =>
        {
            phrase(format!("Every hour {}", during(v[0], v[0])?))
        }
        (Set::Values(v), Set::Any) if sec == 0 && v.len() <= MAX_VALUES => {
            let list: Vec<String> = v.iter().map(u16::to_string).collect();
            phrase(format!("Every hour, at minutes {}", join(&list)))
        }
        _ => None,
    }
}

/// True when the day-of-month field is exactly `L` (the last day of the month).
fn last_day_field(text: &str) -> bool {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let dom = match fields.len() {
        5 => fields[2],
        6 => fields[3],
        _ => return false,
    };
    dom.eq_ignore_ascii_case("L")
}

/// The days part and the months part of a description (each absent when it restricts nothing).
struct Days {
    day: Option<String>,
    month: Option<String>,
}

fn day_and_month(p: &CronPattern, last_day: bool) -> Option<Days> {
    if p.matches_dom_and_dow() {
        return None;
    }
    let months = values(&p.months, 1, 12)?;
    let month = month_phrase(&months)?;
    let dow_star = p.is_dow_wildcard();
    let dom_star = p.is_dom_wildcard();
    let dow = if dow_star {
        Set::Any
    } else {
        values(&p.days_of_week, 0, 6)?
    };
    if last_day {
        // `L` beside a weekday would read "the last day of the month and every …": left as it is.
        return dow_star.then(|| Days {
            day: Some("on the last day of the month".to_owned()),
            month,
        });
    }
    let dom = if dom_star {
        Set::Any
    } else {
        values(&p.days, 1, 31)?
    };
    // croner matches a day when either field matches, unless one of them is `*` (then the other decides).
    let day = match (dom_star, dow_star) {
        (true, true) => None,
        (true, false) => weekday_phrase(&dow),
        (false, true) => {
            // "on January 1" reads better than "on day 1 of the month, in January".
            if let (Set::Values(d), Set::Values(m)) = (&dom, &months)
                && d.len() == 1
                && m.len() == 1
            {
                return Some(Days {
                    day: Some(format!("on {} {}", MONTHS[usize::from(m[0]) - 1], d[0])),
                    month: None,
                });
            }
            day_of_month_phrase(&dom)?
        }
        (false, false) => match (day_of_month_phrase(&dom)?, weekday_items(&dow)) {
            (Some(days), Some(weekdays)) => {
                Some(format!("{days} and on every {}", join(&weekdays)))
            }
            // One of them matches every day, so every day matches.
            _ => None,
        },
    };
    Some(Days { day, month })
}

/// Weekdays as people list them, Monday first: `["Monday through Friday"]`, `["Saturday", "Sunday"]`,
/// `["Monday", "Wednesday", "Friday"]`; `None` when every day matches. Sunday is 0 (croner has already read
/// 7 as 0).
fn weekday_items(dow: &Set) -> Option<Vec<String>> {
    if *dow == Set::Any {
        return None;
    }
    // Monday-first positions, so that a weekend is one run.
    let mut positions: Vec<u16> = dow.list(0, 6).iter().map(|d| (d + 6) % 7).collect();
    positions.sort_unstable();
    let name = |pos: u16| WEEKDAYS[usize::from((pos + 1) % 7)].to_owned();
    let mut items = Vec::new();
    for (a, b) in runs(&positions) {
        match b - a {
            0 => items.push(name(a)),
            1 => items.extend([name(a), name(b)]),
            _ => items.push(format!("{} through {}", name(a), name(b))),
        }
    }
    Some(items)
}

/// The days of the week alone: "Monday through Friday" or "on Monday and Thursday"; `None` when every day
/// matches.
fn weekday_phrase(dow: &Set) -> Option<String> {
    let items = weekday_items(dow)?;
    match items.as_slice() {
        [range] if range.contains(" through ") => Some(range.clone()),
        _ => Some(format!("on {}", join(&items))),
    }
}

/// "on day 1 of the month", "on days 1 and 15 of the month", "on days 1 through 7 of the month"; `None`
/// inside when every day matches.
fn day_of_month_phrase(dom: &Set) -> Option<Option<String>> {
    if *dom == Set::Any {
        return Some(None);
    }
    let days = dom.list(1, 31);
    let day_runs = runs(&days);
    if day_runs.len() > MAX_RUNS {
        return None;
    }
    let mut items = Vec::new();
    for (a, b) in day_runs {
        match b - a {
            0 => items.push(a.to_string()),
            1 => items.extend([a.to_string(), b.to_string()]),
            _ => items.push(format!("{a} through {b}")),
        }
    }
    let noun = if days.len() == 1 { "day" } else { "days" };
    Some(Some(format!("on {noun} {} of the month", join(&items))))
}

/// "in January", "in January and July", "in March through May"; `Some(None)` when every month matches,
/// `None` when the months are too scattered to name briefly.
fn month_phrase(months: &Set) -> Option<Option<String>> {
    if *months == Set::Any {
        return Some(None);
    }
    let list = months.list(1, 12);
    let name = |m: u16| MONTHS[usize::from(m) - 1].to_owned();
    let month_runs = runs(&list);
    let items: Vec<String> = if month_runs.len() <= MAX_RUNS {
        month_runs
            .into_iter()
            .flat_map(|(a, b)| match b - a {
                0 => vec![name(a)],
                1 => vec![name(a), name(b)],
                _ => vec![format!("{} through {}", name(a), name(b))],
            })
            .collect()
    } else if list.len() <= MAX_VALUES {
        list.into_iter().map(name).collect()
    } else {
        return None;
    };
    Some(Some(format!("in {}", join(&items))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Option<String> {
        describe(&CronExpr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    #[test]
    fn common_forms_read_as_words() {
        let cases = [
            // Minutes and hours.
            ("* * * * *", "Every minute"),
            ("*/5 * * * *", "Every 5 minutes"),
            ("*/15 * * * *", "Every 15 minutes"),
            ("0,30 * * * *", "Every 30 minutes"),
            ("0 * * * *", "Every hour, on the hour"),
            ("@hourly", "Every hour, on the hour"),
            ("15 * * * *", "Every hour, at minute 15"),
            ("0,20,45 * * * *", "Every hour, at minutes 0, 20 and 45"),
            ("0 */2 * * *", "Every 2 hours, on the hour"),
            ("30 */3 * * *", "Every 3 hours, at minute 30"),
            // Fixed times.
            ("0 9 * * *", "At 09:00 every day"),
            ("30 2 * * *", "At 02:30 every day"),
            ("@daily", "At 00:00 every day"),
            ("0 9,17 * * *", "At 09:00 and 17:00 every day"),
            ("0,30 9 * * *", "At 09:00 and 09:30 every day"),
            (
                "0 */5 * * *",
                "At 00:00, 05:00, 10:00, 15:00 and 20:00 every day",
            ),
            (
                "0 */4 * * *",
                "At 00:00, 04:00, 08:00, 12:00, 16:00 and 20:00 every day",
            ),
            // Windows of hours.
            ("* 9 * * *", "Every minute from 09:00 through 09:59"),
            ("* 9-17 * * *", "Every minute from 09:00 through 17:59"),
            (
                "*/15 9-17 * * 1-5",
                "Every 15 minutes from 09:00 through 17:45, Monday through Friday",
            ),
            (
                "*/10 8-11,13-16 * * *",
                "Every 10 minutes from 08:00 through 11:50 and from 13:00 through 16:50",
            ),
            ("5 9-17 * * *", "Every hour from 09:05 through 17:05"),
            // Days of the week.
            ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
            ("0 9 * * MON-FRI", "At 09:00, Monday through Friday"),
            ("0 9 * * mon,thu", "At 09:00, on Monday and Thursday"),
            ("0 9 * * 1,3,5", "At 09:00, on Monday, Wednesday and Friday"),
            ("0 10 * * 6,0", "At 10:00, on Saturday and Sunday"),
            ("0 10 * * 6-7", "At 10:00, on Saturday and Sunday"),
            ("0 0 * * 5-7", "At 00:00, Friday through Sunday"),
            ("0 0 * * 7", "At 00:00, on Sunday"),
            ("@weekly", "At 00:00, on Sunday"),
            ("0 0 * * 0-6", "At 00:00 every day"),
            (
                "0 8 * * 1-5,0",
                "At 08:00, on Monday through Friday and Sunday",
            ),
            // Days of the month and months.
            ("0 0 1 * *", "At 00:00, on day 1 of the month"),
            ("@monthly", "At 00:00, on day 1 of the month"),
            ("0 0 1,15 * *", "At 00:00, on days 1 and 15 of the month"),
            ("0 6 1-7 * *", "At 06:00, on days 1 through 7 of the month"),
            ("0 0 L * *", "At 00:00, on the last day of the month"),
            (
                "0 0 1 JAN,JUL *",
                "At 00:00, on day 1 of the month, in January and July",
            ),
            ("@yearly", "At 00:00, on January 1"),
            ("0 12 25 12 *", "At 12:00, on December 25"),
            ("0 9 * 3-5 1", "At 09:00, on Monday, in March through May"),
            ("*/5 * * 12 *", "Every 5 minutes, in December"),
            (
                "0 0 * 1,3,5,7,9,11 *",
                "At 00:00 every day, in January, March, May, July, September and November",
            ),
            // Both day fields: either one matches.
            (
                "0 0 13 * 5",
                "At 00:00, on day 13 of the month and on every Friday",
            ),
            (
                "0 0 1 * 1-5",
                "At 00:00, on day 1 of the month and on every Monday through Friday",
            ),
            ("0 0 1-31 * 1", "At 00:00 every day"),
            // Seconds.
            ("* * * * * *", "Every second"),
            ("*/5 * * * * *", "Every 5 seconds"),
            ("0 */5 * * * *", "Every 5 minutes"),
            ("30 * * * * *", "Every minute, at second 30"),
            ("15 */5 * * * *", "Every 5 minutes, at second 15"),
            ("15 30 9 * * *", "At 09:30:15 every day"),
            ("0 0 12 * * sun", "At 12:00, on Sunday"),
        ];
        for (text, expected) in cases {
            assert_eq!(words(text).as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn what_has_no_exact_phrase_is_left_as_it_is() {
        for text in [
            // Steps that do not divide the hour (the gap across the hour differs).
            "*/7 * * * *",
            "0-30/5 * * * *",
            // Too many separate windows or times.
            "* */2 * * *",
            "0,10,20,30,40,50,55 * * * *",
            "0 0 */2 * *",
            // Modifiers.
            "0 0 * * 5#L",
            "0 0 * * FRI#2",
            "0 0 15W * *",
            "0 0 L * 1",
            "0 0 * * 5L",
            // Several seconds within a restricted minute.
            "*/10 0 9 * * *",
            "0,20 * * * * *",
            "30 5 * * * *",
        ] {
            assert_eq!(words(text), None, "{text}");
        }
    }

    /// Listed times are the fire times croner computes (two weeks of them).
    #[test]
    fn fixed_times_agree_with_the_fire_times() {
        use crate::cron::expr::Cadence;
        let start: jiff::Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
        for (text, hours_minutes) in [
            ("0 9,17 * * *", vec!["09:00", "17:00"]),
            (
                "0 */5 * * *",
                vec!["00:00", "05:00", "10:00", "15:00", "20:00"],
            ),
            ("5 9-11 * * *", vec!["09:05", "10:05", "11:05"]),
        ] {
            let cadence = Cadence::new(CronExpr::parse(text).unwrap(), "UTC").unwrap();
            let fired: std::collections::BTreeSet<String> = cadence
                .iter_after(start)
                .take(14 * hours_minutes.len())
                .map(|t| t.strftime("%H:%M").to_string())
                .collect();
            let expected: std::collections::BTreeSet<String> =
                hours_minutes.iter().map(|s| s.to_string()).collect();
            assert_eq!(fired, expected, "{text}");
        }
    }
}
