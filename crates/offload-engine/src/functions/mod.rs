//! Durable functions on the engine: registering functions, sending events and steering runs, with what a store
//! cannot do itself: validating definitions and events against the server's settings, checking push targets
//! against the outbound address policy, and waking claimers (and the push dispatcher) after writes that make
//! call jobs available.
//!
//! Invariant: every write goes through the store's one-transaction operation and every wake-up follows a write
//! the store committed; a refused request (invalid definition, invalid event, refused push address) writes
//! nothing.

/// The app that owns the functions of the configuration file's `[[function]]` entries; the API refuses to
/// sync it.
pub const FILE_APP: &str = "offload.toml";

use offload_core::JobId;
use offload_core::LeaseToken;
use offload_core::function::definition::{Function, FunctionSpec, RunsOn};
use offload_core::function::event::{EventId, EventRequest, validate_batch};
use offload_core::function::protocol::{RanOutcome, RanStep};
use offload_core::function::run::{RunId, RunState};
use offload_core::spec::ValidationError;
use offload_store::{
    AppSyncParams, AppSynced, EventListParams, EventRecord, EventSendParams, EventSendReport,
    FunctionListParams, FunctionPut, FunctionPutParams, FunctionRecord, RunListParams, RunRecord,
    RunRecordStepsParams, StepRecord, StoreError,
};
use serde_json::Value;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::observe;

/// The function, event and run operations of an [`Engine`]; see [`Engine::functions`].
#[derive(Debug, Clone, Copy)]
pub struct Functions<'a> {
    engine: &'a Engine,
}

impl Engine {
    /// The durable-function operations: functions, events and runs.
    pub fn functions(&self) -> Functions<'_> {
        Functions { engine: self }
    }
}

/// A definition validated and checked against this server, ready for the store.
fn prepare(
    engine: &Engine,
    spec: FunctionSpec,
    path_id: Option<&str>,
) -> Result<(Function, Value)> {
    let mut registered = spec.clone();
    let function = spec.validate(path_id)?;
    if let RunsOn::Push(target) = &function.runs_on {
        engine.check_target(target)?;
    }
    registered.id = Some(function.id.clone());
    let spec = serde_json::to_value(&registered)
        .map_err(|e| StoreError::Internal(format!("function {}: {e}", function.id)))?;
    Ok((function, spec))
}

impl Functions<'_> {
    /// Registers or replaces the function `path_id` (the id from `PUT /v1/functions/{id}`; the body's `id`
    /// must be absent or equal). A push target is checked against the outbound address policy exactly as a
    /// push job's is. A function registered by an app's sync is taken over (its `app` cleared).
    pub async fn put(&self, spec: FunctionSpec, path_id: &str) -> Result<FunctionPut> {
        let (function, spec) = prepare(self.engine, spec, Some(path_id))?;
        let put = self
            .engine
            .store()
            .function_put(FunctionPutParams {
                function,
                spec,
                app: None,
            })
            .await?;
        self.engine.function_crons_changed();
        Ok(put)
    }

    /// One registered (not removed) function.
    pub async fn get(&self, id: &str) -> Result<Option<FunctionRecord>> {
        Ok(self.engine.store().function_get(id).await?)
    }

    /// A page of registered functions, by id.
    pub async fn list(&self, params: FunctionListParams) -> Result<Vec<FunctionRecord>> {
        Ok(self.engine.store().function_list(params).await?)
    }

    /// Removes a function: it starts no more runs; its runs keep going to their end.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.engine.store().function_delete(id).await?;
        self.engine.function_crons_changed();
        Ok(())
    }

    /// Replaces `app`'s whole set of functions in one transaction: each definition (with its `id`) is
    /// validated and checked first (a refusal names `functions[i].field` and writes nothing); functions of the
    /// app missing from the set are removed, and their runs keep going.
    pub async fn sync_app(&self, app: &str, specs: Vec<FunctionSpec>) -> Result<AppSynced> {
        let mut functions = Vec::with_capacity(specs.len());
        let mut ids = std::collections::BTreeSet::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let field = format!("functions[{i}]");
            let prepared = prepare(self.engine, spec, None).map_err(|e| match e {
                EngineError::Invalid(v) => EngineError::Invalid(v.within(&field)),
                other => other,
            })?;
            if !ids.insert(prepared.0.id.clone()) {
                return Err(ValidationError::invalid(
                    format!("{field}.id"),
                    format!("`{}` is given twice", prepared.0.id),
                )
                .into());
            }
            functions.push(prepared);
        }
        let synced = self
            .engine
            .store()
            .app_sync(AppSyncParams {
                app: app.to_owned(),
                functions,
            })
            .await?;
        self.engine.function_crons_changed();
        Ok(synced)
    }

    /// Validates and stores events (all or nothing), fanning each out in the same transaction: runs started,
    /// waits resolved, runs cancelled by `cancel_on`. Then wakes the claimers of the queues that got calls,
    /// and the push dispatcher.
    pub async fn send_events(&self, events: Vec<EventRequest>) -> Result<EventSendReport> {
        let config = &self.engine.config().functions;
        let events = validate_batch(events, self.engine.now(), config.max_event_bytes)?;
        let names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
        let report = self
            .engine
            .store()
            .event_send(EventSendParams {
                events,
                limits: config.limits,
            })
            .await?;
        for (name, sent) in names.iter().zip(&report.events) {
            observe::event_received(name, sent.duplicate);
            observe::runs_started(&sent.started);
        }
        self.engine.wake_calls(&report.woken);
        Ok(report)
    }

    /// One stored event with the runs it started.
    pub async fn event(&self, id: EventId) -> Result<Option<EventRecord>> {
        Ok(self.engine.store().event_get(id).await?)
    }

    /// A page of stored events, newest first.
    pub async fn events(&self, params: EventListParams) -> Result<Vec<EventRecord>> {
        Ok(self.engine.store().event_list(params).await?)
    }

    /// One run.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        Ok(self.engine.store().run_get(id).await?)
    }

    /// A filtered page of runs, newest first.
    pub async fn runs(&self, params: RunListParams) -> Result<Vec<RunRecord>> {
        Ok(self.engine.store().run_list(params).await?)
    }

    /// A run's steps in the order they were first seen, with their attempts.
    pub async fn steps(&self, id: RunId) -> Result<Vec<StepRecord>> {
        Ok(self.engine.store().run_steps(id).await?)
    }

    /// Cancels a run that has not ended (a running call is asked to stop); a parent waiting on it through
    /// `invoke` resumes with the step's error, so its queue is woken.
    pub async fn cancel_run(&self, id: RunId) -> Result<RunRecord> {
        let run = self.engine.store().run_cancel(id).await?;
        let ended = run.ended_at.unwrap_or_else(|| self.engine.now());
        observe::run_ended(&run.function_id, RunState::Cancelled, run.created_at, ended);
        if let Some((parent, _)) = run.parent {
            self.wake_run(parent).await;
        }
        Ok(run)
    }

    /// Resumes a failed or cancelled run from where it stopped (finished steps keep their results) and wakes
    /// the claimers of its function's queue.
    pub async fn retry_run(&self, id: RunId) -> Result<RunRecord> {
        let run = self.engine.store().run_retry(id).await?;
        self.wake_function(&run.function_id).await;
        Ok(run)
    }

    /// Records `run` steps a pull worker ran within its call's lease (a stale `lease_token` is refused with
    /// `LeaseMismatch`); the call stays in flight.
    pub async fn record_steps(
        &self,
        run_id: RunId,
        job_id: JobId,
        lease_token: LeaseToken,
        steps: Vec<RanStep>,
    ) -> Result<RunRecord> {
        let limits = self.engine.config().functions.limits;
        let errors = steps
            .iter()
            .filter(|s| matches!(s.outcome, RanOutcome::Error { .. }))
            .count() as u64;
        let data = steps.len() as u64 - errors;
        let run = self
            .engine
            .store()
            .run_record_steps(RunRecordStepsParams {
                run_id,
                job_id,
                lease_token,
                steps,
                limits,
            })
            .await?;
        observe::steps(&run.function_id, "data", data);
        observe::steps(&run.function_id, "error", errors);
        Ok(run)
    }

    /// Makes the file-defined functions match `specs` (the configuration file's `[[function]]` entries, in
    /// order): a sync of the app [`FILE_APP`], so definitions stored exactly so already are left alone (a
    /// restart with an unchanged file rewrites nothing), and file functions the file no longer has are removed
    /// (their runs keep going). Functions registered through the API are never touched unless the file names
    /// them, which takes them over.
    pub async fn sync_file(&self, specs: Vec<FunctionSpec>) -> Result<AppSynced> {
        self.sync_app(FILE_APP, specs).await
    }

    /// Wakes the claimers of a run's function's queue (best effort: the poll backs it up).
    async fn wake_run(&self, id: RunId) {
        if let Ok(Some(run)) = self.engine.store().run_get(id).await {
            self.wake_function(&run.function_id).await;
        } else {
            self.engine.wake_calls(&[]);
        }
    }

    /// Wakes the claimers of a function's queue, and the push dispatcher.
    async fn wake_function(&self, function_id: &str) {
        match self.engine.store().function_get(function_id).await {
            Ok(Some(record)) => self.engine.wake_calls(&[record.function.queue]),
            _ => self.engine.wake_calls(&[]),
        }
    }
}
