//! Reads for the API and dashboard: job lists, per-queue counts and throughput match what the jobs actually did.

use std::collections::BTreeMap;

use offload_core::state::add;
use offload_core::{JobId, JobState, NewJob, RunAt, Timestamp};

use crate::{JobListParams, JobPruneParams, JobRescueParams, QueueThroughputParams};

use super::{Harness, job, secs, state_counts, t0};

/// Ids of a `job_list` page, panicking on failure.
async fn list_ids(h: &Harness, p: JobListParams) -> Vec<JobId> {
    h.store
        .job_list(p)
        .await
        .expect("job_list")
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// Throughput of `since`, panicking on failure.
async fn throughput(h: &Harness, since: Timestamp) -> Vec<(String, Timestamp, u64, u64)> {
    h.store
        .queue_throughput(QueueThroughputParams { since })
        .await
        .expect("queue_throughput")
        .into_iter()
        .map(|b| (b.queue, b.minute, b.succeeded, b.failed))
        .collect()
}

/// Lists find the few old jobs of a state among many newer ones, a name's or a tag's jobs wherever they are,
/// newest first, page after page; a deleted job is gone from every list.
pub async fn job_list_finds_rare_states_names_and_tags(h: Harness) {
    let tagged = |k: &str, v: &str| NewJob {
        tags: BTreeMap::from([(k.to_owned(), v.to_owned())]),
        ..job("q")
    };
    // Oldest: 3 jobs that will stay available, 2 of them named and tagged, behind 40 newer ones that finish.
    let mut old = vec![
        NewJob {
            name: Some("rare".into()),
            ..tagged("tenant", "acme")
        },
        job("q"),
        NewJob {
            name: Some("rare".into()),
            ..tagged("tenant", "acme")
        },
    ];
    for j in &mut old {
        j.priority = 0;
    }
    let old_ids: Vec<JobId> = old.iter().map(|j| j.id).collect();
    h.insert(old).await;
    let newer: Vec<NewJob> = (0..40)
        .map(|i| NewJob {
            priority: 1,
            ..tagged("tenant", if i % 2 == 0 { "other" } else { "acme" })
        })
        .collect();
    h.insert(newer).await;
    let claimed = h.claim("q", 40).await;
    assert!(
        claimed.iter().all(|c| !old_ids.contains(&c.id)),
        "priority 1 first"
    );
    for c in &claimed[..39] {
        h.complete(c, None).await.unwrap();
    }
    let running = claimed[39].id;

    let newest_first: Vec<JobId> = old_ids.iter().rev().copied().collect();
    for queue in [Some("q".to_owned()), None] {
        let available = JobListParams {
            queue: queue.clone(),
            state: Some(JobState::Available),
            limit: 2,
            ..Default::default()
        };
        let page = list_ids(&h, available.clone()).await;
        assert_eq!(page, newest_first[..2], "{queue:?}");
        let rest = list_ids(
            &h,
            JobListParams {
                before: Some(page[1]),
                ..available
            },
        )
        .await;
        assert_eq!(rest, newest_first[2..], "{queue:?}");
        let runs = list_ids(
            &h,
            JobListParams {
                queue,
                state: Some(JobState::Running),
                limit: 5,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(runs, vec![running]);
    }
    let named = list_ids(
        &h,
        JobListParams {
            name: Some("rare".into()),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(named, vec![old_ids[2]]);
    let named = list_ids(
        &h,
        JobListParams {
            name: Some("rare".into()),
            queue: Some("q".into()),
            before: Some(old_ids[2]),
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(named, vec![old_ids[0]]);
    // 20 newer acme jobs (19 succeeded, the running one or not), then the 2 old ones.
    let acme = JobListParams {
        tag: Some(("tenant".into(), "acme".into())),
        limit: 100,
        ..Default::default()
    };
    let all = list_ids(&h, acme.clone()).await;
    assert_eq!(all.len(), 22);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first");
    let old_acme = list_ids(
        &h,
        JobListParams {
            state: Some(JobState::Available),
            ..acme.clone()
        },
    )
    .await;
    assert_eq!(old_acme, vec![old_ids[2], old_ids[0]]);
    let page = list_ids(
        &h,
        JobListParams {
            before: Some(all[10]),
            limit: 5,
            ..acme.clone()
        },
    )
    .await;
    assert_eq!(page, all[11..16]);
    h.store.job_delete(old_ids[2]).await.unwrap();
    let after = list_ids(&h, acme).await;
    assert_eq!(after.len(), 21);
    assert!(!after.contains(&old_ids[2]));
}

/// Ended attempts are counted per queue and minute: completions as succeeded, worker failures (retrying or
/// dead) and expired leases as failed, acknowledged cancellations as neither; `since` picks whole minutes; the
/// pruner drops minutes older than a day.
pub async fn throughput_counts_ended_attempts_per_minute(h: Harness) {
    let m = |n: u64| add(t0(), secs(60 * n));
    assert!(throughput(&h, t0()).await.is_empty());
    let ids = h
        .insert((0..5).map(|i| job(if i < 4 { "a" } else { "b" })).collect())
        .await;
    h.store.job_cancel(ids[3].id).await.unwrap();
    assert!(
        throughput(&h, t0()).await.is_empty(),
        "enqueues and cancels end no attempt"
    );
    let a = h.claim("a", 3).await;
    h.advance(secs(10));
    h.complete(&a[0], None).await.unwrap();
    h.fail(&a[1], "boom", true, None).await.unwrap();
    let b = h.claim("b", 1).await;
    h.advance(secs(60));
    h.fail(&a[2], "fatal", false, None).await.unwrap();
    h.complete(&b[0], None).await.unwrap();
    assert_eq!(
        throughput(&h, t0()).await,
        vec![
            ("a".to_owned(), m(0), 1, 1),
            ("a".to_owned(), m(1), 0, 1),
            ("b".to_owned(), m(1), 1, 0),
        ]
    );
    assert_eq!(
        throughput(&h, add(m(1), secs(59))).await.len(),
        2,
        "`since` includes the minute holding it"
    );

    // An expired lease is a failed attempt, in the minute of the rescue.
    h.stage().await;
    let again = h.claim("a", 1).await;
    assert_eq!(again.len(), 1);
    h.advance(secs(120));
    let rescued = h
        .store
        .job_rescue_expired(JobRescueParams { limit: 10 })
        .await
        .unwrap();
    assert_eq!(rescued.rescued.len(), 1);
    assert_eq!(
        throughput(&h, m(2)).await,
        vec![("a".to_owned(), m(3), 0, 1)]
    );

    // Acknowledged cancellation: not a throughput event.
    h.advance(secs(10));
    h.stage().await;
    let c = h.claim("a", 1).await.remove(0);
    h.store.job_cancel(c.id).await.unwrap();
    h.fail(&c, "stopped", true, None).await.unwrap();
    assert_eq!(h.get(c.id).await.state, JobState::Cancelled);
    assert_eq!(
        throughput(&h, m(2)).await,
        vec![("a".to_owned(), m(3), 0, 1)]
    );

    h.advance(secs(2 * 24 * 3600));
    let prune = JobPruneParams {
        succeeded: secs(365 * 24 * 3600),
        dead: secs(365 * 24 * 3600),
        cancelled: secs(365 * 24 * 3600),
        limit: 100,
    };
    h.store.job_prune(prune).await.unwrap();
    assert!(throughput(&h, t0()).await.is_empty(), "old minutes pruned");
}

/// The per-queue counts always equal the jobs' actual states after a mix of operations, and
/// `oldest_available_age_ms` tracks the oldest available job.
pub async fn queue_counts_match_actual_states(h: Harness) {
    h.insert((0..10).map(|_| job("a")).collect()).await;
    h.insert(
        (0..4)
            .map(|_| NewJob {
                run_at: RunAt::After(secs(30)),
                ..job("b")
            })
            .collect(),
    )
    .await;
    h.insert((0..3).map(|_| job("b")).collect()).await;
    let a = h.claim("a", 6).await;
    h.complete(&a[0], None).await.unwrap();
    h.fail(&a[1], "x", false, None).await.unwrap();
    h.fail(&a[2], "y", true, None).await.unwrap();
    h.store.job_cancel(a[3].id).await.unwrap();
    h.fail(&a[3], "z", true, None).await.unwrap();
    let b = h.claim("b", 1).await;
    h.store.job_delete(b[0].id).await.unwrap_err();
    h.complete(&b[0], None).await.unwrap();
    h.store.job_delete(b[0].id).await.unwrap();
    h.advance(secs(5));

    let queues = h.store.queue_list().await.unwrap();
    assert_eq!(
        queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"],
        "sorted by name"
    );
    for q in &queues {
        let mut actual: BTreeMap<JobState, u64> =
            JobState::ALL.into_iter().map(|s| (s, 0)).collect();
        let mut before = None;
        loop {
            let page = h
                .store
                .job_list(JobListParams {
                    queue: Some(q.name.clone()),
                    before,
                    limit: 3,
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for j in &page {
                *actual.entry(j.state).or_default() += 1;
            }
        }
        assert_eq!(q.counts, actual, "counts of queue {}", q.name);
        assert!(!q.paused);
    }
    assert_eq!(
        queues[0].counts,
        state_counts(&[
            (JobState::Available, 4),
            (JobState::Running, 2),
            (JobState::Succeeded, 1),
            (JobState::Dead, 1),
            (JobState::Retrying, 1),
            (JobState::Cancelled, 1),
        ])
    );
    assert_eq!(queues[0].oldest_available_age_ms, Some(5_000));
    assert_eq!(queues[1].oldest_available_age_ms, Some(5_000));

    h.claim("b", 10).await;
    let b = h
        .store
        .queue_list()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == "b")
        .unwrap();
    assert_eq!(b.oldest_available_age_ms, None, "no available job");
    assert_eq!(
        b.counts,
        state_counts(&[(JobState::Scheduled, 4), (JobState::Running, 2)])
    );
}

/// `job_list` filters by queue, state, name and tag, newest first, and its keyset pages have no duplicates
/// and no gaps.
pub async fn job_list_filters_and_pages(h: Harness) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut tags = BTreeMap::new();
        tags.insert(
            "parity".to_owned(),
            if i % 2 == 0 { "even" } else { "odd" }.to_owned(),
        );
        let j = NewJob {
            name: Some(if i % 3 == 0 { "fizz" } else { "plain" }.into()),
            tags,
            ..job(if i % 5 == 0 { "five" } else { "main" })
        };
        ids.push(j.id);
        h.insert(vec![j]).await;
    }
    let claimed = h.claim("main", 4).await;
    let list = |p: JobListParams| {
        let store = h.store.clone();
        async move { store.job_list(p).await.unwrap() }
    };

    let mut newest_first = ids.clone();
    newest_first.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = list(JobListParams {
            before,
            limit: 7,
            ..Default::default()
        })
        .await;
        assert!(page.len() <= 7);
        assert!(
            page.iter().all(|j| j.attempts.is_none()),
            "lists carry no history"
        );
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen.extend(page.iter().map(|j| j.id));
    }
    assert_eq!(
        seen, newest_first,
        "pages are newest first without duplicates or gaps"
    );

    let five = list(JobListParams {
        queue: Some("five".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        five.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first
            .iter()
            .copied()
            .filter(|id| { ids.iter().position(|x| x == id).unwrap() % 5 == 0 })
            .collect::<Vec<_>>()
    );

    let running = list(JobListParams {
        state: Some(JobState::Running),
        limit: 100,
        ..Default::default()
    })
    .await;
    let mut running_ids: Vec<JobId> = running.iter().map(|j| j.id).collect();
    let mut expected: Vec<JobId> = claimed.iter().map(|c| c.id).collect();
    running_ids.sort();
    expected.sort();
    assert_eq!(running_ids, expected);

    let main_available = list(JobListParams {
        queue: Some("main".into()),
        state: Some(JobState::Available),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(main_available.len(), 20 - 4);
    assert!(
        main_available
            .iter()
            .all(|j| j.queue == "main" && j.state == JobState::Available)
    );

    let fizz = list(JobListParams {
        name: Some("fizz".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(fizz.len(), 9);
    assert!(fizz.iter().all(|j| j.name.as_deref() == Some("fizz")));

    let odd = list(JobListParams {
        tag: Some(("parity".into(), "odd".into())),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(odd.len(), 12);
    assert!(
        odd.iter()
            .all(|j| j.tags.get("parity").map(String::as_str) == Some("odd"))
    );
    let none = list(JobListParams {
        tag: Some(("parity".into(), "prime".into())),
        limit: 100,
        ..Default::default()
    });
    assert!(none.await.is_empty());

    let combined = list(JobListParams {
        queue: Some("main".into()),
        name: Some("fizz".into()),
        tag: Some(("parity".into(), "even".into())),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(combined.len(), 2);
    assert!(combined[0].id > combined[1].id);
    assert!(
        combined
            .iter()
            .all(|j| j.queue == "main" && j.name.as_deref() == Some("fizz"))
    );
    assert!(
        list(JobListParams {
            limit: 0,
            ..Default::default()
        })
        .await
        .is_empty()
    );
}
