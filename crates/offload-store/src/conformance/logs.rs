//! Log lines of jobs and runs: appended in order, read in pages, bounded per owner, gone with their owner.

use offload_core::log::{LogLevel, LogLine, MAX_LINES_KEPT, NewLogLine};
use offload_core::{JobId, LeaseToken, Timestamp};
use serde_json::json;

use crate::{JobPruneParams, LogAppendParams, LogOwner, LogReadParams, RunPruneParams, StoreError};

use super::functions::{flow, put, start, step};
use super::{Harness, job, secs};

fn line(message: &str) -> NewLogLine {
    NewLogLine {
        at: None,
        level: LogLevel::Info,
        message: message.into(),
    }
}

async fn append(
    h: &Harness,
    owner: LogOwner,
    token: Option<LeaseToken>,
    lines: Vec<NewLogLine>,
) -> Result<offload_core::log::LogAppended, StoreError> {
    h.store
        .log_append(LogAppendParams {
            owner,
            lease_token: token,
            lines,
        })
        .await
}

async fn read(h: &Harness, owner: LogOwner, after: u64, limit: u32) -> Vec<LogLine> {
    h.store
        .log_read(LogReadParams {
            owner,
            after,
            limit,
        })
        .await
        .expect("read lines")
}

fn messages(lines: &[LogLine]) -> Vec<(u64, &str)> {
    lines.iter().map(|l| (l.seq, l.message.as_str())).collect()
}

/// Lines are numbered from 1 in append order and read after a cursor; a line keeps its level, text and time
/// (the store's now when it gave none). Unknown jobs and runs are not found.
pub async fn log_lines_are_appended_and_read_in_order(h: Harness) {
    let id = h.insert(vec![job("q")]).await[0].id;
    let owner = LogOwner::Job(id);
    let at = Timestamp::from_second(1_767_225_000).unwrap();
    let first = vec![
        NewLogLine {
            at: Some(at),
            level: LogLevel::Warn,
            message: "é ünïcode <b>".into(),
        },
        line(""),
        NewLogLine {
            at: None,
            level: LogLevel::Error,
            message: "three".into(),
        },
    ];
    let appended = append(&h, owner, None, first).await.unwrap();
    assert_eq!((appended.first_seq, appended.last_seq), (1, 3));
    h.advance(secs(5));
    let appended = append(&h, owner, None, vec![line("four"), line("five")])
        .await
        .unwrap();
    assert_eq!((appended.first_seq, appended.last_seq), (4, 5));

    let all = read(&h, owner, 0, 100).await;
    assert_eq!(
        messages(&all),
        [
            (1, "é ünïcode <b>"),
            (2, ""),
            (3, "three"),
            (4, "four"),
            (5, "five")
        ]
    );
    assert_eq!(all[0].at, at);
    assert_eq!(all[0].level, LogLevel::Warn);
    assert_eq!(all[1].level, LogLevel::Info);
    assert_eq!(all[2].level, LogLevel::Error);
    assert_eq!(all[2].at, super::t0());
    assert_eq!(all[3].at, h.now());
    assert!(all.iter().all(|l| l.attempt.is_none()));
    assert_eq!(
        messages(&read(&h, owner, 2, 2).await),
        [(3, "three"), (4, "four")]
    );
    assert!(read(&h, owner, 5, 10).await.is_empty());

    let other = h.insert(vec![job("q")]).await[0].id;
    assert!(read(&h, LogOwner::Job(other), 0, 10).await.is_empty());

    let unknown = LogOwner::Job(JobId::new());
    assert!(matches!(
        append(&h, unknown, None, vec![line("x")]).await,
        Err(StoreError::NotFound(_))
    ));
    let read_unknown = h
        .store
        .log_read(LogReadParams {
            owner: unknown,
            after: 0,
            limit: 10,
        })
        .await;
    assert!(matches!(read_unknown, Err(StoreError::NotFound(_))));

    put(&h, flow()).await;
    let run = LogOwner::Run(start(&h, json!({})).await);
    append(&h, run, None, vec![line("r1"), line("r2")])
        .await
        .unwrap();
    assert_eq!(
        messages(&read(&h, run, 0, 10).await),
        [(1, "r1"), (2, "r2")]
    );
    let unknown_run = LogOwner::Run(offload_core::function::run::RunId::new());
    assert!(matches!(
        append(&h, unknown_run, None, vec![line("x")]).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A lease token, when given, must be the running attempt's, and its lines record the attempt; a stale one
/// writes nothing. Runs take no token.
pub async fn log_lease_token_records_the_attempt(h: Harness) {
    h.insert(vec![job("q")]).await;
    let claimed = h.claim("q", 1).await.remove(0);
    let owner = LogOwner::Job(claimed.id);
    append(&h, owner, Some(claimed.lease_token), vec![line("held")])
        .await
        .unwrap();
    assert!(matches!(
        append(&h, owner, Some(LeaseToken::new()), vec![line("stale")]).await,
        Err(StoreError::LeaseMismatch)
    ));
    h.fail(&claimed, "boom", true, None).await.unwrap();
    assert!(matches!(
        append(&h, owner, Some(claimed.lease_token), vec![line("late")]).await,
        Err(StoreError::LeaseMismatch)
    ));
    append(&h, owner, None, vec![line("anyone")]).await.unwrap();
    let lines = read(&h, owner, 0, 10).await;
    assert_eq!(messages(&lines), [(1, "held"), (2, "anyone")]);
    assert_eq!(lines[0].attempt, Some(1));
    assert_eq!(lines[1].attempt, None);

    put(&h, flow()).await;
    let run = LogOwner::Run(start(&h, json!({})).await);
    assert!(matches!(
        append(&h, run, Some(LeaseToken::new()), vec![line("x")]).await,
        Err(StoreError::LeaseMismatch)
    ));
    assert!(read(&h, run, 0, 10).await.is_empty());
}

/// Each owner keeps its newest lines: appends beyond the bound drop the oldest, numbers keep growing.
pub async fn log_keeps_the_newest_lines(h: Harness) {
    let id = h.insert(vec![job("q")]).await[0].id;
    let owner = LogOwner::Job(id);
    let total = MAX_LINES_KEPT + 5;
    let mut next = 1;
    while next <= total {
        let n = (total - next + 1).min(100);
        let lines = (next..next + n).map(|i| line(&format!("l{i}"))).collect();
        let appended = append(&h, owner, None, lines).await.unwrap();
        assert_eq!(appended.first_seq, next);
        next += n;
    }
    let kept = read(&h, owner, 0, 1000).await;
    assert_eq!(kept.len() as u64, MAX_LINES_KEPT);
    assert_eq!(kept[0].seq, 6);
    assert_eq!(kept[0].message, "l6");
    assert_eq!(kept.last().unwrap().seq, total);
    assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

/// Lines go with their job (delete, prune) and their run (prune).
pub async fn log_lines_go_with_their_owner(h: Harness) {
    let ids: Vec<JobId> = h
        .insert(vec![job("q"), job("q")])
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    for id in &ids {
        append(&h, LogOwner::Job(*id), None, vec![line("x")])
            .await
            .unwrap();
    }
    h.store.job_delete(ids[0]).await.unwrap();
    let gone = h
        .store
        .log_read(LogReadParams {
            owner: LogOwner::Job(ids[0]),
            after: 0,
            limit: 10,
        })
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))));

    let claimed = h.claim("q", 1).await.remove(0);
    assert_eq!(claimed.id, ids[1]);
    h.complete(&claimed, None).await.unwrap();
    h.advance(secs(3600));
    let pruned = h
        .store
        .job_prune(JobPruneParams {
            succeeded: secs(60),
            dead: secs(60),
            cancelled: secs(60),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let gone = h
        .store
        .log_read(LogReadParams {
            owner: LogOwner::Job(ids[1]),
            after: 0,
            limit: 10,
        })
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))));

    put(&h, flow()).await;
    let run = start(&h, json!({})).await;
    append(&h, LogOwner::Run(run), None, vec![line("r")])
        .await
        .unwrap();
    step(&h, "flow", json!({"done": true})).await;
    h.advance(secs(7200));
    let pruned = h
        .store
        .run_prune(RunPruneParams {
            runs: secs(3600),
            events: secs(3600),
            limit: 100,
        })
        .await
        .unwrap();
    assert!(pruned >= 1);
    let gone = h
        .store
        .log_read(LogReadParams {
            owner: LogOwner::Run(run),
            after: 0,
            limit: 10,
        })
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))));
}
