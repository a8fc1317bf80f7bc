//! Guards on the query plans the store's performance depends on. Statements are prepared once per connection,
//! and after a few executions PostgreSQL may keep a generic plan, made without the parameters' values: each hot
//! statement's generic plan must walk the index it was written for and never scan the job table. Lists are
//! planned for their values (their best index depends on how common the queue is): a rare queue's list must
//! walk its index, not the whole table. Runs against a real PostgreSQL with enough rows in every state for the
//! statistics to matter.

use offload_store::JobListParams;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, SqlSafeStr, Statement};

use crate::schema;
use crate::testing::{self, TestSchema};

/// The generic plan of `sql`, as `EXPLAIN EXECUTE` shows it with every parameter NULL.
async fn generic_plan(conn: &mut PgConnection, sql: &str) -> String {
    let prepared = (&mut *conn)
        .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
        .await
        .unwrap();
    let types: Vec<String> = match prepared.parameters() {
        Some(sqlx::Either::Left(types)) => types.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    };
    let prepare = if types.is_empty() {
        format!("PREPARE probe AS {sql}")
    } else {
        format!("PREPARE probe ({}) AS {sql}", types.join(", "))
    };
    sqlx::raw_sql(AssertSqlSafe(prepare))
        .execute(&mut *conn)
        .await
        .unwrap();
    let nulls = vec!["NULL"; types.len()].join(", ");
    let explain = if types.is_empty() {
        "EXPLAIN EXECUTE probe".to_owned()
    } else {
        format!("EXPLAIN EXECUTE probe ({nulls})")
    };
    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(explain))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("DEALLOCATE probe")
        .execute(&mut *conn)
        .await
        .unwrap();
    rows.join("\n")
}

#[tokio::test]
async fn statements_use_their_indexes() {
    let Some(url) = testing::url() else { return };
    let test = TestSchema::new(&url);
    schema::migrate(&url, &test.name).await.unwrap();
    let options = schema::connect_options(&url, &test.name, true).unwrap();
    let mut conn = options.connect().await.unwrap();
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    // 40,000 jobs in 8 queues, in every state, so that statistics favour nothing by accident.
    sqlx::raw_sql(
        "INSERT INTO jobs (id, queue, state, payload, priority, max_attempts, backoff_base_ms, backoff_cap_ms, \
           backoff_jitter, timeout_ms, run_at, created_at, finished_at, lease_expires_at) \
         SELECT uuid_v7(now() + i * interval '1 ms'), 'q' || (i % 8), \
           (ARRAY['scheduled', 'available', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'])[1 + i % 7], \
           '{}', 0, 3, 1000, 60000, 0, 30000, now() + i * interval '1 s', now(), \
           CASE WHEN i % 7 >= 4 THEN now() END, CASE WHEN i % 7 = 2 THEN now() END \
         FROM generate_series(1, 40000) AS i; ANALYZE jobs",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let checks: Vec<(String, &str)> = vec![
        (crate::leases::CLAIM_SQL.clone(), "jobs_claim"),
        (crate::leases::HEARTBEAT_SQL.to_owned(), "jobs_pkey"),
        (
            format!(
                "SELECT {} FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                crate::jobs_finish::FACTS
            ),
            "jobs_pkey",
        ),
        (
            format!(
                "SELECT {} FROM jobs WHERE state = 'running' AND lease_expires_at <= $1 \
                 ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                crate::jobs_finish::FACTS
            ),
            "jobs_lease",
        ),
        (crate::jobs_finish::WRITE_SQL.clone(), "jobs_pkey"),
        (crate::maintenance::STAGE_SQL.clone(), "jobs_due"),
        (crate::maintenance::PRUNE_SQL.clone(), "jobs_finished"),
        (crate::queues::QUEUES_SQL.to_owned(), "jobs_available_since"),
        (crate::push::CANDIDATES_SQL.to_owned(), "jobs_push_claim"),
        (crate::push::CANDIDATES_SQL.to_owned(), "jobs_push_running"),
        (crate::push::TAKE_SQL.clone(), "jobs_pkey"),
        (crate::flow_claim::GROUPED_SQL.clone(), "jobs_group_claim"),
        (crate::flow_claim::TOP_SQL.clone(), "jobs_claim"),
        (crate::flow_claim::CLAIM_IDS_SQL.clone(), "jobs_pkey"),
        (crate::debounce::FIND_SQL.to_owned(), "jobs_debounce"),
        (
            crate::push_failures::PUSH_FAILURES_SQL.to_owned(),
            "job_attempts_push_failed",
        ),
    ];
    for (sql, index) in checks {
        let plan = generic_plan(&mut conn, &sql).await;
        assert!(plan.contains(index), "{sql}\n  expected {index}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan on jobs"),
            "{sql}\n  scans jobs:\n{plan}"
        );
    }

    // A rare queue among common ones: its list must walk an index, not the table.
    sqlx::raw_sql(
        "INSERT INTO jobs (id, queue, state, payload, priority, max_attempts, backoff_base_ms, backoff_cap_ms, \
           backoff_jitter, timeout_ms, run_at, created_at) \
         SELECT uuid_v7(now() - i * interval '1 h'), 'rare', \
           (ARRAY['available', 'running', 'dead'])[1 + i % 3], '{}', 0, 3, 1000, 60000, 0, 30000, now(), now() \
         FROM generate_series(1, 30) AS i; ANALYZE jobs; SET plan_cache_mode = auto",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let lists = [
        (None, None, "jobs_pkey"),
        (Some("rare"), None, "jobs_queue"),
        (
            Some("rare"),
            Some(offload_core::JobState::Dead),
            "jobs_settled",
        ),
        (
            Some("rare"),
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
        let (sql, args) = crate::jobs_read::walk_sql(&p, queue).unwrap();
        let explain = format!("EXPLAIN {sql}");
        let rows: Vec<String> = sqlx::query_scalar_with(AssertSqlSafe(explain), args)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan = rows.join("\n");
        assert!(
            plan.contains(index),
            "{queue:?} {state:?}: expected {index}:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan on jobs"),
            "{queue:?} {state:?} scans:\n{plan}"
        );
    }
    let _ = conn.close().await;
}
