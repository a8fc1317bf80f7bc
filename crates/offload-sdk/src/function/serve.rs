//! Serving functions from a pull [`Worker`](crate::Worker): a call is a job named like the function on its
//! queue, whose payload is the call request and whose result is the call response.
//!
//! Invariant: every claimed call ends as exactly one job report: a completion carrying the call response, or a
//! failure (retryable, or fatal for errors no retry can fix).

use crate::worker::{Backend, Job, JobError, WorkerBuilder};

use super::{Call, CallOutcome, Function};

impl WorkerBuilder {
    /// Serves `function` on this worker: its calls (jobs named like the function) are run by its code and
    /// completed with the call response. Add the function's queue with [`WorkerBuilder::queue`]
    /// (`function.queue()`) to claim them.
    pub fn function(self, function: Function) -> Self {
        let name = function.id().to_owned();
        self.handler(name, move |job: Job<Call>| {
            let function = function.clone();
            async move {
                let client = match &job.ctx.backend {
                    Backend::Live { client, .. } => Some(client.clone()),
                    Backend::Test { .. } => None,
                };
                match function.call_with(job.payload, client.as_ref()).await {
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
