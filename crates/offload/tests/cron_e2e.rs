//! Cron with the real binary: a seconds-level schedule from `offload.toml` creates one job per tick, and a
//! server killed with SIGKILL in the middle and restarted neither repeats nor loses a tick. What becomes of
//! the ticks that fell in the downtime is the catch-up policy's decision: `all` runs them late, `none`
//! records them as missed. A restart after SIGKILL takes over the dead process's leases at once, so the
//! schedule keeps firing within a second or two. Also the `offload schedule` commands against a server, and
//! `schedule next` without one.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use support::{Server, every_second, wait_for};

/// Writes an `offload.toml` with one every-second schedule and a 1 s grace, so a few seconds of downtime
/// are an outage rather than a stall.
fn config(dir: &Path, catch_up: &str) -> String {
    let path = dir.join("offload.toml");
    let text = format!(
        r#"
[cron]
grace = "1s"

[[schedule]]
name = "tick"
cron = "* * * * * *"
overlap = "allow"
catch_up = "{catch_up}"
job = {{ queue = "ticks", name = "tick", payload = {{ from = "file" }} }}
"#
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The fire times of every job on the `ticks` queue, with the delay between each tick and its job's creation.
fn jobs(server: &Server) -> Vec<(Timestamp, Duration)> {
    let page = server.cli_json(&["job", "ls", "--queue", "ticks", "--limit", "500"]);
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            assert_eq!(job["schedule"]["name"], "tick", "{job}");
            assert_eq!(job["payload"], serde_json::json!({"from": "file"}));
            let fire_at: Timestamp = job["schedule"]["fire_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let created: Timestamp = job["created_at"].as_str().unwrap().parse().unwrap();
            let lag = Duration::try_from(created.duration_since(fire_at)).unwrap_or_default();
            (fire_at, lag)
        })
        .collect()
}

fn wait_for_jobs(server: &Server, at_least: usize) -> Vec<(Timestamp, Duration)> {
    wait_for(Duration::from_secs(30), "ticks to fire", || {
        let jobs = jobs(server);
        (jobs.len() >= at_least).then_some(jobs)
    })
}

/// Runs the schedule, kills the server after a few ticks, keeps it down for 3 s, restarts it on the same
/// database and configuration, lets it fire a few more, pauses the schedule and returns its jobs and its
/// recorded ticks.
fn run_with_a_crash(catch_up: &str) -> (Vec<(Timestamp, Duration)>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let config = config(dir.path(), catch_up);
    let mut server = Server::start_with(&db, &["--config", &config]);
    let before = wait_for_jobs(&server, 3).len();
    server.kill_hard();
    std::thread::sleep(Duration::from_secs(3));

    let server = Server::start_with(&db, &["--config", &config]);
    wait_for_jobs(&server, before + 3);
    let paused = server.cli(&["schedule", "pause", "tick"]);
    assert!(paused.status.success(), "{paused:?}");
    let schedule = server.cli_json(&["schedule", "get", "tick"]);
    assert_eq!(schedule["paused"], true);
    assert_eq!(schedule["source"], "file");
    (jobs(&server), schedule)
}

#[test]
fn catch_up_all_runs_the_downtime_ticks_once_each() {
    let (jobs, _) = run_with_a_crash("all");
    let fired: Vec<Timestamp> = jobs.iter().map(|(t, _)| *t).collect();
    let unique: BTreeSet<Timestamp> = fired.iter().copied().collect();
    assert_eq!(unique.len(), fired.len(), "no tick fired twice: {fired:?}");
    let first = *unique.first().unwrap();
    let last = *unique.last().unwrap();
    assert_eq!(
        unique.into_iter().collect::<Vec<_>>(),
        every_second(first, last),
        "no tick lost"
    );
    // The ticks of the downtime ran after the restart, late; the others on time.
    assert!(
        jobs.iter().any(|(_, lag)| *lag >= Duration::from_secs(2)),
        "some ticks were caught up after the restart: {jobs:?}"
    );
}

#[test]
fn catch_up_none_records_the_downtime_ticks_as_missed() {
    let (jobs, schedule) = run_with_a_crash("none");
    let fired: BTreeSet<Timestamp> = jobs.iter().map(|(t, _)| *t).collect();
    assert_eq!(fired.len(), jobs.len(), "no tick fired twice");
    let ticks = schedule["recent_ticks"].as_array().unwrap();
    let missed: Vec<&Value> = ticks.iter().filter(|t| t["outcome"] == "missed").collect();
    assert_eq!(missed.len(), 1, "one record for the downtime: {ticks:?}");
    let first_missed: Timestamp = missed[0]["fire_at"].as_str().unwrap().parse().unwrap();
    let last_missed: Timestamp = missed[0]["last_fire_at"]
        .as_str()
        .unwrap_or_else(|| missed[0]["fire_at"].as_str().unwrap())
        .parse()
        .unwrap();
    let missed_ticks = every_second(first_missed, last_missed);
    assert_eq!(missed[0]["count"], missed_ticks.len());
    assert!(!missed_ticks.is_empty());
    // Fired and missed ticks together are every second from the first to the last, each exactly once.
    let mut all: Vec<Timestamp> = fired.iter().copied().chain(missed_ticks).collect();
    all.sort();
    let (first, last) = (all[0], *all.last().unwrap());
    assert_eq!(all, every_second(first, last), "each tick has one fate");
    // No job ran late: `none` runs no tick more than the grace late.
    assert!(
        jobs.iter().all(|(_, lag)| *lag < Duration::from_secs(2)),
        "{jobs:?}"
    );
}

#[test]
fn after_a_sigkill_the_restarted_server_keeps_firing_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let config = config(dir.path(), "none");
    let mut server = Server::start_with(&db, &["--config", &config]);
    wait_for_jobs(&server, 2);
    server.kill_hard();

    // The dead process's leases would run for another 15 s; the restarted one must not wait for them.
    let server = Server::start_with(&db, &["--config", &config]);
    let restarted = Timestamp::now();
    let first_after = wait_for(Duration::from_secs(20), "a tick after the restart", || {
        jobs(&server)
            .into_iter()
            .map(|(fire_at, lag)| fire_at + lag)
            .filter(|created| *created >= restarted)
            .min()
    });
    let waited = Duration::try_from(first_after.duration_since(restarted)).unwrap();
    assert!(
        waited < Duration::from_secs(2),
        "the first tick after the restart came {waited:?} after it"
    );
}

#[test]
fn the_schedule_commands_drive_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let ok = |args: &[&str]| {
        let out = server.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let put = ok(&[
        "schedule",
        "put",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--queue",
        "reports",
        "--payload",
        r#"{"kind":"full"}"#,
        "--jitter",
        "1m",
    ]);
    assert!(
        put.starts_with("created schedule nightly, next fire "),
        "{put}"
    );
    let again = ok(&[
        "schedule",
        "put",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--queue",
        "reports",
    ]);
    assert!(again.starts_with("replaced schedule nightly"), "{again}");
    let list = ok(&["schedule", "ls"]);
    assert!(
        list.starts_with("NAME") && list.contains("nightly") && list.contains("Europe/Berlin"),
        "{list}"
    );

    let triggered = server.cli_json(&["schedule", "trigger", "nightly"]);
    let job_id = triggered["job_id"].as_str().unwrap().to_owned();
    let job = server.cli_json(&["job", "get", &job_id]);
    assert_eq!(job["schedule"]["name"], "nightly");
    assert_eq!(job["queue"], "reports");
    let details = ok(&["schedule", "get", "nightly"]);
    assert!(
        details.contains("next fire times:") && details.contains(&job_id),
        "{details}"
    );
    assert!(ok(&["schedule", "pause", "nightly"]).starts_with("paused schedule nightly"));
    assert!(ok(&["schedule", "resume", "nightly"]).starts_with("resumed schedule nightly"));
    assert_eq!(
        ok(&["schedule", "rm", "nightly"]).trim(),
        "deleted schedule nightly"
    );

    // Refusals: one `error:` line naming the field, exit status 2 (invalid) or 1 (not found).
    let bad = server.cli(&[
        "schedule",
        "put",
        "x",
        "--cron",
        "* 25 * * *",
        "--queue",
        "q",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("hour field `25`"),
        "{stderr}"
    );
    let missing = server.cli(&["schedule", "get", "nightly"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn schedule_next_works_without_a_server() {
    let out = std::process::Command::new(support::bin())
        .args([
            "--server",
            "http://127.0.0.1:9",
            "schedule",
            "next",
            "30 2 * * *",
        ])
        .args([
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T12:00:00Z",
            "--count",
            "2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "2026-03-08T03:00:00-04:00 (2026-03-08T07:00:00Z)\n2026-03-09T02:30:00-04:00 (2026-03-09T06:30:00Z)\n"
    );
    let bad = std::process::Command::new(support::bin())
        .args(["schedule", "next", "0 0 30 2 *"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("never fires"));
}
