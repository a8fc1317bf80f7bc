//! What the client commands print: compact aligned tables for people, the server's JSON for scripts.
//!
//! Invariant: the functions that render text are pure (they return strings), so every layout is unit-tested;
//! only [`print`] and [`print_json`] touch standard output.

use std::io::{self, Write};

use jiff::{Timestamp, Unit};
use offload_core::api::QueueInfo;
use offload_core::flow::admission::WaitingFor;
use offload_core::flow::limits::QueueLimits;
use offload_core::{Job, JobState};
use offload_sdk::Enqueued;
use serde::Serialize;

/// Longest cell shown in a table before it is cut with `…` (ids are 36).
const MAX_CELL: usize = 48;
/// Longest error shown in an attempts table.
const MAX_ERROR_CELL: usize = 72;

/// Writes `text` (plus a final newline when missing) to standard output.
pub(crate) fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes `value` as pretty JSON to standard output.
pub(crate) fn print_json<T: Serialize>(value: &T) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    print(&text)
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Pad on the right (text).
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// A table of text cells, rendered with columns two spaces apart and no trailing white space.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings, all left-aligned.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            align: vec![Align::Left; header.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the given columns (for numbers).
    pub(crate) fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Adds a row; control characters become spaces so a cell never breaks the layout. Missing cells are
    /// empty; extra ones are dropped.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells
            .into_iter()
            .take(self.header.len())
            .map(|c| clean(&c))
            .collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The rendered table, one line per row after the heading, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - width(cell));
                match self.align[i] {
                    Align::Left => {
                        text.push_str(cell);
                        text.push_str(&pad);
                    }
                    Align::Right => {
                        text.push_str(&pad);
                        text.push_str(cell);
                    }
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Replaces control characters (newlines, tabs, escapes) with spaces.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Cuts `text` to at most `max` characters, ending in `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// An instant to the second, RFC 3339 in UTC.
pub(crate) fn time(ts: Timestamp) -> String {
    ts.round(Unit::Second).unwrap_or(ts).to_string()
}

/// A duration in milliseconds as its two largest units: `850ms`, `45s`, `3m 12s`, `2h 5m`, `3d 4h`.
pub(crate) fn age(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let units = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = units
        .iter()
        .position(|(n, _)| *n > 0)
        .unwrap_or(units.len() - 1);
    units[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The jobs of one page as a table.
pub(crate) fn job_table(jobs: &[Job]) -> String {
    let mut table = Table::new(&[
        "ID", "QUEUE", "NAME", "STATE", "ATTEMPT", "PRIORITY", "RUN AT",
    ])
    .right(&[4, 5]);
    for job in jobs {
        table.row(vec![
            job.id.to_string(),
            cut(&job.queue, MAX_CELL),
            cut(job.name.as_deref().unwrap_or("-"), MAX_CELL),
            state(job),
            format!("{}/{}", job.attempt, job.max_attempts),
            job.priority.to_string(),
            time(job.run_at),
        ]);
    }
    table.render()
}

fn state(job: &Job) -> String {
    if job.cancel_requested && job.state == JobState::Running {
        "running (cancel requested)".to_owned()
    } else {
        job.state.to_string()
    }
}

/// One job in full: its fields, then its attempt history when present.
pub(crate) fn job_details(job: &Job) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("id", job.id.to_string()),
        ("queue", job.queue.clone()),
        ("name", job.name.clone().unwrap_or_else(|| "-".into())),
        ("state", state(job)),
        (
            "attempt",
            format!("{} of {}", job.attempt, job.max_attempts),
        ),
        ("priority", job.priority.to_string()),
        ("timeout", job.timeout.to_string()),
        ("run at", time(job.run_at)),
        ("created", time(job.created_at)),
    ];
    let optional = [
        ("attempted", job.attempted_at.map(time)),
        ("finished", job.finished_at.map(time)),
        ("lease until", job.lease_expires_at.map(time)),
        ("worker", job.worker_id.clone()),
        ("idempotency key", job.idempotency_key.clone()),
        ("group", job.group.clone()),
        ("debounce key", job.debounce_key.clone()),
        ("waiting for", job.waiting_for.as_ref().map(waiting_for)),
        (
            "progress",
            job.progress.as_ref().map(|p| match &p.message {
                Some(m) => format!("{}% {m}", p.percent),
                None => format!("{}%", p.percent),
            }),
        ),
    ];
    fields.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    if !job.tags.is_empty() {
        fields.push((
            "tags",
            job.tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    if let Some(target) = &job.target {
        fields.push(("target", format!("{} {}", target.method, target.url)));
    }
    fields.push(("payload", job.payload.get().to_owned()));
    if let Some(result) = &job.result {
        fields.push(("result", result.get().to_owned()));
    }
    if let Some(error) = &job.last_error {
        fields.push(("last error", error.clone()));
    }
    let key_width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in &fields {
        // Multi-line values (errors, pretty payloads) are indented under their key.
        let value = value
            .trim_end()
            .replace('\n', &format!("\n{:width$}  ", "", width = key_width));
        out.push_str(&format!(
            "{:width$}  {value}\n",
            format!("{key}:"),
            width = key_width
        ));
    }
    if let Some(attempts) = job.attempts.as_ref().filter(|a| !a.is_empty()) {
        let mut table =
            Table::new(&["#", "STARTED", "FINISHED", "WORKER", "OUTCOME", "ERROR"]).right(&[0]);
        for a in attempts {
            table.row(vec![
                a.attempt.to_string(),
                time(a.started_at),
                a.finished_at.map(time).unwrap_or_else(|| "-".into()),
                cut(a.worker_id.as_deref().unwrap_or("-"), MAX_CELL),
                a.outcome.as_str().to_owned(),
                cut(&clean(a.error.as_deref().unwrap_or("")), MAX_ERROR_CELL),
            ]);
        }
        out.push_str("\nattempts:\n");
        out.push_str(&table.render());
    }
    out
}

/// The line printed after `job enqueue`.
pub(crate) fn enqueued(e: &Enqueued) -> String {
    let job = &e.job;
    let when = match job.state {
        JobState::Scheduled => format!(", runs at {}", time(job.run_at)),
        _ => String::new(),
    };
    if e.debounced {
        format!(
            "debounced into waiting job {} on {} ({}{when})",
            job.id, job.queue, job.state
        )
    } else if e.replayed {
        format!(
            "job {} already existed for this idempotency key ({}{when})",
            job.id, job.state
        )
    } else {
        format!(
            "enqueued job {} on {} ({}{when})",
            job.id, job.queue, job.state
        )
    }
}

/// The line printed after a job command that changed a job.
pub(crate) fn job_line(verb: &str, job: &Job) -> String {
    format!("{verb} job {} (now {})", job.id, state(job))
}

/// Queues as a table with their job counts.
pub(crate) fn queue_table(queues: &[QueueInfo]) -> String {
    let mut header = vec!["QUEUE", "STATUS"];
    let counted = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];
    let headings: Vec<String> = counted.iter().map(|s| s.as_str().to_uppercase()).collect();
    header.extend(headings.iter().map(String::as_str));
    header.push("OLDEST");
    let numbers: Vec<usize> = (2..2 + counted.len()).collect();
    let mut table = Table::new(&header).right(&numbers);
    for q in queues {
        let mut row = vec![
            cut(&q.name, MAX_CELL),
            if q.paused { "paused" } else { "active" }.to_owned(),
        ];
        row.extend(
            counted
                .iter()
                .map(|s| q.counts.get(s).copied().unwrap_or(0).to_string()),
        );
        row.push(
            q.oldest_available_age_ms
                .map(age)
                .unwrap_or_else(|| "-".into()),
        );
        table.row(row);
    }
    table.render()
}

/// Why a due job does not start yet, in words.
pub(crate) fn waiting_for(w: &WaitingFor) -> String {
    match w {
        WaitingFor::Concurrency => "the queue's concurrency limit".into(),
        WaitingFor::GroupConcurrency => "its group's concurrency limit".into(),
        WaitingFor::Throttle { until } => format!("the throttle, until {}", time(*until)),
    }
}

/// A queue's limits in one line (`-` when it has none).
pub(crate) fn limits_line(l: &QueueLimits) -> String {
    let phrases = l.phrases();
    if phrases.is_empty() {
        "-".into()
    } else {
        phrases.join(", ")
    }
}

/// One queue: status, counts, limits, usage and the groups with most available jobs.
pub(crate) fn queue_details(q: &QueueInfo) -> String {
    let count = |s: JobState| q.counts.get(&s).copied().unwrap_or(0);
    let mut out = format!(
        "queue:      {}\nstatus:     {}\njobs:       {} available, {} scheduled, {} running, {} retrying\nlimits:     {}\n",
        q.name,
        if q.paused { "paused" } else { "active" },
        count(JobState::Available),
        count(JobState::Scheduled),
        count(JobState::Running),
        count(JobState::Retrying),
        limits_line(&q.limits),
    );
    if let Some(u) = &q.usage {
        let running = match q.limits.concurrency {
            Some(c) => format!("{} of {c}", u.running),
            None => u.running.to_string(),
        };
        out.push_str(&format!(
            "running:    {running} ({} groups running)\n",
            u.groups_running
        ));
        if let Some(at) = u.throttle_next_at {
            out.push_str(&format!("throttle:   next start at {}\n", time(at)));
        }
        if !u.top_groups.is_empty() {
            let mut table = Table::new(&["GROUP", "AVAILABLE", "RUNNING"]).right(&[1, 2]);
            for g in &u.top_groups {
                table.row(vec![
                    cut(&g.group, MAX_CELL),
                    g.available.to_string(),
                    g.running.to_string(),
                ]);
            }
            out.push_str("\ngroups with most available jobs:\n");
            out.push_str(&table.render());
        }
    }
    out
}

/// The line printed after pausing or resuming a queue.
pub(crate) fn queue_line(q: &QueueInfo) -> String {
    format!(
        "queue {} is {}",
        q.name,
        if q.paused { "paused" } else { "active" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn job(json: &str) -> Job {
        let mut base: serde_json::Value = serde_json::from_str(
            r#"{"id":"01900000-0000-7000-8000-000000000001","queue":"emails","state":"available",
            "payload":{"to":"a@b"},"priority":0,"attempt":1,"max_attempts":25,
            "backoff":{"base":1000,"cap":3600000,"jitter":0.2},"timeout":300000,
            "run_at":"2026-06-01T12:00:00.123Z","created_at":"2026-06-01T11:59:00Z"}"#,
        )
        .unwrap();
        let extra: serde_json::Value = serde_json::from_str(json).unwrap();
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let mut t = Table::new(&["A", "LONG HEADING", "N"]).right(&[2]);
        t.row(vec!["x".into(), "y".into(), "7".into()]);
        t.row(vec!["wider\tcell".into(), String::new(), "1234".into()]);
        t.row(vec!["short".into()]);
        assert_eq!(
            t.render(),
            "A           LONG HEADING     N\n\
             x           y                7\n\
             wider cell                1234\n\
             short\n"
        );
    }

    #[test]
    fn cells_are_cut_and_counted_in_characters() {
        assert_eq!(cut("héllo", 5), "héllo");
        assert_eq!(cut("héllo wörld", 6), "héllo…");
        let mut t = Table::new(&["É", "X"]);
        t.row(vec!["ééé".into(), "x".into()]);
        assert_eq!(t.render(), "É    X\nééé  x\n");
    }

    #[test]
    fn ages_show_two_units() {
        let cases = [
            (0, "0ms"),
            (850, "850ms"),
            (45_000, "45s"),
            (192_000, "3m 12s"),
            (3_600_000, "1h"),
            (7_500_000, "2h 5m"),
            (273_600_000, "3d 4h"),
            (86_400_000 + 5_000, "1d"),
        ];
        for (ms, text) in cases {
            assert_eq!(age(ms), text, "{ms}");
        }
    }

    #[test]
    fn job_lists_show_one_line_per_job() {
        let jobs = [
            job(r#"{"name":"welcome"}"#),
            job(r#"{"state":"running","cancel_requested":true,"priority":-5}"#),
        ];
        assert_eq!(
            job_table(&jobs),
            "ID                                    QUEUE   NAME     STATE                       ATTEMPT  PRIORITY  RUN AT\n\
             01900000-0000-7000-8000-000000000001  emails  welcome  available                      1/25         0  2026-06-01T12:00:00Z\n\
             01900000-0000-7000-8000-000000000001  emails  -        running (cancel requested)     1/25        -5  2026-06-01T12:00:00Z\n"
        );
    }

    #[test]
    fn job_details_list_fields_then_attempts() {
        let j = job(
            r#"{"state":"retrying","tags":{"env":"prod","team":"growth"},"last_error":"boom\nline 2",
            "attempts":[{"attempt":1,"started_at":"2026-06-01T12:00:01Z","finished_at":"2026-06-01T12:00:02Z",
            "worker_id":"w1","outcome":"failed","error":"boom\nline 2"}]}"#,
        );
        let text = job_details(&j);
        assert!(
            text.starts_with("id:          01900000-0000-7000-8000-000000000001\n"),
            "{text}"
        );
        assert!(text.contains("\ntimeout:     5m\n"), "{text}");
        assert!(
            text.contains("\ntags:        env=prod team=growth\n"),
            "{text}"
        );
        assert!(text.contains("\npayload:     {\"to\":\"a@b\"}\n"), "{text}");
        assert!(
            text.contains("\nlast error:  boom\n             line 2\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "attempts:\n\
             #  STARTED               FINISHED              WORKER  OUTCOME  ERROR\n\
             1  2026-06-01T12:00:01Z  2026-06-01T12:00:02Z  w1      failed   boom line 2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn queues_show_counts_by_state() {
        let counts: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut busy = counts.clone();
        busy.insert(JobState::Available, 1200);
        busy.insert(JobState::Dead, 3);
        let queues = [
            QueueInfo {
                name: "emails".into(),
                paused: false,
                counts: busy,
                oldest_available_age_ms: Some(192_000),
                limits: Default::default(),
                usage: None,
            },
            QueueInfo {
                name: "reports".into(),
                paused: true,
                counts,
                oldest_available_age_ms: None,
                limits: Default::default(),
                usage: None,
            },
        ];
        assert_eq!(
            queue_table(&queues),
            "QUEUE    STATUS  AVAILABLE  SCHEDULED  RUNNING  RETRYING  SUCCEEDED  DEAD  CANCELLED  OLDEST\n\
             emails   active       1200          0        0         0          0     3          0  3m 12s\n\
             reports  paused          0          0        0         0          0     0          0  -\n"
        );
        assert_eq!(queue_line(&queues[1]), "queue reports is paused");
    }

    #[test]
    fn enqueue_lines_tell_new_from_replayed() {
        let new = Enqueued {
            job: job("{}"),
            replayed: false,
            debounced: false,
        };
        assert_eq!(
            enqueued(&new),
            "enqueued job 01900000-0000-7000-8000-000000000001 on emails (available)"
        );
        let later = Enqueued {
            job: job(r#"{"state":"scheduled"}"#),
            replayed: true,
            debounced: false,
        };
        assert_eq!(
            enqueued(&later),
            "job 01900000-0000-7000-8000-000000000001 already existed for this idempotency key \
             (scheduled, runs at 2026-06-01T12:00:00Z)"
        );
    }

    #[test]
    fn a_queue_shows_its_limits_usage_and_top_groups() {
        let q: QueueInfo = serde_json::from_value(serde_json::json!({
            "name": "emails", "paused": false,
            "counts": {"available": 12, "running": 3},
            "limits": {"concurrency": 10, "group_concurrency": 2,
                       "throttle": {"limit": 5, "period": 1000, "burst": 2, "per_group": true}, "fair": true},
            "usage": {"running": 3, "groups_running": 2,
                      "top_groups": [{"group": "acme", "available": 9, "running": 2}]}
        }))
        .unwrap();
        let text = queue_details(&q);
        assert!(
            text.contains(
                "limits:     concurrency 10, 2 per group, 5 starts per 1s, burst 2, per group, fair"
            ),
            "{text}"
        );
        assert!(
            text.contains("running:    3 of 10 (2 groups running)"),
            "{text}"
        );
        assert!(text.contains("acme"), "{text}");
        assert_eq!(limits_line(&QueueLimits::default()), "-");
    }

    #[test]
    fn a_debounced_enqueue_says_so() {
        let e = Enqueued {
            job: job(r#"{"state":"scheduled"}"#),
            replayed: false,
            debounced: true,
        };
        assert!(enqueued(&e).starts_with("debounced into waiting job"));
    }
}
