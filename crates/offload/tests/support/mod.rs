//! Runs the real `offload` binary for end-to-end tests: a server on 127.0.0.1 with a SQLite file in a temp
//! dir, and CLI invocations against it.

#![allow(dead_code)] // each test file uses a different subset of these helpers

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_offload")
}

/// A running `offload serve` process, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) db: PathBuf,
    /// The node id the server announced (its identity in leader elections).
    pub(crate) node: String,
}

impl Server {
    /// Starts a server on a free loopback port with the given database file; waits until it listens.
    pub(crate) fn start(db: &Path) -> Server {
        Self::start_with(db, &[])
    }

    /// Like [`Server::start`], with extra `serve` arguments.
    pub(crate) fn start_with(db: &Path, extra: &[&str]) -> Server {
        Self::launch(db, "127.0.0.1:0", extra)
    }

    /// Starts `offload serve` on `listen` with `db` and `extra` arguments; waits until it listens.
    fn launch(db: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--database"])
            .arg(db)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn offload serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (url, node) = loop {
            assert!(Instant::now() < deadline, "server did not start in time");
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read stderr");
            if let Some(rest) = line.strip_prefix("offload listening on ") {
                let url = rest.split_whitespace().next().expect("url").to_owned();
                let node = rest
                    .rsplit_once("node ")
                    .map(|(_, n)| n.trim_end_matches(')').to_owned())
                    .unwrap_or_default();
                break (url, node);
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Server {
            child,
            url,
            db: db.to_owned(),
            node,
        }
    }

    /// Sends SIGKILL: the process dies at once, with no chance to flush anything.
    pub(crate) fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        self.child.wait().expect("wait for server")
    }

    /// Runs a CLI command against this server.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .output()
            .expect("run offload cli")
    }

    /// Runs a CLI command with `--json` and parses its stdout; panics with stderr when it fails.
    pub(crate) fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(bin())
            .arg("--server")
            .arg(&self.url)
            .arg("--json")
            .args(args)
            .output()
            .expect("run offload cli");
        assert!(
            out.status.success(),
            "offload {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "offload {args:?} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal by name with the system's `kill`.
pub(crate) fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every second from `first` to `last`: what an every-second schedule's ticks must be, each exactly once.
pub(crate) fn every_second(first: jiff::Timestamp, last: jiff::Timestamp) -> Vec<jiff::Timestamp> {
    std::iter::successors(Some(first), |t| {
        t.checked_add(jiff::SignedDuration::from_secs(1)).ok()
    })
    .take_while(|t| *t <= last)
    .collect()
}

/// A free TCP address on 127.0.0.1, for a server that must come back on the same address after a restart
/// (its workers keep the URL they were started with). The port lies below the kernel's ephemeral range, so
/// while the server is down no other program's `127.0.0.1:0` can be given it, and no client's connection
/// attempt can take it as its own local port.
pub(crate) fn free_loopback_addr() -> String {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000.min(ephemeral_start / 2);
    for _ in 0..1000 {
        let port = fastrand::u16(low..ephemeral_start);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free port on 127.0.0.1 below {ephemeral_start}");
}

impl Server {
    /// Like [`Server::start_with`], listening on `listen` (e.g. the address of a server that was stopped, to
    /// bring it back where its clients expect it).
    pub(crate) fn start_on(db: &Path, listen: &str) -> Server {
        Self::launch(db, listen, &[])
    }

    /// The `IP:PORT` this server listens on.
    pub(crate) fn addr(&self) -> &str {
        self.url.trim_start_matches("http://").trim_end_matches('/')
    }
}

/// The lines a child writes to a pipe, as they come (read on a thread of their own, so the child never blocks
/// on a full pipe).
pub(crate) fn lines_of(
    pipe: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            // When nobody listens any more, keep draining anyway so the child never blocks.
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for the next line of `lines` that `wanted` accepts (skipping the others); panics after `timeout`
/// with `what`.
pub(crate) fn next_line(
    lines: &std::sync::mpsc::Receiver<String>,
    timeout: Duration,
    what: &str,
    mut wanted: impl FnMut(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}
