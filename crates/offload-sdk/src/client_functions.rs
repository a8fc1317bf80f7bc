//! The client's durable-function endpoints: events, functions, apps and runs.
//!
//! Invariant: like every endpoint method, these only say what to send and what to decode; [`Client::send`]
//! does the rest. The view types are lenient (unknown fields are ignored, most fields default), so an SDK
//! keeps working against a newer server.

use offload_core::function::definition::FunctionSpec;
use offload_core::function::protocol::{StepError, StepResult};
use offload_core::function::run::{RunId, RunState};
use offload_core::{JobId, LeaseToken, Timestamp};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, decode};
use crate::error::Result;
use crate::function::{EventSpec, Function};

/// The answer of [`Client::send_events`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsSent {
    /// The stored events' ids, in the order sent (for a duplicate: the first event's id).
    #[serde(default)]
    pub ids: Vec<String>,
    /// The runs each event started, in the order sent.
    #[serde(default)]
    pub runs: Vec<Vec<String>>,
    /// True when every event was a duplicate and nothing new was stored (HTTP 200, not 201).
    #[serde(default)]
    pub duplicate: bool,
}

/// A stored event, as `GET /v1/events/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// The server's id of the event.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its data.
    #[serde(default)]
    pub data: Value,
    /// The sender's de-duplication id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub ts: Option<Timestamp>,
    /// When the server received it.
    #[serde(default)]
    pub received_at: Option<Timestamp>,
    /// The runs it started.
    #[serde(default)]
    pub runs: Vec<String>,
}

/// A registered function, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionView {
    /// Its id.
    pub id: String,
    /// Its human name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its triggers, as registered.
    #[serde(default)]
    pub triggers: Vec<Value>,
    /// Its push target, if its calls are pushed.
    #[serde(default)]
    pub target: Option<Value>,
    /// The queue of its calls.
    #[serde(default)]
    pub queue: Option<String>,
    /// Retries of a step or a call.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Lease of one call (milliseconds or text, as the server writes it).
    #[serde(default)]
    pub timeout: Option<Value>,
    /// Its `cancel_on` rules.
    #[serde(default)]
    pub cancel_on: Vec<Value>,
    /// The app that synced it, if any.
    #[serde(default)]
    pub app: Option<String>,
    /// When it was first registered.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

/// The answer of [`Client::put_function`].
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionPut {
    /// The function as stored.
    pub function: FunctionView,
    /// True when it was new (HTTP 201), false when it replaced a definition (HTTP 200).
    pub created: bool,
}

/// The answer of [`Client::sync_app`]: the function ids by what happened to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSynced {
    /// New functions.
    #[serde(default)]
    pub created: Vec<String>,
    /// Functions whose definition changed.
    #[serde(default)]
    pub updated: Vec<String>,
    /// Functions whose definition is the same.
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// Functions of the app missing from the set, now removed (their runs keep going).
    #[serde(default)]
    pub removed: Vec<String>,
}

/// The run that invoked this one, and its waiting step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunParent {
    /// The parent run.
    pub run_id: RunId,
    /// Its `invoke` step.
    pub step: String,
}

/// A run, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Its id.
    pub id: RunId,
    /// The function it runs.
    pub function_id: String,
    /// Where it stands.
    pub state: RunState,
    /// The event that started it.
    #[serde(default)]
    pub event_id: Option<String>,
    /// That event.
    #[serde(default)]
    pub event: Value,
    /// Its output, once it succeeded.
    #[serde(default)]
    pub output: Option<Value>,
    /// Its error, once it failed.
    #[serde(default)]
    pub error: Option<StepError>,
    /// The run that invoked it, if any.
    #[serde(default)]
    pub parent: Option<RunParent>,
    /// Its steps (a count or a list, as the server shows them).
    #[serde(default)]
    pub steps: Value,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// When its first call started.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// When it wakes (a sleep, a retry's backoff, a wait's timeout).
    #[serde(default)]
    pub wake_at: Option<Timestamp>,
}

/// A failed attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAttemptView {
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// Its error.
    pub error: StepError,
    /// When it failed.
    #[serde(default)]
    pub at: Option<Timestamp>,
}

/// A step of a run, as `GET /v1/runs/{id}/steps` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    /// Its id.
    pub id: String,
    /// `run`, `sleep`, `wait_for_event`, `send_event` or `invoke`.
    pub kind: String,
    /// Its recorded result (`None` while it is pending).
    #[serde(default)]
    pub result: Option<StepResult>,
    /// Its failed attempts.
    #[serde(default)]
    pub failed_attempts: Vec<StepAttemptView>,
    /// When it started.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When its result was recorded.
    #[serde(default)]
    pub recorded_at: Option<Timestamp>,
    /// When a sleep or a wait ends.
    #[serde(default)]
    pub until: Option<Timestamp>,
}

/// Filters of [`Client::runs`]; all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunsQuery {
    /// Runs of this function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Runs in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
    /// Runs started by this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Runs older than this one (the last id of the previous page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<RunId>,
    /// Most runs in the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A step result reported mid-call ([`Client::record_steps`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedStep {
    /// The step's id.
    pub id: String,
    /// Always `run`.
    pub op: &'static str,
    /// Its data (absent for an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Its error (recorded at once: only non-retryable errors may be reported mid-call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedError>,
}

/// A step's final error, reported mid-call (never retried: a retryable error must end the call instead).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedError {
    /// The error's class.
    pub name: String,
    /// What went wrong.
    pub message: String,
    /// Always `false`.
    pub retryable: bool,
}

impl RecordedStep {
    /// A step that returned `data`.
    pub fn data(id: impl Into<String>, data: Value) -> Self {
        Self {
            id: id.into(),
            op: "run",
            data: Some(data),
            error: None,
        }
    }

    /// A step that failed for good with `error`.
    pub fn error(id: impl Into<String>, error: StepError) -> Self {
        Self {
            id: id.into(),
            op: "run",
            data: None,
            error: Some(RecordedError {
                name: error.name,
                message: error.message,
                retryable: false,
            }),
        }
    }
}

#[derive(Deserialize)]
struct Functions {
    functions: Vec<FunctionView>,
}

#[derive(Deserialize)]
struct Runs {
    runs: Vec<RunView>,
}

#[derive(Deserialize)]
struct Steps {
    steps: Vec<StepView>,
}

#[derive(Deserialize)]
struct Events {
    events: Vec<EventView>,
}

impl Client {
    /// `POST /v1/events`: sends one event; answers its id and the runs it started.
    pub async fn send_event(&self, event: &EventSpec) -> Result<EventsSent> {
        let rb = self.request(Method::POST, &["v1", "events"])?.json(event);
        sent(self.send(rb).await?)
    }

    /// `POST /v1/events` with `{"events": [...]}`: up to 1,000 events, stored all or none.
    pub async fn send_events(&self, events: &[EventSpec]) -> Result<EventsSent> {
        #[derive(Serialize)]
        struct Batch<'a> {
            events: &'a [EventSpec],
        }
        let rb = self
            .request(Method::POST, &["v1", "events"])?
            .json(&Batch { events });
        sent(self.send(rb).await?)
    }

    /// `GET /v1/events/{id}`: one stored event with the runs it started.
    pub async fn get_event(&self, id: &str) -> Result<EventView> {
        self.call(self.request(Method::GET, &["v1", "events", id])?)
            .await
    }

    /// `GET /v1/events`: recent events, newest first (optionally of one name).
    pub async fn events(&self, name: Option<&str>, limit: Option<u32>) -> Result<Vec<EventView>> {
        let mut rb = self.request(Method::GET, &["v1", "events"])?;
        if let Some(name) = name {
            rb = rb.query(&[("name", name)]);
        }
        if let Some(limit) = limit {
            rb = rb.query(&[("limit", limit)]);
        }
        self.call::<Events>(rb).await.map(|e| e.events)
    }

    /// `PUT /v1/functions/{id}`: registers (or replaces) one function's definition.
    pub async fn put_function(&self, id: &str, spec: &FunctionSpec) -> Result<FunctionPut> {
        let rb = self
            .request(Method::PUT, &["v1", "functions", id])?
            .json(spec);
        let (status, body) = self.send(rb).await?;
        Ok(FunctionPut {
            function: decode(status, &body)?,
            created: status == StatusCode::CREATED,
        })
    }

    /// `GET /v1/functions`: every registered function.
    pub async fn functions(&self) -> Result<Vec<FunctionView>> {
        self.call::<Functions>(self.request(Method::GET, &["v1", "functions"])?)
            .await
            .map(|f| f.functions)
    }

    /// `GET /v1/functions/{id}`: one function.
    pub async fn get_function(&self, id: &str) -> Result<FunctionView> {
        self.call(self.request(Method::GET, &["v1", "functions", id])?)
            .await
    }

    /// `DELETE /v1/functions/{id}`: removes a function (it starts no more runs; its runs keep going).
    pub async fn delete_function(&self, id: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "functions", id])?)
            .await
            .map(drop)
    }

    /// `PUT /v1/apps/{app}`: registers an app's whole set of functions in one call; functions the app had
    /// that are missing from the set are removed (their runs keep going).
    pub async fn sync_app(&self, app: &str, functions: &[Function]) -> Result<AppSynced> {
        #[derive(Serialize)]
        struct Sync<'a> {
            functions: Vec<&'a FunctionSpec>,
        }
        let body = Sync {
            functions: functions.iter().map(Function::spec).collect(),
        };
        self.call(self.request(Method::PUT, &["v1", "apps", app])?.json(&body))
            .await
    }

    /// `GET /v1/runs/{id}`: one run.
    pub async fn run(&self, id: RunId) -> Result<RunView> {
        self.call(self.request(Method::GET, &["v1", "runs", &id.to_string()])?)
            .await
    }

    /// `GET /v1/runs`: runs, newest first, filtered by `query`.
    pub async fn runs(&self, query: &RunsQuery) -> Result<Vec<RunView>> {
        self.call::<Runs>(self.request(Method::GET, &["v1", "runs"])?.query(query))
            .await
            .map(|r| r.runs)
    }

    /// `GET /v1/runs/{id}/steps`: every step of a run, with its attempts.
    pub async fn run_steps(&self, id: RunId) -> Result<Vec<StepView>> {
        self.call::<Steps>(self.request(Method::GET, &["v1", "runs", &id.to_string(), "steps"])?)
            .await
            .map(|s| s.steps)
    }

    /// `POST /v1/runs/{id}/cancel`: cancels a run that has not ended.
    pub async fn cancel_run(&self, id: RunId) -> Result<RunView> {
        self.call(self.request(Method::POST, &["v1", "runs", &id.to_string(), "cancel"])?)
            .await
    }

    /// `POST /v1/runs/{id}/retry`: resumes a failed or cancelled run from its failed step (finished steps keep
    /// their results).
    pub async fn retry_run(&self, id: RunId) -> Result<RunView> {
        self.call(self.request(Method::POST, &["v1", "runs", &id.to_string(), "retry"])?)
            .await
    }

    /// `POST /v1/runs/{id}/steps`: records finished steps while the call `job_id` still holds its lease, so a
    /// crash later in the call does not run them again.
    pub async fn record_steps(
        &self,
        id: RunId,
        job_id: JobId,
        lease_token: LeaseToken,
        steps: &[RecordedStep],
    ) -> Result<RunView> {
        #[derive(Serialize)]
        struct Body<'a> {
            job_id: JobId,
            lease_token: LeaseToken,
            steps: &'a [RecordedStep],
        }
        let body = Body {
            job_id,
            lease_token,
            steps,
        };
        self.call(
            self.request(Method::POST, &["v1", "runs", &id.to_string(), "steps"])?
                .json(&body),
        )
        .await
    }
}

fn sent((status, body): (StatusCode, Vec<u8>)) -> Result<EventsSent> {
    let mut sent: EventsSent = decode(status, &body)?;
    sent.duplicate = status == StatusCode::OK;
    Ok(sent)
}
