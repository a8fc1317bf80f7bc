//! `offload worker` turns a shell command into a worker: end to end with the real binary.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, bin, lines_of, next_line, signal, wait_for};

fn job_state(server: &Server, id: &str) -> serde_json::Value {
    server.cli_json(&["job", "get", id])
}

#[test]
fn a_shell_command_completes_jobs_and_failures_are_retried_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));

    let ok = server.cli_json(&["job", "enqueue", "scripts", "--payload", r#"{"n":21}"#]);
    let ok_id = ok["id"].as_str().unwrap().to_owned();
    let bad = server.cli_json(&[
        "job",
        "enqueue",
        "scripts",
        "--payload",
        r#"{"n":-1}"#,
        "--max-attempts",
        "1",
    ]);
    let bad_id = bad["id"].as_str().unwrap().to_owned();

    // Doubles n from stdin and prints JSON; fails with a message on stderr for negative n.
    let script = r#"read -r input; n=$(echo "$input" | sed 's/[^0-9-]//g');
        if [ "$n" -lt 0 ]; then echo "negative input: $n" >&2; exit 3; fi;
        echo "{\"doubled\": $((n * 2)), \"job\": \"$OFFLOAD_JOB_ID\"}""#;
    let mut worker = Command::new(bin())
        .args([
            "--server",
            &server.url,
            "worker",
            "--queue",
            "scripts",
            "--concurrency",
            "2",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let done = wait_for(Duration::from_secs(20), "the good job to succeed", || {
        let job = job_state(&server, &ok_id);
        (job["state"] == "succeeded").then_some(job)
    });
    assert_eq!(done["result"]["doubled"], 42);
    assert_eq!(done["result"]["job"], ok_id.as_str());
    assert_eq!(done["attempts"][0]["outcome"], "succeeded");

    let dead = wait_for(Duration::from_secs(20), "the bad job to die", || {
        let job = job_state(&server, &bad_id);
        (job["state"] == "dead").then_some(job)
    });
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("negative input: -1"),
        "{dead}"
    );
    assert_eq!(dead["attempts"][0]["outcome"], "failed");

    // SIGTERM stops the worker cleanly.
    signal(worker.id(), "TERM");
    let status = worker.wait().unwrap();
    assert!(status.success(), "worker exit status {status}");
}

#[test]
fn sigterm_lets_the_running_job_finish_before_the_worker_exits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let job = server.cli_json(&["job", "enqueue", "slow", "--payload", "{}"]);
    let id = job["id"].as_str().unwrap().to_owned();
    let marker = dir.path().join("started");
    let script = format!("touch {}; sleep 1; echo '\"finished\"'", marker.display());
    let mut worker = Command::new(bin())
        .args([
            "--server",
            &server.url,
            "worker",
            "--queue",
            "slow",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "the job to start", || {
        marker.exists().then_some(())
    });
    signal(worker.id(), "TERM");
    assert!(worker.wait().unwrap().success());
    let job = job_state(&server, &id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"], "finished");
}

#[test]
fn cli_errors_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    for args in [
        vec!["job", "enqueue", "", "--payload", "{}"],
        vec!["job", "enqueue", "q", "--payload", "{not json"],
        vec!["job", "enqueue", "q", "--delay", "-5s"],
        vec!["job", "get", "00000000-0000-0000-0000-000000000000"],
    ] {
        let out = server.cli(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line expected, got: {stderr}"
        );
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // Nothing was stored by the refused enqueues.
    let list = server.cli_json(&["job", "ls"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    // A server that is not there is one clear line too.
    let out = Command::new(bin())
        .args(["--server", "http://127.0.0.1:9", "queue", "ls"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

/// Starts `offload worker` on `queue` of `server` running `sh -c script`; its log lines come on the receiver.
fn worker(
    server: &Server,
    queue: &str,
    script: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args([
            "--server",
            &server.url,
            "worker",
            "--queue",
            queue,
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    (child, lines)
}

#[test]
fn a_report_waits_for_the_server_to_come_back_while_the_lease_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let mut server = Server::start(&db);
    let job = server.cli_json(&["job", "enqueue", "q", "--payload", "{}", "--timeout", "60s"]);
    let id = job["id"].as_str().unwrap().to_owned();
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    // The command runs until the test lets it finish.
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done; echo '\"done\"'",
        started.display(),
        go.display()
    );
    let (mut worker, lines) = worker(&server, "q", &script);
    wait_for(Duration::from_secs(30), "the job to start", || {
        started.exists().then_some(())
    });

    server.kill_hard();
    std::fs::write(&go, "").unwrap();
    // More failed tries than a worker used to make before it dropped the report (5, over about 4 s).
    for n in 1..=6 {
        next_line(
            &lines,
            Duration::from_secs(30),
            &format!("failed report try {n}"),
            |l| l.contains(&format!("job {id}: cannot report yet")),
        );
    }
    let server = Server::start_on(&db, server.addr());

    let done = wait_for(Duration::from_secs(30), "the job to succeed", || {
        let job = job_state(&server, &id);
        (job["state"] == "succeeded").then_some(job)
    });
    assert_eq!(done["result"], "done");
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "the job ran once: {done}");
    signal(worker.id(), "TERM");
    assert!(worker.wait().unwrap().success());
}

#[test]
fn work_resumes_within_two_seconds_of_the_servers_return() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("offload.db");
    let mut server = Server::start(&db);
    let (mut worker, lines) = worker(&server, "q", "cat >/dev/null; echo 1");
    next_line(
        &lines,
        Duration::from_secs(30),
        "the worker to start",
        |l| l.contains("worker") && l.contains("started"),
    );

    server.kill_hard();
    // Enough failed claims that a doubling backoff without a low cap would now pause 16 s or more.
    for n in 1..=6 {
        next_line(
            &lines,
            Duration::from_secs(60),
            &format!("failed claim {n}"),
            |l| l.contains("cannot claim jobs"),
        );
    }
    let server = Server::start_on(&db, server.addr());
    let back = jiff::Timestamp::now();
    let job = server.cli_json(&["job", "enqueue", "q", "--payload", "{}"]);
    let id = job["id"].as_str().unwrap().to_owned();
    let created: jiff::Timestamp = job["created_at"].as_str().unwrap().parse().unwrap();

    let done = wait_for(Duration::from_secs(30), "the job to be worked", || {
        let job = job_state(&server, &id);
        (job["state"] == "succeeded").then_some(job)
    });
    let claimed: jiff::Timestamp = done["attempts"][0]["started_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The worker's first claim after the return comes within its longest pause (2 s); that claim waits on
    // the server and takes the job as soon as it exists. One second of slack for a busy machine.
    let expected = std::cmp::max(back + jiff::SignedDuration::from_secs(2), created)
        + jiff::SignedDuration::from_secs(1);
    assert!(
        claimed <= expected,
        "claimed at {claimed}, server back at {back}, job created at {created}"
    );
    signal(worker.id(), "TERM");
    assert!(worker.wait().unwrap().success());
}
