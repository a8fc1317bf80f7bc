//! One job's command as a child process: payload on standard input, standard output kept (up to a cap) as the
//! result, the tail of standard error kept as the error.
//!
//! Invariants: the child runs in its own process group (Unix), so a terminal's Ctrl-C reaches only the worker
//! and stopping a job stops everything its command started; reading its output never blocks the worker for
//! long after the child exited, even when a grandchild keeps the pipes open; a dropped [`Running`] kills the
//! child.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use offload_core::ClaimedJob;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest standard output kept as a result.
pub(super) const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// How much of the end of standard error is kept as a failure's error.
pub(super) const STDERR_TAIL_BYTES: usize = 4096;
/// After the child exited, how long to wait for its pipes to close (a grandchild may hold them open).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// A started command.
#[derive(Debug)]
pub(super) struct Running {
    child: Child,
    /// Process id, which is also the process group id.
    pid: Option<u32>,
    io: JoinHandle<Captured>,
    stop_io: CancellationToken,
}

/// What the command wrote.
#[derive(Debug, Default)]
pub(super) struct Captured {
    /// Standard output, up to [`MAX_RESULT_BYTES`].
    pub(super) stdout: Vec<u8>,
    /// True when standard output was longer than [`MAX_RESULT_BYTES`] (the rest was discarded).
    pub(super) stdout_overflow: bool,
    /// The last [`STDERR_TAIL_BYTES`] of standard error.
    pub(super) stderr_tail: Vec<u8>,
    /// True when standard error was longer than what was kept.
    pub(super) stderr_cut: bool,
}

impl Running {
    /// Starts `program` with `args` for `job`: payload on standard input, job details in the environment.
    pub(super) fn spawn(program: &str, args: &[String], job: &ClaimedJob) -> io::Result<Self> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env("OFFLOAD_JOB_ID", job.id.to_string())
            .env("OFFLOAD_JOB_QUEUE", &job.queue)
            .env("OFFLOAD_JOB_ATTEMPT", job.attempt.to_string())
            .env("OFFLOAD_JOB_MAX_ATTEMPTS", job.max_attempts.to_string());
        match &job.name {
            Some(name) => command.env("OFFLOAD_JOB_NAME", name),
            None => command.env_remove("OFFLOAD_JOB_NAME"),
        };
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn()?;
        let pid = child.id();
        let stop_io = CancellationToken::new();
        let io = tokio::spawn(capture(
            child.stdin.take(),
            job.payload.get().as_bytes().to_vec(),
            child.stdout.take(),
            child.stderr.take(),
            stop_io.clone(),
        ));
        Ok(Self {
            child,
            pid,
            io,
            stop_io,
        })
    }

    /// Waits for the command to exit. Cancel-safe: call it again after dropping the future.
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stops the command: SIGTERM to its process group, SIGKILL after `grace` if it is still running (and then
    /// to whatever it left behind in its group).
    pub(super) async fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.signal(Signal::Terminate);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.signal(Signal::Kill);
                // Without process groups (or if signalling failed), kill the child itself.
                let _ = self.child.start_kill();
                self.child.wait().await
            }
        };
        self.signal(Signal::Kill);
        status
    }

    #[cfg(unix)]
    fn signal(&mut self, signal: Signal) {
        use rustix::process::{Pid, kill_process_group};
        let Some(pid) = self
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw)
        else {
            return;
        };
        let signal = match signal {
            Signal::Terminate => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        };
        // The group may be gone already (ESRCH): nothing left to stop.
        let _ = kill_process_group(pid, signal);
    }

    #[cfg(not(unix))]
    fn signal(&mut self, _signal: Signal) {
        let _ = self.child.start_kill();
    }

    /// What the command wrote; call after it exited. Waits at most [`OUTPUT_GRACE`] for the pipes to close.
    pub(super) async fn output(self) -> Captured {
        let Running { io, stop_io, .. } = self;
        let mut io = io;
        match tokio::time::timeout(OUTPUT_GRACE, &mut io).await {
            Ok(captured) => captured.unwrap_or_default(),
            Err(_) => {
                stop_io.cancel();
                io.await.unwrap_or_default()
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Terminate,
    Kill,
}

async fn capture(
    stdin: Option<ChildStdin>,
    payload: Vec<u8>,
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
    stop: CancellationToken,
) -> Captured {
    let write = async {
        if let Some(mut stdin) = stdin {
            // A command that does not read its input (broken pipe) is fine; dropping `stdin` closes it.
            tokio::select! {
                _ = stdin.write_all(&payload) => {}
                _ = stop.cancelled() => {}
            }
        }
    };
    let (_, (stdout, stdout_overflow), (stderr_tail, stderr_cut)) = tokio::join!(
        write,
        read_head(stdout, MAX_RESULT_BYTES, &stop),
        read_tail(stderr, STDERR_TAIL_BYTES, &stop)
    );
    Captured {
        stdout,
        stdout_overflow,
        stderr_tail,
        stderr_cut,
    }
}

/// Reads to the end (or until `stop`), handing each chunk read to `keep`.
async fn read_chunks(
    reader: Option<impl AsyncRead + Unpin>,
    stop: &CancellationToken,
    mut keep: impl FnMut(&[u8]),
) {
    let Some(mut reader) = reader else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            n = reader.read(&mut buf) => n,
            _ = stop.cancelled() => break,
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(n) => keep(&buf[..n]),
        }
    }
}

/// Reads to the end (or until `stop`), keeping the first `cap` bytes; true when there was more.
async fn read_head(
    reader: Option<impl AsyncRead + Unpin>,
    cap: usize,
    stop: &CancellationToken,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut overflow = false;
    read_chunks(reader, stop, |chunk| {
        let room = cap - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        overflow |= chunk.len() > room;
    })
    .await;
    (kept, overflow)
}

/// Reads to the end (or until `stop`), keeping the last `cap` bytes; true when earlier bytes were dropped.
async fn read_tail(
    reader: Option<impl AsyncRead + Unpin>,
    cap: usize,
    stop: &CancellationToken,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    read_chunks(reader, stop, |chunk| {
        kept.extend_from_slice(chunk);
        // Trim in bulk, not per read, so a chatty command costs amortised O(1) per byte.
        if kept.len() > 2 * cap {
            kept.drain(..kept.len() - cap);
            cut = true;
        }
    })
    .await;
    if kept.len() > cap {
        kept.drain(..kept.len() - cap);
        cut = true;
    }
    (kept, cut)
}

/// The error text of a kept standard-error tail: valid UTF-8 (a character cut at the start is dropped), white
/// space trimmed, `…` in front when earlier output was dropped. Empty when the command wrote nothing.
pub(super) fn tail_text(tail: &[u8], cut: bool) -> String {
    let tail = if cut {
        // Skip UTF-8 continuation bytes (10xxxxxx) of a character whose start was dropped.
        let skip = tail
            .iter()
            .take(3)
            .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
            .count();
        &tail[skip..]
    } else {
        tail
    };
    let text = String::from_utf8_lossy(tail);
    let text = text.trim();
    if cut && !text.is_empty() {
        format!("…{text}")
    } else {
        text.to_owned()
    }
}

/// A job's result from its command's standard output: the JSON value when the output is valid JSON, otherwise
/// the output as a JSON string (one trailing newline removed); none when the output is empty (or overflowed).
pub(super) fn result_from_stdout(stdout: &[u8], overflow: bool) -> Option<Box<RawValue>> {
    if overflow {
        return None;
    }
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return None;
    }
    if let Ok(value) = serde_json::from_str::<Box<RawValue>>(trimmed) {
        return Some(value);
    }
    let line = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    serde_json::value::to_raw_value(line).ok()
}

/// How a failed command ended, in words: `exited with status 3`, `killed by signal 9 (SIGKILL)`.
pub(super) fn exit_text(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    format!("ended abnormally ({status})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tails_are_trimmed_text() {
        assert_eq!(tail_text(b"", false), "");
        assert_eq!(tail_text(b"  boom\n", false), "boom");
        // "é" is C3 A9: a tail that starts inside it drops the orphan byte.
        assert_eq!(tail_text(&[0xA9, b'x', b'y'], true), "…xy");
        assert_eq!(tail_text(b"\n\n", true), "");
        assert_eq!(tail_text(&[b'a', 0xFF, b'b'], false), "a\u{FFFD}b");
    }

    #[tokio::test]
    async fn tails_keep_the_last_bytes_and_heads_the_first() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let stop = CancellationToken::new();
        let (tail, cut) = read_tail(Some(&data[..]), 100, &stop).await;
        assert!(cut);
        assert_eq!(tail, &data[data.len() - 100..]);
        let (tail, cut) = read_tail(Some(&data[..50]), 100, &stop).await;
        assert_eq!((tail.len(), cut), (50, false));
        let (head, overflow) = read_head(Some(&data[..]), 100, &stop).await;
        assert!(overflow);
        assert_eq!(head, &data[..100]);
        let (head, overflow) = read_head(Some(&data[..100]), 100, &stop).await;
        assert_eq!((head.len(), overflow), (100, false));
    }

    #[test]
    fn results_are_json_when_possible_else_strings() {
        let r = |s: &str| result_from_stdout(s.as_bytes(), false).map(|v| v.get().to_owned());
        assert_eq!(r(""), None);
        assert_eq!(r(" \n"), None);
        assert_eq!(r("{\"rows\": 5}\n").as_deref(), Some("{\"rows\": 5}"));
        assert_eq!(r("42\n").as_deref(), Some("42"));
        assert_eq!(r("done\n").as_deref(), Some("\"done\""));
        assert_eq!(
            r("line 1\nline 2\r\n").as_deref(),
            Some("\"line 1\\nline 2\"")
        );
        assert_eq!(
            r("{\"a\":1} trailing").as_deref(),
            Some("\"{\\\"a\\\":1} trailing\"")
        );
        assert!(result_from_stdout(b"{}", true).is_none());
    }

    fn claimed(payload: &str) -> ClaimedJob {
        ClaimedJob {
            id: offload_core::JobId::new(),
            queue: "q".into(),
            name: Some("resize".into()),
            payload: RawValue::from_string(payload.into()).unwrap(),
            attempt: 2,
            max_attempts: 5,
            lease_token: offload_core::LeaseToken::new(),
            lease_expires_at: offload_core::Timestamp::now(),
            timeout: Duration::from_secs(60).into(),
            tags: Default::default(),
            created_at: offload_core::Timestamp::now(),
            run_at: offload_core::Timestamp::now(),
        }
    }

    fn sh(script: &str) -> (String, Vec<String>) {
        ("sh".into(), vec!["-c".into(), script.into()])
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn commands_get_the_payload_and_the_job_in_their_environment() {
        let job = claimed(r#"{"w": 640}"#);
        let (program, args) = sh(
            r#"cat; echo " $OFFLOAD_JOB_QUEUE $OFFLOAD_JOB_NAME $OFFLOAD_JOB_ATTEMPT/$OFFLOAD_JOB_MAX_ATTEMPTS $OFFLOAD_JOB_ID"; echo oops >&2; exit 3"#,
        );
        let mut running = Running::spawn(&program, &args, &job).unwrap();
        let status = running.wait().await.unwrap();
        let captured = running.output().await;
        assert_eq!(status.code(), Some(3));
        let stdout = String::from_utf8(captured.stdout).unwrap();
        assert_eq!(stdout, format!("{{\"w\": 640}} q resize 2/5 {}\n", job.id));
        assert_eq!(
            tail_text(&captured.stderr_tail, captured.stderr_cut),
            "oops"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn stopping_ends_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // Both the command and its child ignore SIGTERM, so only the SIGKILL to the group after the grace
        // ends them; the child would write the marker if it outlived the stop.
        let script = format!("trap '' TERM; (sleep 2; touch {}) & wait", marker.display());
        let (program, args) = sh(&script);
        let mut running = Running::spawn(&program, &args, &claimed("null")).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        let status = running.stop(Duration::from_millis(300)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(exit_text(status), "killed by signal 9 (SIGKILL)");
        drop(running.output().await);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a process of the job's group outlived the stop"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_grandchild_holding_the_pipes_does_not_hold_the_worker() {
        let (program, args) = sh("echo done; sleep 30 &");
        let mut running = Running::spawn(&program, &args, &claimed("null")).unwrap();
        assert!(running.wait().await.unwrap().success());
        let started = std::time::Instant::now();
        let captured = running.output().await;
        assert!(started.elapsed() < OUTPUT_GRACE + Duration::from_secs(1));
        assert_eq!(captured.stdout, b"done\n");
    }

    #[cfg(unix)]
    #[test]
    fn exit_statuses_are_described() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            exit_text(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            exit_text(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
    }
}
