//! Flow control end to end with the real binary: `[[queue]]` limits applied at start (and again at every
//! start), `offload queue set`/`get`, groups on enqueue and in lists, debounce, and refusals of bad input.

mod support;

use std::process::Command;

use support::{Server, bin};

const CONFIG: &str = r#"
[[queue]]
name = "emails"
concurrency = 2
throttle = { limit = 100, period = "1s", burst = 10 }
"#;

/// One line on stderr and a failing exit status.
fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn file_limits_apply_at_every_start_and_the_cli_changes_and_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offload.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let db = dir.path().join("offload.db");
    let config_arg = config.to_str().unwrap();
    let mut server = Server::start_with(&db, &["--config", config_arg]);

    let queue = server.cli_json(&["queue", "get", "emails"]);
    assert_eq!(
        queue["limits"],
        serde_json::json!({"concurrency": 2, "throttle": {"limit": 100, "period": 1000, "burst": 10, "per_group": false}, "fair": false}),
        "{queue}"
    );
    let queue = server.cli_json(&[
        "queue",
        "set",
        "emails",
        "--group-concurrency",
        "1",
        "--fair",
        "true",
    ]);
    assert_eq!(queue["limits"]["group_concurrency"], 1, "{queue}");
    assert_eq!(queue["limits"]["concurrency"], 2, "kept: {queue}");
    let text = server.cli(&["queue", "get", "emails"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("concurrency 2, 1 per group, 100 starts per 1s, burst 10, fair"),
        "{text}"
    );

    let job = server.cli_json(&["job", "enqueue", "emails", "--group", "acme"]);
    assert_eq!(job["group"], "acme");
    server.cli_json(&["job", "enqueue", "emails", "--group", "other"]);
    let page = server.cli_json(&["job", "ls", "--group", "acme"]);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["id"], job["id"]);

    // Bad input: one clear line, a failing status, nothing changed.
    for args in [
        &["queue", "set", "emails", "--concurrency", "0"][..],
        &["queue", "set", "emails", "--throttle", "5"],
        &["queue", "set", "emails"],
        &[
            "queue",
            "set",
            "emails",
            "--throttle",
            "none",
            "--per-group",
        ],
    ] {
        let line = refused(&server.cli(args));
        assert!(!line.is_empty(), "{args:?}");
    }
    let long = "g".repeat(129);
    let line = refused(&server.cli(&["job", "enqueue", "emails", "--group", &long]));
    assert!(line.contains("group"), "{line}");
    let queue = server.cli_json(&["queue", "get", "emails"]);
    assert_eq!(queue["limits"]["concurrency"], 2, "{queue}");

    // The file owns the limits of its queues: a restart sets them back to the file's.
    assert!(server.terminate().success());
    let server = Server::start_with(&db, &["--config", config_arg]);
    let queue = server.cli_json(&["queue", "get", "emails"]);
    assert!(
        queue["limits"].get("group_concurrency").is_none(),
        "{queue}"
    );
    assert_eq!(queue["limits"]["fair"], false, "{queue}");
    assert_eq!(queue["limits"]["concurrency"], 2, "{queue}");
}

#[test]
fn a_bad_queue_entry_stops_the_server_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offload.toml");
    std::fs::write(
        &config,
        "[[queue]]\nname = \"emails\"\nthrottle = { limit = 5, period = 0 }\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--database")
        .arg(dir.path().join("offload.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[[queue]] `emails` (line 1)") && stderr.contains("throttle.period"),
        "{stderr}"
    );
}

#[test]
fn debounced_enqueues_make_one_job_with_the_last_payload() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("offload.db"));
    let enqueue = |n: u32| {
        server.cli_json(&[
            "job",
            "enqueue",
            "search",
            "--payload",
            &format!(r#"{{"n":{n}}}"#),
            "--debounce-key",
            "reindex",
            "--debounce-period",
            "1h",
            "--debounce-max-wait",
            "2h",
        ])
    };
    let first = enqueue(1);
    for n in 2..=5 {
        let job = enqueue(n);
        assert_eq!(job["id"], first["id"], "{job}");
        assert_eq!(job["debounced"], true, "{job}");
    }
    let page = server.cli_json(&["job", "ls", "--queue", "search"]);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let job = server.cli_json(&["job", "get", first["id"].as_str().unwrap()]);
    assert_eq!(job["payload"], serde_json::json!({"n": 5}));
    let line = refused(&server.cli(&[
        "job",
        "enqueue",
        "search",
        "--debounce-key",
        "k",
        "--debounce-period",
        "1m",
        "--debounce-max-wait",
        "1s",
    ]));
    assert!(line.contains("debounce.max_wait"), "{line}");
}
