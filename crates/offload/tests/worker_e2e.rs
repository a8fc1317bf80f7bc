//! `offload worker` turns a shell command into a worker: end to end with the real binary.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, bin, signal, wait_for};

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
