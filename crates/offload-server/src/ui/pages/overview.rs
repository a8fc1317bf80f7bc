//! The overview page (`/ui`): every queue with its counts by state, the age of its oldest waiting job, the
//! last hour's throughput as a chart; pause and resume.
//!
//! Invariant: counts come from the store's maintained per-queue counters and the chart from per-minute
//! rows, so the page reads the same amount of data with a million jobs as with ten.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use offload_core::{JobState, Timestamp};

use crate::AppState;
use crate::ui::format::duration;
use crate::ui::layout::{Layout, NoticeQuery, UiError, layout, render};
use crate::ui::session::Csrf;

/// Minutes in the throughput chart.
const CHART_MINUTES: usize = 60;

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    layout: Layout,
    totals: Totals,
    chart: Chart,
    states: Vec<&'static str>,
    queues: Vec<QueueRow>,
}

#[derive(Default)]
struct Totals {
    available: u64,
    running: u64,
    waiting: u64,
    dead: u64,
}

struct QueueRow {
    name: String,
    paused: bool,
    counts: Vec<(&'static str, u64)>,
    oldest: Option<String>,
    done_hour: u64,
    failed_hour: u64,
    /// The queue's limits in words (empty without limits).
    limits: Vec<String>,
}

/// The last hour's attempts per minute, as SVG bars.
pub(crate) struct Chart {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bar_width: u32,
    pub(crate) max: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) bars: Vec<Bar>,
}

/// One minute of the chart (y grows downwards in SVG).
pub(crate) struct Bar {
    pub(crate) x: u32,
    pub(crate) ok_y: u32,
    pub(crate) ok_h: u32,
    pub(crate) fail_y: u32,
    pub(crate) fail_h: u32,
    pub(crate) label: String,
}

/// Builds the chart from per-minute `(succeeded, failed)` totals, oldest first, ending with the current
/// minute that starts at `last_minute`.
pub(crate) fn chart(minutes: &[(u64, u64)], last_minute: Timestamp) -> Chart {
    const HEIGHT: u32 = 100;
    const STEP: u32 = 10;
    let max = minutes.iter().map(|(s, f)| s + f).max().unwrap_or(0);
    let scale = |n: u64| -> u32 {
        if max == 0 {
            0
        } else {
            // Any non-zero minute gets at least one pixel, so a lone failure is visible.
            (((n as f64) / (max as f64) * f64::from(HEIGHT)).round() as u32).max(u32::from(n > 0))
        }
    };
    let count = minutes.len();
    let bars = minutes
        .iter()
        .enumerate()
        .map(|(i, &(ok, failed))| {
            let ok_h = scale(ok);
            let fail_h = scale(failed).min(HEIGHT - ok_h.min(HEIGHT));
            let back = (count - 1 - i) as i64;
            let at = last_minute
                .checked_sub(jiff::SignedDuration::from_mins(back))
                .unwrap_or(last_minute);
            Bar {
                x: i as u32 * STEP,
                ok_y: HEIGHT - ok_h,
                ok_h,
                fail_y: HEIGHT - ok_h - fail_h,
                fail_h,
                label: format!(
                    "{}: {ok} succeeded, {failed} failed",
                    at.strftime("%H:%M UTC")
                ),
            }
        })
        .collect();
    Chart {
        width: count as u32 * STEP,
        height: HEIGHT,
        bar_width: STEP - 2,
        max,
        succeeded: minutes.iter().map(|m| m.0).sum(),
        failed: minutes.iter().map(|m| m.1).sum(),
        bars,
    }
}

/// `GET /ui`: every queue with its counts, the last hour's throughput, pause and resume.
pub(crate) async fn overview(
    State(app): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, UiError> {
    let now = app.engine.now();
    let minute = jiff::SignedDuration::from_mins(1);
    let this_minute = Timestamp::from_second(now.as_second().div_euclid(60) * 60).unwrap_or(now);
    let first_minute = this_minute
        .checked_sub(minute * (CHART_MINUTES as i32 - 1))
        .unwrap_or(this_minute);
    let (queues, throughput) =
        tokio::join!(app.engine.queues(), app.engine.throughput(first_minute));
    let (queues, throughput) = (queues?, throughput?);

    let mut per_minute = vec![(0u64, 0u64); CHART_MINUTES];
    let mut per_queue: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for b in &throughput {
        let offset = b
            .minute
            .duration_since(first_minute)
            .as_secs()
            .div_euclid(60);
        if let Ok(i) = usize::try_from(offset)
            && i < CHART_MINUTES
        {
            per_minute[i].0 += b.succeeded;
            per_minute[i].1 += b.failed;
            let q = per_queue.entry(b.queue.as_str()).or_default();
            q.0 += b.succeeded;
            q.1 += b.failed;
        }
    }
    let mut totals = Totals::default();
    let rows = queues
        .iter()
        .map(|q| {
            let n = |s: JobState| q.counts.get(&s).copied().unwrap_or(0);
            totals.available += n(JobState::Available);
            totals.running += n(JobState::Running);
            totals.waiting += n(JobState::Scheduled) + n(JobState::Retrying);
            totals.dead += n(JobState::Dead);
            let (done_hour, failed_hour) =
                per_queue.get(q.name.as_str()).copied().unwrap_or_default();
            QueueRow {
                name: q.name.clone(),
                paused: q.paused,
                counts: JobState::ALL.iter().map(|s| (s.as_str(), n(*s))).collect(),
                oldest: q
                    .oldest_available_age_ms
                    .map(|ms| duration(std::time::Duration::from_millis(ms))),
                done_hour,
                failed_hour,
                limits: q.limits.phrases(),
            }
        })
        .collect();
    let page = Overview {
        layout: layout(&app, csrf, "/ui", notice.notice()),
        totals,
        chart: chart(&per_minute, this_minute),
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        queues: rows,
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_scales_to_the_busiest_minute() {
        let last: Timestamp = "2026-01-01T12:59:00Z".parse().unwrap();
        let c = chart(&[(0, 0), (50, 50), (1, 0)], last);
        assert_eq!((c.max, c.succeeded, c.failed), (100, 51, 50));
        assert_eq!((c.bars[0].ok_h, c.bars[0].fail_h), (0, 0));
        assert_eq!((c.bars[1].ok_h, c.bars[1].fail_h), (50, 50));
        assert_eq!(c.bars[1].fail_y, 0);
        assert_eq!(c.bars[2].ok_h, 1, "a small minute stays visible");
        assert_eq!(c.bars[2].label, "12:59 UTC: 1 succeeded, 0 failed");
        assert_eq!(c.bars[0].label, "12:57 UTC: 0 succeeded, 0 failed");
    }
}
