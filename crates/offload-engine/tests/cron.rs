//! The cron enqueuer on a real SQLite store with a manual clock (the only fake: time): catch-up after
//! downtime, overlap, restarts, a clock that jumps backwards, jitter, and the loop itself.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use offload_core::cron::{Schedule, ScheduleSource, ScheduleSpec, TickOutcome};
use offload_core::spec::Limits;
use offload_core::{Job, JobState, ManualClock, SignedDuration, Timestamp};
use offload_engine::{CronPass, Engine, EngineConfig};
use offload_store::{Finish, FinishItem, JobClaimParams, JobFinishParams, JobListParams};
use offload_store_sqlite::{SqliteOptions, SqliteStore};

fn t0() -> Timestamp {
    "2026-03-01T00:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs)).unwrap()
}

async fn engine(path: &Path, clock: Arc<ManualClock>, config: EngineConfig) -> Engine {
    let mut options = SqliteOptions::new(path);
    options.clock = clock;
    Engine::new(Arc::new(SqliteStore::open(options).await.unwrap()), config)
}

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn config() -> EngineConfig {
    EngineConfig {
        cron_grace: Duration::from_secs(10),
        cron_poll: Duration::from_millis(20),
        stage_interval: Duration::from_millis(20),
        ..EngineConfig::default()
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = engine(&dir.path().join("cron.db"), clock.clone(), config()).await;
    Fixture { engine, clock, dir }
}

fn schedule(name: &str, json: &str) -> Schedule {
    serde_json::from_str::<ScheduleSpec>(json)
        .unwrap()
        .validate(Some(name), &Limits::default(), t0())
        .unwrap()
}

impl Fixture {
    async fn put(&self, name: &str, json: &str) {
        self.engine
            .put_schedule(schedule(name, json), ScheduleSource::Api)
            .await
            .unwrap();
    }

    fn set(&self, t: Timestamp) {
        self.clock.set(t);
    }

    async fn pass(&self) -> CronPass {
        self.engine.fire_due_schedules().await.unwrap()
    }

    /// The fire times of the jobs on `queue`, oldest first.
    async fn fired(&self, queue: &str) -> Vec<Timestamp> {
        let mut times: Vec<Timestamp> = self
            .jobs(queue)
            .await
            .iter()
            .map(|j| j.schedule.as_ref().expect("a scheduled job").fire_at)
            .collect();
        times.sort();
        times
    }

    async fn jobs(&self, queue: &str) -> Vec<Job> {
        let p = JobListParams {
            queue: Some(queue.into()),
            limit: 500,
            ..JobListParams::default()
        };
        self.engine.list(p).await.unwrap()
    }

    async fn claim(&self, queue: &str) -> offload_core::ClaimedJob {
        let p = JobClaimParams {
            queue: queue.into(),
            worker_id: "w".into(),
            max_jobs: 1,
        };
        let mut jobs = self.engine.claim(p, Duration::ZERO).await.unwrap();
        assert_eq!(jobs.len(), 1, "a job to claim on {queue}");
        jobs.remove(0)
    }

    async fn complete(&self, job: &offload_core::ClaimedJob) {
        let p = JobFinishParams {
            items: vec![FinishItem {
                id: job.id,
                lease_token: job.lease_token,
                finish: Finish::Complete { result: None },
            }],
        };
        assert!(self.engine.finish(p).await.unwrap()[0].is_ok());
    }
}

const MINUTELY: &str =
    r#"{"cron":"* * * * *","job":{"queue":"QUEUE"},"catch_up":"POLICY","overlap":"allow"}"#;

fn minutely(queue: &str, policy: &str) -> String {
    MINUTELY.replace("QUEUE", queue).replace("POLICY", policy)
}

#[tokio::test]
async fn each_catch_up_policy_decides_the_ticks_of_a_downtime() {
    let f = fixture().await;
    for policy in ["none", "latest", "all"] {
        f.put(policy, &minutely(policy, policy)).await;
    }
    // Down from just after start until 00:10:30: ticks 00:01 .. 00:10 are due, all more than 10 s late.
    f.set(at(630));
    let pass = f.pass().await;
    assert_eq!(
        (pass.fired, pass.missed),
        (1 + 10, 10 + 9),
        "none misses 10; latest runs 1, misses 9; all runs 10"
    );
    assert!(f.fired("none").await.is_empty());
    assert_eq!(f.fired("latest").await, [at(600)]);
    assert_eq!(
        f.fired("all").await,
        (1..=10).map(|m| at(60 * m)).collect::<Vec<_>>()
    );
    for policy in ["none", "latest"] {
        let record = f.engine.get_schedule(policy, 10).await.unwrap().unwrap();
        let missed = record
            .recent_ticks
            .unwrap()
            .into_iter()
            .find(|t| t.outcome == TickOutcome::Missed)
            .expect("a missed record");
        let last = if policy == "none" { at(600) } else { at(540) };
        assert_eq!((missed.fire_at, missed.last_fire_at), (at(60), Some(last)));
        assert_eq!(record.next_fire_at, Some(at(660)));
    }
    // Back on time: every policy runs the next tick.
    f.set(at(661));
    assert_eq!(f.pass().await.fired, 3);
}

#[tokio::test]
async fn catch_up_runs_are_still_subject_to_overlap() {
    let f = fixture().await;
    f.put(
        "skip",
        r#"{"cron":"* * * * *","job":{"queue":"skip"},"catch_up":"all"}"#,
    )
    .await;
    f.set(at(300));
    let pass = f.pass().await;
    assert_eq!((pass.fired, pass.skipped), (1, 4));
    assert_eq!(f.fired("skip").await, [at(60)]);
}

#[tokio::test]
async fn overlap_policies_over_consecutive_ticks() {
    let f = fixture().await;
    for policy in ["allow", "skip", "buffer_one"] {
        let json =
            format!(r#"{{"cron":"* * * * *","job":{{"queue":"{policy}"}},"overlap":"{policy}"}}"#);
        f.put(policy, &json).await;
    }
    // 00:01: every policy runs the first tick.
    f.set(at(60));
    assert_eq!(f.pass().await.fired, 3);
    // 00:02: the first runs are still waiting.
    f.set(at(120));
    assert_eq!((f.pass().await.fired, f.fired("skip").await.len()), (1, 1));
    assert_eq!(f.fired("buffer_one").await.len(), 1);
    // 00:03: the first runs are running; buffer_one lets one wait beside it.
    let skip_run = f.claim("skip").await;
    let _buffer_run = f.claim("buffer_one").await;
    f.set(at(180));
    f.pass().await;
    assert_eq!(f.fired("skip").await, [at(60)]);
    assert_eq!(f.fired("buffer_one").await, [at(60), at(180)]);
    assert_eq!(f.fired("allow").await, [at(60), at(120), at(180)]);
    // 00:04: skip's run finished, so it runs again; buffer_one already has one waiting.
    f.complete(&skip_run).await;
    f.set(at(240));
    f.pass().await;
    assert_eq!(f.fired("skip").await, [at(60), at(240)]);
    assert_eq!(f.fired("buffer_one").await, [at(60), at(180)]);
    let skipped = |name: &'static str| {
        let engine = f.engine.clone();
        async move {
            engine
                .get_schedule(name, 50)
                .await
                .unwrap()
                .unwrap()
                .recent_ticks
                .unwrap()
                .iter()
                .filter(|t| t.outcome == TickOutcome::Skipped)
                .map(|t| t.fire_at)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(skipped("skip").await, [at(180), at(120)]);
    assert_eq!(skipped("buffer_one").await, [at(240), at(120)]);
}

#[tokio::test]
async fn a_restart_neither_refires_nor_loses_a_tick_and_a_clock_going_back_refires_nothing() {
    let f = fixture().await;
    f.put("m", &minutely("m", "all")).await;
    f.set(at(60));
    assert_eq!(f.pass().await.fired, 1);
    // Restart: a new engine on the same file.
    f.engine.shutdown().await;
    let path = f.dir.path().join("cron.db");
    let restarted = engine(&path, f.clock.clone(), config()).await;
    assert_eq!(restarted.fire_due_schedules().await.unwrap().fired, 0);
    // The clock jumps back by 50 s, then forward again.
    f.set(at(10));
    assert_eq!(restarted.fire_due_schedules().await.unwrap().fired, 0);
    f.set(at(121));
    assert_eq!(restarted.fire_due_schedules().await.unwrap().fired, 1);
    let jobs = restarted
        .list(JobListParams {
            queue: Some("m".into()),
            limit: 10,
            ..JobListParams::default()
        })
        .await
        .unwrap();
    let mut fired: Vec<Timestamp> = jobs
        .iter()
        .map(|j| j.schedule.as_ref().unwrap().fire_at)
        .collect();
    fired.sort();
    assert_eq!(fired, [at(60), at(120)]);
    restarted.shutdown().await;
}

#[tokio::test]
async fn jitter_spreads_each_run_within_the_jitter() {
    let f = fixture().await;
    f.put(
        "spread",
        r#"{"cron":"* * * * *","job":{"queue":"spread"},"overlap":"allow","jitter":"30s"}"#,
    )
    .await;
    for minute in 1..=20 {
        f.set(at(60 * minute));
        f.pass().await;
    }
    let jobs = f.jobs("spread").await;
    assert_eq!(jobs.len(), 20);
    let mut offsets = Vec::new();
    for job in &jobs {
        let fire_at = job.schedule.as_ref().unwrap().fire_at;
        let offset = job.run_at.duration_since(fire_at);
        assert!(
            offset >= SignedDuration::ZERO && offset < SignedDuration::from_secs(30),
            "{offset:?}"
        );
        offsets.push(offset);
    }
    offsets.sort();
    offsets.dedup();
    assert!(offsets.len() > 1, "the start is spread, not fixed");
}

#[tokio::test]
async fn the_enqueuer_loop_fires_when_the_clock_reaches_a_tick() {
    let f = fixture().await;
    f.engine.start();
    f.put(
        "loop",
        r#"{"cron":"*/5 * * * * *","job":{"queue":"loop","name":"tick"}}"#,
    )
    .await;
    f.clock.advance(SignedDuration::from_secs(5));
    // A long poll returns as soon as the enqueuer has created the tick's job: the wake-up is the signal.
    let p = JobClaimParams {
        queue: "loop".into(),
        worker_id: "w".into(),
        max_jobs: 1,
    };
    let jobs = f.engine.claim(p, Duration::from_secs(20)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = f.engine.get(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(job.name.as_deref(), Some("tick"));
    let by = job.schedule.unwrap();
    assert_eq!((by.name.as_str(), by.fire_at), ("loop", at(5)));
    assert_eq!(job.state, JobState::Running);
    f.engine.shutdown().await;
}

#[tokio::test]
async fn trigger_runs_now_and_file_sync_deletes_only_file_schedules_gone_from_the_file() {
    let f = fixture().await;
    f.put("api-made", &minutely("q", "latest")).await;
    let triggered = f.engine.trigger_schedule("api-made").await.unwrap();
    assert!(triggered.tick.manual);
    assert_eq!(f.fired("q").await, [t0()]);

    let first = f
        .engine
        .sync_file_schedules(vec![
            schedule("file-a", &minutely("q", "none")),
            schedule("file-b", &minutely("q", "none")),
        ])
        .await
        .unwrap();
    assert_eq!(first.created, ["file-a", "file-b"]);
    let again = f
        .engine
        .sync_file_schedules(vec![
            schedule("file-a", &minutely("q", "none")),
            schedule("file-b", &minutely("q", "none")),
        ])
        .await
        .unwrap();
    assert_eq!(
        (again.unchanged, again.replaced),
        (vec!["file-a".to_owned(), "file-b".to_owned()], vec![]),
        "a file that did not change writes nothing"
    );
    let second = f
        .engine
        .sync_file_schedules(vec![schedule("file-a", &minutely("q", "all"))])
        .await
        .unwrap();
    assert_eq!(
        (second.replaced, second.deleted),
        (vec!["file-a".to_owned()], vec!["file-b".to_owned()])
    );
    let all: Vec<String> = f
        .engine
        .list_schedules(offload_store::ScheduleListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.schedule.name)
        .collect();
    assert_eq!(all, ["api-made", "file-a"]);
}

#[tokio::test]
async fn a_paused_schedule_fires_nothing_and_catches_up_on_resume() {
    let f = fixture().await;
    f.put("paused", &minutely("paused", "latest")).await;
    f.engine.set_schedule_paused("paused", true).await.unwrap();
    f.set(at(630));
    assert_eq!(
        f.pass().await,
        CronPass {
            next_fire_at: None,
            ..CronPass::default()
        }
    );
    assert!(f.fired("paused").await.is_empty());
    // Resumed at 00:10:30: the ten ticks of the pause are late; `latest` runs the most recent one.
    f.engine.set_schedule_paused("paused", false).await.unwrap();
    let pass = f.pass().await;
    assert_eq!((pass.fired, pass.missed), (1, 9));
    assert_eq!(f.fired("paused").await, [at(600)]);
}
