//! A full disk with the real binary: a server restarted on a full disk starts, serves reads, refuses writes
//! with 503 `unavailable`, and accepts writes again once space returns, without another restart.
//!
//! The disk is a small tmpfs the test mounts, so it needs root (CI runs as root): without it the test fails,
//! it does not skip.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, wait_for};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and must run as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk refuses another byte; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 16, 1 << 12, 1] {
            let bytes = vec![0u8; chunk];
            while file
                .write_all(&bytes)
                .and_then(|()| file.sync_all())
                .is_ok()
            {}
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn http() -> reqwest::Client {
    offload_engine::push::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn enqueue(client: &reqwest::Client, url: &str, n: u32) -> (u16, Value) {
    let resp = client
        .post(format!("{url}/v1/jobs"))
        .json(&json!({"queue": "disk", "payload": {"n": n}}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_on_a_full_disk_serves_reads_and_recovers_when_space_returns() {
    let disk = SmallDisk::mount("8m");
    let db = disk.path().join("offload.db");
    let client = http();
    let mut server = tokio::task::block_in_place(|| Server::start(&db));
    let (status, job) = enqueue(&client, &server.url, 1).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();

    // The disk fills up under the running server, which is then restarted.
    let filler = disk.fill();
    let (status, _) = enqueue(&client, &server.url, 2).await;
    assert_eq!(status, 503, "writes are refused on a full disk");
    tokio::task::block_in_place(|| server.terminate());
    let server = tokio::task::block_in_place(|| Server::start(&db));

    let (status, read) = get(&client, format!("{}/v1/jobs/{id}", server.url)).await;
    assert_eq!(
        (status, &read["payload"]),
        (200, &json!({"n": 1})),
        "{read}"
    );
    let (status, queues) = get(&client, format!("{}/v1/queues", server.url)).await;
    assert_eq!(status, 200, "{queues}");
    let (status, refused) = enqueue(&client, &server.url, 3).await;
    assert_eq!(
        (status, &refused["code"]),
        (503, &json!("unavailable")),
        "{refused}"
    );

    std::fs::remove_file(filler).unwrap();
    let url = server.url.clone();
    let accepted = tokio::task::block_in_place(|| {
        let runtime = tokio::runtime::Handle::current();
        wait_for(
            Duration::from_secs(20),
            "a write after space returned",
            || {
                let (status, job) = runtime.block_on(enqueue(&client, &url, 4));
                (status == 201).then_some(job)
            },
        )
    });
    let (status, read) = get(
        &client,
        format!("{url}/v1/jobs/{}", accepted["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (status, &read["payload"]),
        (200, &json!({"n": 4})),
        "{read}"
    );
}
