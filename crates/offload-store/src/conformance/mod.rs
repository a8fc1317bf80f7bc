//! The shared conformance suite: the executable definition of the [`Store`] contract.
//!
//! Every store crate runs the same functions against its own implementation, in its `tests/`:
//!
//! ```text
//! async fn factory(clock: Arc<ManualClock>) -> offload_store::conformance::TestStore { /* a fresh store */ }
//! offload_store::conformance_tests!(factory);
//! ```
//!
//! [`conformance_tests!`](crate::conformance_tests) expands to one `#[tokio::test]` per entry of its list
//! (the caller needs `tokio` with the `macros` and `rt-multi-thread` features among its dev-dependencies).
//! Each test gets a fresh, empty store whose clock is a [`ManualClock`]: time only moves when a test moves it,
//! so lease expiry, due jobs, pruning and leader expiry are tested without sleeping.
//!
//! The suite is split by topic, one file each (insert, claim, finish, manage, maintenance, reads, leader,
//! lifecycle, push, push_limits, settings, schedules, functions, function_cron, events, runs, run_reports, flow,
//! function_flow, logs). A suite function is a `pub async fn name(h: Harness)` in a topic
//! file, listed in `conformance_tests!` as `topic::name`. A written but unlisted function would run on no
//! store, so `tests/conformance_registry.rs` reads the topic files and fails on any suite function that is not
//! listed (and on a topic file that is not a module here); the compiler rejects a listed one that does not
//! exist. The list is checked rather than generated so that test bodies stay ordinary, formatted functions
//! instead of living inside a macro invocation.
//!
//! Invariant: a test here checks behaviour users rely on through the [`Store`] trait only, never a store's
//! internals; a store-specific property (file format, pragmas) belongs in that store's own tests.

pub mod claim;
pub mod events;
pub mod finish;
pub mod flow;
pub mod function_cron;
pub mod function_flow;
pub mod functions;
pub mod insert;
pub mod leader;
pub mod lifecycle;
pub mod logs;
pub mod maintenance;
pub mod manage;
pub mod push;
pub mod push_limits;
pub mod reads;
pub mod run_reports;
pub mod runs;
pub mod schedules;
pub mod settings;

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use offload_core::state::{Failure, FailureCause};
use offload_core::{
    Backoff, ClaimedJob, Clock, DurationSpec, JobId, JobState, LeaseToken, ManualClock, NewJob,
    RunAt, SignedDuration, Timestamp,
};
use serde_json::value::RawValue;

use crate::{
    DynStore, Finish, FinishItem, FinishOutcome, Inserted, JobClaimParams, JobFinishParams,
    JobInsertParams, JobStageParams,
};

/// Runs SQL statements on a store's own tables from outside the store (see [`TestStore::with_raw_sql`]).
pub type RawSql = Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What a store crate's factory returns: a fresh, empty store, plus whatever must live as long as it
/// (a temporary directory, a throw-away database).
pub struct TestStore {
    /// The store under test.
    pub store: DynStore,
    /// Dropped after the test.
    pub guard: Box<dyn Any + Send + Sync>,
    /// Raw access to the store's tables, for the few tests that corrupt what the store keeps.
    pub raw: Option<RawSql>,
}

impl TestStore {
    /// A store that needs nothing kept alive beside it.
    pub fn new(store: DynStore) -> Self {
        Self {
            store,
            guard: Box::new(()),
            raw: None,
        }
    }

    /// A store that needs `guard` kept alive until the test ends.
    pub fn with_guard(store: DynStore, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            guard: Box::new(guard),
            raw: None,
        }
    }

    /// Gives tests raw access to the store's tables: `raw` runs one or more statements (which both stores'
    /// dialects accept) and panics on failure. Only tests of repairs use it, to corrupt what the store keeps.
    pub fn with_raw_sql(mut self, raw: RawSql) -> Self {
        self.raw = Some(raw);
        self
    }
}

/// One test's world: the store and the clock it reads.
pub struct Harness {
    /// The store under test.
    pub store: DynStore,
    /// The store's clock; move it with [`Harness::advance`].
    pub clock: Arc<ManualClock>,
    raw: Option<RawSql>,
    _guard: Box<dyn Any + Send + Sync>,
}

/// The instant every test starts at.
pub fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).expect("2026-01-01T00:00:00Z is a valid instant")
}

impl Harness {
    /// Builds a harness from a store factory (called with a fresh clock standing at [`t0`]).
    pub async fn start<F, Fut>(factory: F) -> Self
    where
        F: FnOnce(Arc<ManualClock>) -> Fut,
        Fut: Future<Output = TestStore>,
    {
        let clock = Arc::new(ManualClock::new(t0()));
        let TestStore { store, guard, raw } = factory(clock.clone()).await;
        Self {
            store,
            clock,
            raw,
            _guard: guard,
        }
    }

    /// Runs SQL on the store's tables behind its back (see [`TestStore::with_raw_sql`]); panics when the
    /// store's factory gave no raw access.
    pub async fn raw_sql(&self, sql: &str) {
        let raw = self
            .raw
            .as_ref()
            .expect("this test needs the factory's raw SQL access (TestStore::with_raw_sql)");
        raw(sql.to_owned()).await;
    }

    /// The store's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock
            .advance(SignedDuration::try_from(by).expect("test durations are small"));
    }

    /// Inserts jobs; panics on failure.
    pub async fn insert(&self, jobs: Vec<NewJob>) -> Vec<Inserted> {
        self.store
            .job_insert(JobInsertParams { jobs })
            .await
            .expect("insert")
    }

    /// Claims up to `max_jobs` from `queue` as `worker`.
    pub async fn claim_as(&self, queue: &str, worker: &str, max_jobs: u32) -> Vec<ClaimedJob> {
        let p = JobClaimParams {
            queue: queue.into(),
            worker_id: worker.into(),
            max_jobs,
        };
        self.store.job_claim(p).await.expect("claim")
    }

    /// Claims up to `max_jobs` from `queue` as worker `w1`.
    pub async fn claim(&self, queue: &str, max_jobs: u32) -> Vec<ClaimedJob> {
        self.claim_as(queue, "w1", max_jobs).await
    }

    /// Reports one attempt's end.
    pub async fn finish(
        &self,
        id: JobId,
        lease_token: LeaseToken,
        finish: Finish,
    ) -> FinishOutcome {
        let p = JobFinishParams {
            items: vec![FinishItem {
                id,
                lease_token,
                finish,
            }],
        };
        let mut out = self.store.job_finish(p).await.expect("finish call");
        assert_eq!(out.len(), 1, "one answer per item");
        out.remove(0)
    }

    /// Completes a claimed job with `result`.
    pub async fn complete(&self, job: &ClaimedJob, result: Option<&str>) -> FinishOutcome {
        self.finish(
            job.id,
            job.lease_token,
            Finish::Complete {
                result: result.map(raw),
            },
        )
        .await
    }

    /// Fails a claimed job.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        error: &str,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> FinishOutcome {
        let failure = Failure {
            error: error.into(),
            retry_after,
            retryable,
            cause: FailureCause::Worker,
        };
        self.finish(job.id, job.lease_token, Finish::Fail(failure))
            .await
    }

    /// Stages due jobs.
    pub async fn stage(&self) -> crate::StageReport {
        self.store
            .job_stage_due(JobStageParams { limit: 10_000 })
            .await
            .expect("stage")
    }

    /// Reads a job that must exist.
    pub async fn get(&self, id: JobId) -> offload_core::Job {
        self.store
            .job_get(id)
            .await
            .expect("get")
            .expect("job exists")
    }

    /// The counts of one queue as `queue_list` reports them (empty when the queue is not listed).
    pub async fn counts(&self, queue: &str) -> BTreeMap<JobState, u64> {
        let queues = self.store.queue_list().await.expect("queue_list");
        queues
            .into_iter()
            .find(|q| q.name == queue)
            .map(|q| q.counts)
            .unwrap_or_default()
    }
}

/// Raw JSON text.
pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON in a test")
}

/// A valid job with plain defaults: available now, priority 0, 3 attempts, backoff 1s..60s without jitter,
/// 30s timeout.
pub fn job(queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        queue: queue.into(),
        name: None,
        payload: raw(r#"{"n":1}"#),
        run_at: RunAt::Now,
        priority: 0,
        max_attempts: 3,
        backoff: Backoff {
            base: DurationSpec(Duration::from_secs(1)),
            cap: DurationSpec(Duration::from_secs(60)),
            jitter: 0.0,
        },
        timeout: Duration::from_secs(30),
        idempotency_key: None,
        request_fingerprint: None,
        tags: BTreeMap::new(),
        target: None,
        group: None,
        debounce: None,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn state_counts(pairs: &[(JobState, u64)]) -> BTreeMap<JobState, u64> {
    let mut all: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    all.extend(pairs.iter().copied());
    all
}

/// For [`conformance_tests!`](crate::conformance_tests) without `skip_if`: never skips.
pub fn never_skip() -> bool {
    false
}

/// Expands to one `#[tokio::test]` per conformance function, each on a fresh store from `$factory`
/// (an `async fn(Arc<ManualClock>) -> TestStore`).
///
/// With `skip_if = $skip` (a `fn() -> bool`), each test returns at once when `$skip()` is true: for stores
/// that need an external database the environment may not provide (the function says why it skips).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!($factory, skip_if = $crate::conformance::never_skip);
    };
    ($factory:path, skip_if = $skip:path) => {
        $crate::conformance_tests!(@each $factory, $skip;
            insert::insert_and_get_round_trip_every_field,
            insert::batch_insert_is_all_or_nothing,
            insert::idempotent_replay_and_conflict,
            insert::idempotency_conflict_keeps_nothing_of_the_command,
            claim::delayed_job_is_claimable_only_after_staging,
            claim::claims_follow_priority_then_due_time,
            claim::claims_respect_max_jobs_and_queue,
            claim::concurrent_claimers_never_share_a_job,
            claim::paused_queue_hands_out_nothing,
            finish::heartbeat_extends_lease_and_reports_cancel,
            finish::complete_records_result_and_history,
            finish::failure_retries_with_backoff_then_dies,
            finish::non_retryable_and_retry_after,
            finish::attempts_history_is_recorded,
            finish::finish_batch_items_stand_alone,
            finish::rescue_expired_lease_fences_the_old_worker,
            finish::snooze_runs_again_later_without_using_up_an_attempt,
            finish::worker_cancel_ends_the_job,
            manage::cancel_rules,
            manage::manual_retry_of_dead_and_cancelled,
            manage::delete_rules,
            maintenance::prune_honours_retention_per_state,
            reads::job_list_finds_rare_states_names_and_tags,
            reads::throughput_counts_ended_attempts_per_minute,
            reads::queue_counts_match_actual_states,
            reads::job_list_filters_and_pages,
            leader::leader_election_takeover_and_resign,
            lifecycle::available_jobs_wake_subscribers,
            lifecycle::close_makes_the_store_unavailable,
            push::push_jobs_are_only_claimed_by_the_dispatcher,
            push::push_claims_cap_each_destination,
            push::push_callbacks_are_created_with_the_end,
            push::push_failures_are_grouped_by_destination,
            push::push_failures_break_ties_and_cut_errors,
            push_limits::push_cap_counts_every_dispatcher,
            push_limits::push_slots_free_on_every_end,
            settings::setting_init_keeps_the_first_value,
            schedules::schedule_upsert_get_list_delete,
            schedules::schedule_pause_resume_and_due,
            schedules::schedule_fire_creates_jobs_and_advances,
            schedules::schedule_ticks_are_unique_per_fire_time,
            schedules::schedule_fire_skips_a_tick_repeated_in_one_call,
            schedules::schedule_fire_applies_plans_for_one_schedule_in_order,
            schedules::schedule_fire_applies_the_overlap_policy,
            schedules::schedule_fire_records_missed_ticks,
            schedules::schedule_fire_ignores_changed_schedules,
            schedules::schedule_trigger_runs_now,
            functions::function_put_get_list_delete,
            functions::app_sync_reports_each_function,
            function_cron::a_cron_tick_starts_one_run,
            function_cron::a_late_cron_catches_up_with_one_run,
            function_cron::replacing_the_cron_recomputes_the_next_fire_time,
            function_cron::removing_the_function_stops_its_cron,
            function_cron::a_cron_in_a_dst_gap_fires_after_the_gap,
            function_cron::a_singleton_cron_skips_ticks_while_its_run_is_live,
            events::event_send_starts_a_run_per_matching_function,
            events::duplicate_event_id_starts_nothing,
            events::wait_for_event_resolves_on_a_matching_event,
            events::wait_for_event_times_out_to_null,
            events::cancel_on_cancels_a_sleeping_run,
            events::send_event_step_sends_once,
            runs::a_step_is_recorded_once_and_carried_by_the_next_call,
            runs::a_failing_step_retries_with_backoff_then_is_recorded,
            runs::sleep_then_done_succeeds_with_output,
            runs::invoke_returns_the_childs_output,
            runs::parallel_steps_each_get_one_call,
            runs::a_dead_call_fails_the_run,
            runs::run_retry_resumes_from_the_failed_step,
            runs::run_cancel_stops_calls,
            runs::run_record_steps_checks_the_lease,
            runs::run_prune_deletes_old_runs_and_events,
            runs::invoke_times_out_and_a_cancelled_child_fails_the_step,
            runs::expired_and_cancelled_call_jobs_end_their_runs,
            runs::run_list_filters_by_visible_state,
            run_reports::event_send_names_the_functions_of_the_runs_it_starts,
            run_reports::a_call_end_reports_steps_and_the_runs_end,
            run_reports::a_dead_or_expired_call_reports_the_run_failed,
            flow::group_is_stored_listed_and_filtered,
            flow::concurrency_caps_running_jobs,
            flow::group_concurrency_holds_per_group,
            flow::throttle_admits_burst_then_says_when,
            flow::per_group_throttles_are_independent,
            flow::fair_claims_take_groups_in_turn,
            flow::every_way_a_running_job_ends_frees_its_slot,
            flow::lowered_limit_lets_running_jobs_finish,
            flow::waiting_for_explains_held_jobs,
            flow::queue_get_reports_usage,
            flow::debounce_coalesces_enqueues,
            flow::debounce_max_wait_caps_the_start,
            flow::running_debounced_job_does_not_absorb,
            flow::concurrent_debounces_make_one_job,
            flow::started_debounced_jobs_wait_beside_new_ones,
            flow::retried_debounced_job_leaves_debouncing,
            function_flow::keyed_concurrency_groups_calls_and_limits_the_queue,
            function_flow::functions_without_controls_leave_queue_limits_alone,
            function_flow::rate_limit_skips_events_and_records_them,
            function_flow::singleton_skips_or_cancels_the_live_run,
            flow::drifted_counters_are_repaired_and_reported,
            flow::held_jobs_are_counted_by_kind,
            logs::log_lines_are_appended_and_read_in_order,
            logs::log_lease_token_records_the_attempt,
            logs::log_keeps_the_newest_lines,
            logs::log_lines_go_with_their_owner,
        );
    };
    (@each $factory:path, $skip:path; $($topic:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if $skip() {
                    return;
                }
                let harness = $crate::conformance::Harness::start($factory).await;
                $crate::conformance::$topic::$name(harness).await;
            }
        )*
    };
}
