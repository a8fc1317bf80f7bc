//! Guards on the query plans the store's performance depends on: each hot or user-facing query must walk the
//! index it was written for, and never sort a whole table (sorting the at most `limit` rows picked is fine).

use offload_store::JobListParams;
use sqlx::sqlite::SqliteArguments;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::jobs_read::Walk;
use crate::schema;

async fn plan(conn: &mut sqlx::SqliteConnection, sql: &str, args: SqliteArguments) -> String {
    let rows = sqlx::query_with(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")), args)
        .fetch_all(conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(3))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn args(values: &[&str]) -> SqliteArguments {
    let mut a = SqliteArguments::default();
    for v in values {
        sqlx::Arguments::add(&mut a, *v).unwrap();
    }
    a
}

#[tokio::test]
async fn queries_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn =
        sqlx::SqliteConnection::connect_with(&schema::write_options(&dir.path().join("p.db")))
            .await
            .unwrap();
    schema::migrator().run(&mut conn).await.unwrap();

    let checks: Vec<(String, SqliteArguments, &str)> = vec![
        (crate::leases::PICK_SQL.to_owned(), args(&["q", "10"]), "jobs_claim"),
        (crate::push::NEXT_PAIR_SQL.to_owned(), args(&["d", "q"]), "jobs_push_claim"),
        (crate::push::NEXT_DESTINATION_SQL.to_owned(), args(&["d"]), "jobs_push_claim"),
        (crate::push::PAIR_JOBS_SQL.to_owned(), args(&["d", "q", "10"]), "jobs_push_claim"),
        (crate::push::RUNNING_SQL.to_owned(), args(&["d"]), "jobs_push_running"),
        (format!("{} FROM jobs WHERE id IN (SELECT unhex(value) FROM json_each(?1))", crate::jobs_finish::FACTS_JSON), args(&["[]"]), "jobs_id"),
        ("SELECT seq FROM jobs WHERE state IN ('scheduled', 'retrying') AND run_at <= ?1 ORDER BY run_at LIMIT ?2".to_owned(), args(&["1", "2"]), "jobs_due"),
        ("SELECT seq FROM jobs WHERE state = 'running' AND lease_expires_at <= ?1 ORDER BY lease_expires_at LIMIT ?2".to_owned(), args(&["1", "2"]), "jobs_lease"),
        ("SELECT seq FROM jobs WHERE state IN ('succeeded', 'dead', 'cancelled') AND state = ?1 AND finished_at <= ?2 ORDER BY finished_at LIMIT ?3".to_owned(), args(&["dead", "1", "2"]), "jobs_finished"),
        (crate::queues::QUEUES_SQL.to_owned(), args(&["q"]), "jobs_available_since"),
    ];
    for (sql, a, index) in checks {
        let p = plan(&mut conn, &sql, a).await;
        assert!(p.contains(index), "{sql}\n  expected {index}: {p}");
        // queue_list sorts queue names, never jobs.
        let sorts_jobs = p.contains("TEMP B-TREE FOR ORDER BY") && !sql.contains("queue_counts");
        assert!(!sorts_jobs, "{sql}\n  sorts: {p}");
    }

    // The dashboard's push failures: the index of failed push attempts only (the latest failure's ties may be
    // sorted: they ended at one instant).
    let failures = [
        (
            crate::push_failures::NEXT_DESTINATION_SQL,
            args(&["d"]),
            false,
        ),
        (
            crate::push_failures::COUNT_SQL,
            args(&["d", "1", "10"]),
            false,
        ),
        (
            crate::push_failures::LATEST_SQL,
            args(&["d", "1", "10"]),
            true,
        ),
    ];
    for (sql, a, may_sort) in failures {
        let p = plan(&mut conn, sql, a).await;
        assert!(p.contains("job_attempts_push_failed"), "{sql}\n  {p}");
        let scans = ["SCAN job_attempts", "SCAN a", "SCAN jobs", "SCAN j"];
        assert!(!scans.iter().any(|s| p.contains(s)), "{sql}\n  scans: {p}");
        assert!(
            may_sort || !p.contains("TEMP B-TREE"),
            "{sql}\n  sorts: {p}"
        );
    }

    let lists = [
        (None, None, "jobs_id"),
        (Some("q"), None, "jobs_queue"),
        (
            Some("q"),
            Some(offload_core::JobState::Dead),
            "jobs_settled",
        ),
        (
            Some("q"),
            Some(offload_core::JobState::Running),
            "jobs_queue",
        ),
    ];
    for (queue, state, index) in lists {
        let p = JobListParams {
            queue: queue.map(str::to_owned),
            state,
            limit: 10,
            ..Default::default()
        };
        let (sql, a) = crate::jobs_read::walk_sql(&p, queue).unwrap();
        let found = plan(&mut conn, &sql, a).await;
        assert!(
            found.contains(index),
            "{queue:?} {state:?}: expected {index}: {found}"
        );
        assert!(
            !found.contains("TEMP B-TREE FOR ORDER BY"),
            "{queue:?} {state:?} sorts: {found}"
        );
    }

    // The dashboard's lookups: a tag's jobs, a name's jobs, and few jobs of a state read whole.
    let tag = JobListParams {
        tag: Some(("tenant".into(), "acme".into())),
        state: Some(offload_core::JobState::Available),
        limit: 10,
        ..Default::default()
    };
    let name = JobListParams {
        name: Some("resize".into()),
        queue: Some("q".into()),
        limit: 10,
        ..Default::default()
    };
    let sparse = |state| JobListParams {
        queue: Some("q".into()),
        state: Some(state),
        limit: 10,
        ..Default::default()
    };
    let cases = [
        (tag, Walk::ById, "SEARCH t USING PRIMARY KEY", false),
        (name, Walk::ById, "jobs_name", false),
        (
            sparse(offload_core::JobState::Available),
            Walk::Sparse,
            "COVERING INDEX jobs_available_since",
            true,
        ),
        (
            sparse(offload_core::JobState::Running),
            Walk::Sparse,
            "jobs_lease",
            true,
        ),
    ];
    for (p, how, index, sorts) in cases {
        let (sql, a) = crate::jobs_read::walk_sql_with(&p, p.queue.as_deref(), how).unwrap();
        let found = plan(&mut conn, &sql, a).await;
        assert!(found.contains(index), "{p:?}: expected {index}: {found}");
        assert_eq!(
            found.contains("TEMP B-TREE FOR ORDER BY"),
            sorts,
            "{p:?}: {found}"
        );
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn function_queries_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn =
        sqlx::SqliteConnection::connect_with(&schema::write_options(&dir.path().join("f.db")))
            .await
            .unwrap();
    schema::migrator().run(&mut conn).await.unwrap();
    let checks: Vec<(&str, SqliteArguments, &[&str])> = vec![
        (
            crate::events::DUPLICATE_SQL,
            args(&["id"]),
            &["events_user_id"],
        ),
        (
            crate::events::CANCEL_WATCHERS_SQL,
            args(&["app/x"]),
            &["PRIMARY KEY (name=? AND kind=?)"],
        ),
        (
            crate::events::CANCEL_KEYS_SQL,
            args(&["app/x", "data.user", "7"]),
            &["run_cancel_keys_match"],
        ),
        (
            crate::events::TRIGGERED_SQL,
            args(&["app/x"]),
            &["PRIMARY KEY (name=? AND kind=?)"],
        ),
        (
            crate::events::WAITS_ANY_SQL,
            args(&["app/x"]),
            &["run_waits_event"],
        ),
        (
            crate::events::WAITS_KEY_SQL,
            args(&["app/x", "data.user", "7"]),
            &["run_waits_event"],
        ),
        (
            crate::events::WAIT_PATHS_SQL,
            args(&["app/x"]),
            &["run_waits_event"],
        ),
        (crate::run_calls::RUN_CALLS_SQL, args(&["r"]), &["jobs_run"]),
        (
            crate::run_calls::WAKE_DUE_SQL,
            args(&["1", "2"]),
            &["run_waits_until"],
        ),
        (
            crate::runs::PRUNE_RUNS_SQL,
            args(&["1", "2"]),
            &["runs_ended"],
        ),
        (
            crate::runs::PRUNE_EVENTS_SQL,
            args(&["1", "2"]),
            &["events_received"],
        ),
    ];
    for (sql, a, indexes) in checks {
        let p = plan(&mut conn, sql, a).await;
        for index in indexes {
            assert!(p.contains(index), "{sql}\n  expected {index}: {p}");
        }
        assert!(
            !p.contains("TEMP B-TREE FOR ORDER BY"),
            "{sql}\n  sorts: {p}"
        );
    }
}

#[tokio::test]
async fn flow_queries_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn =
        sqlx::SqliteConnection::connect_with(&schema::write_options(&dir.path().join("l.db")))
            .await
            .unwrap();
    schema::migrator().run(&mut conn).await.unwrap();
    let checks: Vec<(&str, SqliteArguments, &str)> = vec![
        (
            crate::claim_limited::TOP_SQL,
            args(&["q", "10"]),
            "jobs_claim",
        ),
        (
            crate::claim_limited::UNGROUPED_SQL,
            args(&["q", "10"]),
            "jobs_claim",
        ),
        (
            crate::claim_limited::GROUPS_SQL,
            args(&["q", "1", "5", "10", "2"]),
            "queue_groups_turn",
        ),
        (
            crate::claim_limited::GROUPS_SQL,
            args(&["q", "1", "5", "10", "2"]),
            "jobs_group_claim",
        ),
        (
            crate::jobs_insert::DEBOUNCE_SQL,
            args(&["q", "k"]),
            "jobs_debounce",
        ),
    ];
    for (sql, a, index) in checks {
        let p = plan(&mut conn, sql, a).await;
        assert!(p.contains(index), "{sql}\n  expected {index}: {p}");
        assert!(!p.contains("TEMP B-TREE"), "{sql}\n  sorts: {p}");
    }
    let by_group = |queue: Option<&str>| JobListParams {
        queue: queue.map(str::to_owned),
        group: Some("acme".into()),
        limit: 10,
        ..Default::default()
    };
    for queue in [None, Some("q")] {
        let (sql, a) = crate::jobs_read::walk_sql(&by_group(queue), queue).unwrap();
        let found = plan(&mut conn, &sql, a).await;
        assert!(found.contains("jobs_group"), "{queue:?}: {found}");
        assert!(!found.contains("TEMP B-TREE"), "{queue:?} sorts: {found}");
    }
    conn.close().await.unwrap();
}
