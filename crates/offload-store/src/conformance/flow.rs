//! Flow control: a job's group, queue limits (concurrency, group concurrency, throttles, fair claims), their
//! live usage, why a job waits, and debounce on enqueue.

use std::time::Duration;

use offload_core::api::QueueInfo;
use offload_core::flow::admission::WaitingFor;
use offload_core::flow::debounce::DebounceSpec;
use offload_core::flow::limits::QueueLimitsPatch;
use offload_core::state::add;
use offload_core::{ClaimedJob, DurationSpec, JobState, NewJob, RunAt};

use crate::{
    ClaimOutcome, Finish, FlowCounter, JobClaimParams, JobListParams, JobRescueParams,
    QueueSetLimitsParams,
};

use super::{Harness, job, raw, secs, t0};

/// A job of `queue` in `group`.
fn grouped(queue: &str, group: &str) -> NewJob {
    NewJob {
        group: Some(group.into()),
        ..job(queue)
    }
}

/// Sets a queue's limits from the JSON a `PATCH /v1/queues/{queue}` carries.
async fn limit(h: &Harness, queue: &str, patch: serde_json::Value) -> QueueInfo {
    let patch: QueueLimitsPatch = serde_json::from_value(patch).expect("a valid patch");
    h.store
        .queue_set_limits(QueueSetLimitsParams {
            queue: queue.into(),
            patch,
        })
        .await
        .expect("queue_set_limits")
}

/// Claims with the retry hint.
async fn claim_next(h: &Harness, queue: &str, max_jobs: u32) -> ClaimOutcome {
    h.store
        .job_claim_next(JobClaimParams {
            queue: queue.into(),
            worker_id: "w1".into(),
            max_jobs,
        })
        .await
        .expect("claim")
}

/// The groups of claimed jobs, read back from the store, in claim order.
async fn groups_of(h: &Harness, claimed: &[ClaimedJob]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for c in claimed {
        out.push(h.get(c.id).await.group);
    }
    out
}

fn some(g: &str) -> Option<String> {
    Some(g.to_owned())
}

/// A debounced job of `queue` (the request's `run_at` is `period` from now, as validation makes it).
fn debounced(queue: &str, key: &str, period: u64, max_wait: Option<u64>, payload: &str) -> NewJob {
    NewJob {
        run_at: RunAt::After(secs(period)),
        payload: raw(payload),
        debounce: Some(DebounceSpec {
            key: key.into(),
            period: DurationSpec(secs(period)),
            max_wait: max_wait.map(|m| DurationSpec(secs(m))),
        }),
        ..job(queue)
    }
}

/// A job's group is stored, read back by get and list, and filters lists.
pub async fn group_is_stored_listed_and_filtered(h: Harness) {
    let out = h
        .insert(vec![
            grouped("q", "acme"),
            grouped("q", "globex"),
            job("q"),
            grouped("other", "acme"),
        ])
        .await;
    assert_eq!(h.get(out[0].id).await.group, some("acme"));
    assert_eq!(h.get(out[2].id).await.group, None);

    let list = |queue: Option<&str>, group: Option<&str>| JobListParams {
        queue: queue.map(str::to_owned),
        group: group.map(str::to_owned),
        limit: 100,
        ..Default::default()
    };
    let acme = h.store.job_list(list(None, Some("acme"))).await.unwrap();
    let mut ids: Vec<_> = acme.iter().map(|j| j.id).collect();
    ids.sort();
    let mut want = vec![out[0].id, out[3].id];
    want.sort();
    assert_eq!(ids, want, "both queues' acme jobs");
    assert!(acme.iter().all(|j| j.group.as_deref() == Some("acme")));

    let acme_q = h
        .store
        .job_list(list(Some("q"), Some("acme")))
        .await
        .unwrap();
    assert_eq!(
        acme_q.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![out[0].id]
    );
    let all = h.store.job_list(list(Some("q"), None)).await.unwrap();
    assert_eq!(all.len(), 3);
    let nobody = h.store.job_list(list(None, Some("initech"))).await.unwrap();
    assert!(nobody.is_empty());
}

/// `concurrency` caps the queue's running jobs; a finished job lets the next one start.
pub async fn concurrency_caps_running_jobs(h: Harness) {
    limit(&h, "q", serde_json::json!({"concurrency": 2})).await;
    h.insert((0..5).map(|_| job("q")).collect()).await;
    let first = h.claim("q", 5).await;
    assert_eq!(first.len(), 2);
    assert!(h.claim("q", 5).await.is_empty(), "the queue runs 2 already");
    h.complete(&first[0], None).await.unwrap();
    assert_eq!(h.claim("q", 5).await.len(), 1);
    assert!(h.claim("q", 5).await.is_empty());
}

/// `group_concurrency` caps each group's running jobs; jobs without a group are not limited by it.
pub async fn group_concurrency_holds_per_group(h: Harness) {
    limit(&h, "q", serde_json::json!({"group_concurrency": 1})).await;
    h.insert(vec![
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "b"),
        grouped("q", "b"),
        job("q"),
        job("q"),
    ])
    .await;
    let first = h.claim("q", 10).await;
    let mut groups = groups_of(&h, &first).await;
    groups.sort();
    assert_eq!(groups, vec![None, None, some("a"), some("b")]);
    assert!(h.claim("q", 10).await.is_empty(), "a and b each run one");

    let a = first
        .iter()
        .zip(groups_of(&h, &first).await)
        .find(|(_, g)| g.as_deref() == Some("a"))
        .map(|(c, _)| c.clone())
        .unwrap();
    h.complete(&a, None).await.unwrap();
    let next = h.claim("q", 10).await;
    assert_eq!(groups_of(&h, &next).await, vec![some("a")]);
    assert!(h.claim("q", 10).await.is_empty());
}

/// A queue throttle admits its burst at once, at most `limit + burst - 1` per period, and says when the next
/// start is allowed.
pub async fn throttle_admits_burst_then_says_when(h: Harness) {
    // 2 per second (one per 500ms), burst 3.
    limit(
        &h,
        "q",
        serde_json::json!({"throttle": {"limit": 2, "period": "1s", "burst": 3}}),
    )
    .await;
    h.insert((0..10).map(|_| job("q")).collect()).await;
    let first = claim_next(&h, "q", 10).await;
    assert_eq!(first.jobs.len(), 3, "the burst");
    let held = claim_next(&h, "q", 10).await;
    assert!(held.jobs.is_empty());
    let at = add(t0(), Duration::from_millis(500));
    assert_eq!(held.retry_at, Some(at));
    h.advance(Duration::from_millis(499));
    assert!(claim_next(&h, "q", 10).await.jobs.is_empty());
    h.advance(Duration::from_millis(1));
    let next = claim_next(&h, "q", 10).await;
    assert_eq!(next.jobs.len(), 1, "one more at the rate");
    assert_eq!(next.retry_at, Some(add(at, Duration::from_millis(500))));
    h.advance(Duration::from_millis(499));
    assert!(
        claim_next(&h, "q", 10).await.jobs.is_empty(),
        "4 = limit + burst - 1 starts within the first period"
    );
}

/// Per-group throttles are independent of each other, and jobs without a group share one bucket.
pub async fn per_group_throttles_are_independent(h: Harness) {
    limit(
        &h,
        "q",
        serde_json::json!({"throttle": {"limit": 1, "period": "10s", "per_group": true}}),
    )
    .await;
    h.insert(vec![
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "b"),
        grouped("q", "b"),
        job("q"),
        job("q"),
    ])
    .await;
    let first = claim_next(&h, "q", 10).await;
    let mut groups = groups_of(&h, &first.jobs).await;
    groups.sort();
    assert_eq!(groups, vec![None, some("a"), some("b")]);
    let held = claim_next(&h, "q", 10).await;
    assert!(held.jobs.is_empty());
    assert_eq!(held.retry_at, Some(add(t0(), secs(10))));
    h.advance(secs(10));
    let second = claim_next(&h, "q", 10).await;
    assert_eq!(second.jobs.len(), 3);
}

/// Fair claims take groups in turn: a small group behind a large backlog starts within a round.
pub async fn fair_claims_take_groups_in_turn(h: Harness) {
    limit(&h, "q", serde_json::json!({"fair": true})).await;
    h.insert((0..10).map(|_| grouped("q", "A")).collect()).await;
    h.insert(vec![grouped("q", "B"), grouped("q", "B")]).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let c = h.claim("q", 1).await;
        assert_eq!(c.len(), 1);
        seen.extend(groups_of(&h, &c).await);
        h.advance(Duration::from_millis(1));
    }
    assert!(
        seen[..2].contains(&some("B")),
        "B within the first 2 claims: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|g| g.as_deref() == Some("B")).count(),
        2,
        "both of B within the first 4 claims: {seen:?}"
    );

    // One claim of several takes the groups in turn too.
    h.insert((0..3).map(|_| grouped("q", "C")).collect()).await;
    let c = h.claim("q", 3).await;
    let mut groups = groups_of(&h, &c).await;
    groups.sort();
    groups.dedup();
    assert_eq!(groups, vec![some("A"), some("C")], "A and C both served");
}

/// Every way a running job ends gives its slot back: complete, fail (to a retry), snooze, cancel by the
/// worker, and rescue after its lease expired; deleting a waiting job updates the group's usage.
pub async fn every_way_a_running_job_ends_frees_its_slot(h: Harness) {
    limit(
        &h,
        "q",
        serde_json::json!({"concurrency": 1, "group_concurrency": 1}),
    )
    .await;
    h.insert((0..6).map(|_| grouped("q", "g")).collect()).await;
    for way in ["complete", "fail", "snooze", "cancel", "rescue"] {
        let c = h.claim("q", 1).await;
        assert_eq!(c.len(), 1, "{way}: the slot is free");
        let c = c.into_iter().next().unwrap();
        assert!(h.claim("q", 1).await.is_empty(), "{way}: the slot is taken");
        let usage = h
            .store
            .queue_get("q")
            .await
            .unwrap()
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((usage.running, usage.groups_running), (1, 1), "{way}");
        match way {
            "complete" => drop(h.complete(&c, None).await.unwrap()),
            "fail" => {
                let state = h.fail(&c, "boom", true, None).await.unwrap().state;
                assert_eq!(state, JobState::Retrying);
            }
            "snooze" => {
                let snooze = Finish::Snooze { delay: secs(600) };
                h.finish(c.id, c.lease_token, snooze).await.unwrap();
            }
            "cancel" => {
                let cancel = Finish::Cancel {
                    reason: "stop".into(),
                };
                h.finish(c.id, c.lease_token, cancel).await.unwrap();
            }
            _ => {
                h.advance(secs(31));
                let report = h
                    .store
                    .job_rescue_expired(JobRescueParams { limit: 100 })
                    .await
                    .unwrap();
                assert_eq!(report.rescued.len(), 1);
            }
        }
        let usage = h
            .store
            .queue_get("q")
            .await
            .unwrap()
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((usage.running, usage.groups_running), (0, 0), "{way}");
    }
    assert_eq!(h.claim("q", 1).await.len(), 1, "the last job starts");

    let out = h.insert(vec![grouped("q", "d"), grouped("q", "d")]).await;
    let top = |info: QueueInfo| {
        info.usage
            .unwrap()
            .top_groups
            .into_iter()
            .find(|g| g.group == "d")
            .map(|g| g.available)
            .unwrap_or(0)
    };
    assert_eq!(top(h.store.queue_get("q").await.unwrap().unwrap()), 2);
    h.store.job_delete(out[0].id).await.unwrap();
    assert_eq!(top(h.store.queue_get("q").await.unwrap().unwrap()), 1);
}

/// A lowered limit lets running jobs finish and starts nothing until usage is below it.
pub async fn lowered_limit_lets_running_jobs_finish(h: Harness) {
    limit(&h, "q", serde_json::json!({"concurrency": 3})).await;
    h.insert((0..6).map(|_| job("q")).collect()).await;
    let running = h.claim("q", 10).await;
    assert_eq!(running.len(), 3);
    let info = limit(&h, "q", serde_json::json!({"concurrency": 1})).await;
    assert_eq!(info.limits.concurrency, Some(1));
    assert_eq!(info.usage.map(|u| u.running), Some(3));
    for c in &running[..2] {
        assert!(h.claim("q", 10).await.is_empty());
        h.complete(c, None).await.unwrap();
    }
    assert!(h.claim("q", 10).await.is_empty(), "one still runs");
    h.complete(&running[2], None).await.unwrap();
    assert_eq!(h.claim("q", 10).await.len(), 1);

    // Clearing every limit returns the queue to plain claims.
    let info = limit(&h, "q", serde_json::json!({"concurrency": null})).await;
    assert!(info.limits.is_unlimited());
    assert_eq!(h.claim("q", 10).await.len(), 2);
}

/// `job_get` says why an available job of a limited queue waits; otherwise nothing.
pub async fn waiting_for_explains_held_jobs(h: Harness) {
    limit(&h, "q", serde_json::json!({"group_concurrency": 1})).await;
    let out = h.insert(vec![grouped("q", "a"), grouped("q", "a")]).await;
    assert_eq!(h.get(out[0].id).await.waiting_for, None, "it would start");
    let c = h.claim("q", 1).await.remove(0);
    let other = if c.id == out[0].id {
        out[1].id
    } else {
        out[0].id
    };
    assert_eq!(
        h.get(other).await.waiting_for,
        Some(WaitingFor::GroupConcurrency)
    );
    assert_eq!(h.get(c.id).await.waiting_for, None, "it runs");

    limit(&h, "q", serde_json::json!({"concurrency": 1})).await;
    assert_eq!(
        h.get(other).await.waiting_for,
        Some(WaitingFor::Concurrency)
    );

    limit(
        &h,
        "t",
        serde_json::json!({"throttle": {"limit": 1, "period": "1m"}}),
    )
    .await;
    let t = h.insert(vec![job("t"), job("t")]).await;
    assert_eq!(h.claim("t", 1).await.len(), 1);
    let waiting = if h.get(t[0].id).await.state == JobState::Available {
        t[0].id
    } else {
        t[1].id
    };
    assert_eq!(
        h.get(waiting).await.waiting_for,
        Some(WaitingFor::Throttle {
            until: add(t0(), secs(60))
        })
    );

    let free = h.insert(vec![job("free")]).await;
    assert_eq!(h.get(free[0].id).await.waiting_for, None);
}

/// `queue_get` reports counts, limits and live usage; `queue_list` reports limits without usage.
pub async fn queue_get_reports_usage(h: Harness) {
    assert!(h.store.queue_get("nowhere").await.unwrap().is_none());
    let plain = h.insert(vec![job("plain")]).await;
    let info = h.store.queue_get("plain").await.unwrap().unwrap();
    assert!(info.limits.is_unlimited());
    assert_eq!(info.counts[&JobState::Available], 1);
    assert_eq!(info.usage.map(|u| u.running), Some(0));
    h.store.job_delete(plain[0].id).await.unwrap();

    let set = limit(
        &h,
        "q",
        serde_json::json!({"group_concurrency": 2, "throttle": {"limit": 1, "period": "1m"}}),
    )
    .await;
    assert_eq!(set.name, "q");
    assert_eq!(set.limits.group_concurrency, Some(2));
    let mut jobs: Vec<NewJob> = (0..4).map(|_| grouped("q", "big")).collect();
    jobs.extend((0..2).map(|_| grouped("q", "small")));
    h.insert(jobs).await;
    assert_eq!(h.claim("q", 10).await.len(), 1, "the throttle allows one");

    let info = h.store.queue_get("q").await.unwrap().unwrap();
    assert_eq!(info.counts[&JobState::Running], 1);
    assert_eq!(info.counts[&JobState::Available], 5);
    let usage = info.usage.unwrap();
    assert_eq!((usage.running, usage.groups_running), (1, 1));
    assert_eq!(usage.throttle_next_at, Some(add(t0(), secs(60))));
    let top: Vec<(String, u64)> = usage
        .top_groups
        .iter()
        .map(|g| (g.group.clone(), g.available + g.running))
        .collect();
    assert_eq!(top, vec![("big".to_owned(), 4), ("small".to_owned(), 2)]);

    let listed = h.store.queue_list().await.unwrap();
    let q = listed.iter().find(|q| q.name == "q").unwrap();
    assert_eq!(q.limits, set.limits);
    assert_eq!(q.usage, None);
}

/// Enqueues with one debounce key make one job with the last payload, starting `period` after the last.
pub async fn debounce_coalesces_enqueues(h: Harness) {
    let mut answers = Vec::new();
    for i in 0..5 {
        let payload = format!(r#"{{"n":{i}}}"#);
        let out = h
            .insert(vec![debounced("q", "reindex", 10, None, &payload)])
            .await;
        answers.push(out[0].clone());
        h.advance(secs(1));
    }
    let id = answers[0].id;
    assert!(!answers[0].debounced);
    for a in &answers[1..] {
        assert_eq!(a.id, id);
        assert!(a.debounced);
        assert!(!a.duplicate);
    }
    let last_enqueue = add(t0(), secs(4));
    assert_eq!(answers[4].run_at, add(last_enqueue, secs(10)));
    assert_eq!(answers[4].state, JobState::Scheduled);
    let got = h.get(id).await;
    assert_eq!(got.payload.get(), r#"{"n":4}"#);
    assert_eq!(got.run_at, add(last_enqueue, secs(10)));
    assert_eq!(got.debounce_key.as_deref(), Some("reindex"));
    assert_eq!(got.created_at, t0());
    assert_eq!(h.counts("q").await[&JobState::Scheduled], 1);

    // Another key, or another queue, is another job.
    let other = h
        .insert(vec![
            debounced("q", "other", 10, None, "{}"),
            debounced("q2", "reindex", 10, None, "{}"),
        ])
        .await;
    assert!(other.iter().all(|o| !o.debounced && o.id != id));
}

/// `max_wait` caps how far enqueues push a debounced job's start.
pub async fn debounce_max_wait_caps_the_start(h: Harness) {
    let first = h
        .insert(vec![debounced("q", "k", 10, Some(15), r#"{"n":1}"#)])
        .await;
    h.advance(secs(8));
    let second = h
        .insert(vec![debounced("q", "k", 10, Some(15), r#"{"n":2}"#)])
        .await;
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(
        second[0].run_at,
        add(t0(), secs(15)),
        "capped at first + 15s"
    );
    assert_eq!(h.get(first[0].id).await.run_at, add(t0(), secs(15)));
}

/// A debounced job that started no longer absorbs enqueues: the next one is a new job.
pub async fn running_debounced_job_does_not_absorb(h: Harness) {
    let first = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":1}"#)])
        .await;
    h.advance(secs(10));
    h.stage().await;
    let c = h.claim("q", 1).await;
    assert_eq!(c[0].id, first[0].id);
    let second = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":2}"#)])
        .await;
    assert_ne!(second[0].id, first[0].id);
    assert!(!second[0].debounced);
    assert_eq!(h.get(first[0].id).await.payload.get(), r#"{"n":1}"#);

    // Once staged, a waiting debounced job still absorbs enqueues and goes back to waiting.
    h.advance(secs(10));
    h.stage().await;
    assert_eq!(h.get(second[0].id).await.state, JobState::Available);
    let third = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":3}"#)])
        .await;
    assert_eq!(third[0].id, second[0].id);
    assert!(third[0].debounced);
    let got = h.get(second[0].id).await;
    assert_eq!(
        (got.state, got.run_at),
        (JobState::Scheduled, add(h.now(), secs(10)))
    );
    assert_eq!(h.counts("q").await[&JobState::Available], 0);
    assert_eq!(h.counts("q").await[&JobState::Scheduled], 1);
}

/// Concurrent enqueues of one debounce key, and one key twice in one command, end in one waiting job.
pub async fn concurrent_debounces_make_one_job(h: Harness) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                let payload = format!(r#"{{"n":{i}}}"#);
                store
                    .job_insert(crate::JobInsertParams {
                        jobs: vec![debounced("q", "k", 10, None, &payload)],
                    })
                    .await
                    .unwrap()
                    .remove(0)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one job for the key: {ids:?}");
    assert_eq!(h.counts("q").await[&JobState::Scheduled], 1);

    let out = h
        .insert(vec![
            debounced("q2", "k", 10, None, r#"{"n":1}"#),
            debounced("q2", "k", 10, None, r#"{"n":2}"#),
        ])
        .await;
    assert_eq!(out[0].id, out[1].id);
    assert!(!out[0].debounced && out[1].debounced);
    assert_eq!(h.get(out[0].id).await.payload.get(), r#"{"n":2}"#);
    assert_eq!(h.counts("q2").await[&JobState::Scheduled], 1);
}

/// A debounced job that ran once and waits again (a retry, a snooze) takes no enqueues, and waits beside the
/// new job of its key without conflict when both become due.
pub async fn started_debounced_jobs_wait_beside_new_ones(h: Harness) {
    let first = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":1}"#)])
        .await;
    h.advance(secs(10));
    h.stage().await;
    let c = h.claim("q", 1).await.remove(0);
    assert_eq!(c.id, first[0].id);
    let state = h.fail(&c, "boom", true, None).await.unwrap().state;
    assert_eq!(state, JobState::Retrying);
    let second = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":2}"#)])
        .await;
    assert_ne!(second[0].id, first[0].id, "a retry takes no enqueues");
    assert!(!second[0].debounced);
    h.advance(secs(60));
    h.stage().await;
    assert_eq!(h.get(first[0].id).await.state, JobState::Available);
    assert_eq!(h.get(second[0].id).await.state, JobState::Available);

    // The same with a snooze: the snoozed job comes back beside a waiting one.
    let c = h.claim("q", 1).await.remove(0);
    let third = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":3}"#)])
        .await;
    let snooze = Finish::Snooze { delay: secs(5) };
    h.finish(c.id, c.lease_token, snooze).await.unwrap();
    h.advance(secs(60));
    h.stage().await;
    assert_eq!(h.get(c.id).await.state, JobState::Available);
    assert_eq!(h.get(third[0].id).await.state, JobState::Available);
}

/// Retrying a cancelled debounced job that never started, while a newer job of its key waits, runs it as a plain
/// job: it leaves debouncing, and the waiting job keeps absorbing enqueues.
pub async fn retried_debounced_job_leaves_debouncing(h: Harness) {
    let first = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":1}"#)])
        .await;
    h.store.job_cancel(first[0].id).await.unwrap();
    let waiting = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":2}"#)])
        .await;
    assert_ne!(waiting[0].id, first[0].id);
    let retried = h.store.job_retry(first[0].id).await.unwrap();
    assert_eq!(retried.state, JobState::Available);
    assert_eq!(retried.debounce_key, None);
    let again = h
        .insert(vec![debounced("q", "k", 10, None, r#"{"n":3}"#)])
        .await;
    assert_eq!(again[0].id, waiting[0].id);
    assert!(again[0].debounced);
    assert_eq!(h.get(waiting[0].id).await.payload.get(), r#"{"n":3}"#);
    assert_eq!(h.get(first[0].id).await.payload.get(), r#"{"n":1}"#);
}

/// Counters corrupted behind the store's back (a group's running and available jobs, a group row without jobs,
/// the queue's running count) are each reported once with what they were and what they are now, set right (a
/// claim the corrupt count held starts), and a clean store reports nothing.
pub async fn drifted_counters_are_repaired_and_reported(h: Harness) {
    limit(&h, "q", serde_json::json!({"group_concurrency": 2})).await;
    h.insert(vec![
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "b"),
        grouped("q", "b"),
    ])
    .await;
    let first = h.claim("q", 3).await;
    assert_eq!(first.len(), 3);
    assert!(
        h.store.flow_counters_repair().await.unwrap().is_empty(),
        "a clean store reports nothing"
    );
    let running_a = groups_of(&h, &first)
        .await
        .iter()
        .filter(|g| g.as_deref() == Some("a"))
        .count();
    let running_a = i64::try_from(running_a).unwrap();
    let available_b = 2 - i64::try_from(first.len()).unwrap() + running_a;

    h.raw_sql("UPDATE queue_groups SET running = running + 3 WHERE queue = 'q' AND grp = 'a'")
        .await;
    h.raw_sql("UPDATE queue_groups SET available = 7 WHERE queue = 'q' AND grp = 'b'")
        .await;
    h.raw_sql(
        "INSERT INTO queue_groups (queue, grp, available, running) VALUES ('q', 'ghost', 0, 2)",
    )
    .await;
    h.raw_sql("DELETE FROM queue_counts WHERE queue = 'q' AND state = 'running'")
        .await;

    let fixed: Vec<_> = h
        .store
        .flow_counters_repair()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.queue, r.group, r.counter, r.was, r.now))
        .collect();
    assert_eq!(
        fixed,
        vec![
            ("q".into(), None, FlowCounter::QueueRunning, 0, 3),
            (
                "q".into(),
                some("a"),
                FlowCounter::GroupRunning,
                running_a + 3,
                running_a
            ),
            (
                "q".into(),
                some("b"),
                FlowCounter::GroupAvailable,
                7,
                available_b
            ),
            ("q".into(), some("ghost"), FlowCounter::GroupRunning, 2, 0),
        ]
    );
    assert!(
        h.store.flow_counters_repair().await.unwrap().is_empty(),
        "repaired counters stay right"
    );
    let usage = h
        .store
        .queue_get("q")
        .await
        .unwrap()
        .unwrap()
        .usage
        .unwrap();
    assert_eq!(usage.running, 3);

    // With the corrupt count, a would still "run" 3 jobs once its real ones ended, and hold its waiting job.
    for c in &first {
        h.complete(c, None).await.unwrap();
    }
    let next = h.claim("q", 5).await;
    assert_eq!(next.len(), 2, "both jobs left start");
}

/// Held jobs are counted by the limit that holds them: group concurrency, concurrency (a full queue holds
/// everything), a throttle; a queue without limits holds nothing.
pub async fn held_jobs_are_counted_by_kind(h: Harness) {
    limit(&h, "q", serde_json::json!({"group_concurrency": 1})).await;
    h.insert(vec![
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "a"),
        grouped("q", "b"),
        job("q"),
    ])
    .await;
    assert_eq!(
        h.claim("q", 10).await.len(),
        3,
        "a, b and the job without a group"
    );
    let held = h.store.queue_held("q").await.unwrap();
    assert_eq!(
        (held.concurrency, held.group_concurrency, held.throttle),
        (0, 2, 0)
    );
    limit(&h, "q", serde_json::json!({"concurrency": 3})).await;
    let held = h.store.queue_held("q").await.unwrap();
    assert_eq!(
        (held.concurrency, held.group_concurrency, held.throttle),
        (2, 0, 0),
        "a full queue holds every waiting job"
    );

    limit(
        &h,
        "t",
        serde_json::json!({"throttle": {"limit": 1, "period": "1h"}}),
    )
    .await;
    h.insert((0..3).map(|_| job("t")).collect()).await;
    assert_eq!(h.claim("t", 10).await.len(), 1);
    let held = h.store.queue_held("t").await.unwrap();
    assert_eq!(
        (held.concurrency, held.group_concurrency, held.throttle),
        (0, 0, 2)
    );

    h.insert(vec![job("free")]).await;
    let held = h.store.queue_held("free").await.unwrap();
    assert_eq!(held, Default::default());
    let held = h.store.queue_held("unknown").await.unwrap();
    assert_eq!(held, Default::default());
}
