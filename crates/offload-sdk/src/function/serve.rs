//! Serving functions from a pull [`Worker`](crate::Worker): a call is a job named like the function on its
//! queue, whose payload is the call request and whose result is the call response.
//!
//! Invariant: every claimed call ends as exactly one job report: a completion carrying the call response, or a
//! failure (retryable, or fatal for errors no retry can fix).

use std::sync::Arc;

use futures::FutureExt;

use crate::RecordedStep;
use crate::worker::{Backend, Job, JobError, WorkerBuilder};

use super::engine::Recorder;
use super::{Call, CallOutcome, Function};

impl WorkerBuilder {
    /// Serves `function` on this worker: its calls (jobs named like the function) are run by its code and
    /// completed with the call response. Add the function's queue with [`WorkerBuilder::queue`]
    /// (`function.queue()`) to claim them.
    ///
    /// Each `run` step that finishes is recorded at once (`POST /v1/runs/{id}/steps`, with the call's lease),
    /// so a worker that crashes in the middle of a call loses at most the step in progress.
    pub fn function(self, function: Function) -> Self {
        let name = function.id().to_owned();
        self.handler(name, move |job: Job<Call>| {
            let function = function.clone();
            async move {
                let run_id = job.payload.run_id;
                let (client, recorder) = match &job.ctx.backend {
                    Backend::Live {
                        client,
                        id,
                        lease_token,
                    } => {
                        let (c, job_id, lease) = (client.clone(), *id, *lease_token);
                        let recorder: Recorder = Arc::new(move |step, data| {
                            let c = c.clone();
                            async move {
                                let step = [RecordedStep::data(step, data)];
                                match c.record_steps(run_id, job_id, lease, &step).await {
                                    Ok(_) => Ok(true),
                                    Err(e) if e.is_lease_mismatch() => Ok(false),
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                            .boxed()
                        });
                        (Some(client.clone()), Some(recorder))
                    }
                    Backend::Test { .. } => (None, None),
                };
                let outcome = function
                    .call_recording(job.payload, client.as_ref(), recorder, None)
                    .await;
                match outcome {
                    CallOutcome::Response(response) => Ok(response),
                    CallOutcome::Failed {
                        message,
                        retryable: true,
                    } => Err(JobError::retry(message)),
                    CallOutcome::Failed {
                        message,
                        retryable: false,
                    } => Err(JobError::fatal(message)),
                }
            }
        })
    }
}
