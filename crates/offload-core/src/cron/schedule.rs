//! A schedule as users write it ([`ScheduleSpec`]: API body or `[[schedule]]` entry) and its validation into
//! a [`Schedule`], plus the stored form stores read back ([`ScheduleRecord`]).
//!
//! Invariant: a [`Schedule`] only exists if every field passed these checks (the expression parses, the time
//! zone exists, it fires at least once more, the job template is a valid job, the jitter fits between two
//! fire times), so stores and the engine never re-check. Every refusal names its field.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::cron::expr::{Cadence, CronExpr};
use crate::cron::policy::{CatchUp, DEFAULT_CATCH_UP_WINDOW, Overlap, shortest_interval};
use crate::duration::DurationSpec;
use crate::id::JobId;
use crate::job::NewJob;
use crate::push::Target;
use crate::spec::{EnqueueRequest, Limits, ValidationError, validate_queue_name};

/// The time zone of a schedule that names none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";
/// Longest cron expression, in characters (as written, before trimming).
pub const MAX_CRON_LEN: usize = 256;
/// Fire times looked at to find the shortest interval a jitter must fit in.
const JITTER_LOOKAHEAD: usize = 1000;

/// Where a schedule was defined, which decides what a server start does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ScheduleSource {
    /// Created or replaced through the API (or the CLI); a server start never touches it.
    #[default]
    Api,
    /// A `[[schedule]]` entry of `offload.toml`: re-applied at every start, deleted at start once the entry is
    /// gone from the file.
    File,
}

impl ScheduleSource {
    /// The name used in the API and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleSource::Api => "api",
            ScheduleSource::File => "file",
        }
    }
}

impl std::str::FromStr for ScheduleSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api" => Ok(ScheduleSource::Api),
            "file" => Ok(ScheduleSource::File),
            _ => Err(format!("unknown schedule source `{s}`")),
        }
    }
}

/// The job each tick creates, as users write it. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobTemplateSpec {
    /// Queue the jobs go to (required).
    pub queue: String,
    /// Job kind, which workers dispatch on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any JSON value (stored as compact JSON); `null` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Higher runs first (default 0).
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority: Option<i32>,
    /// Attempts allowed (default: the server's default).
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_attempts: Option<u32>,
    /// Lease length of one attempt (default: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Makes each tick's job a push job, delivered to this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// A validated job template: every field resolved. New job fields (a push target) are added here and in
/// [`JobTemplate::new_job`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobTemplate {
    /// Queue the jobs go to.
    pub queue: String,
    /// Job kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The payload, compact JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub payload: Box<RawValue>,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Lease length of one attempt.
    pub timeout: DurationSpec,
    /// Push target of each tick's job (absent: a pull job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

impl PartialEq for JobTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.queue == other.queue
            && self.name == other.name
            && self.payload.get() == other.payload.get()
            && self.priority == other.priority
            && self.max_attempts == other.max_attempts
            && self.timeout == other.timeout
            && self.target == other.target
    }
}

impl JobTemplateSpec {
    /// Validates the template with the same rules as an enqueued job; errors are named `job.{field}`.
    pub fn validate(self, limits: &Limits, now: Timestamp) -> Result<JobTemplate, ValidationError> {
        let payload = match &self.payload {
            None => None,
            Some(v) => Some(
                serde_json::value::to_raw_value(v)
                    .map_err(|e| ValidationError::invalid("job.payload", e.to_string()))?,
            ),
        };
        let request = EnqueueRequest {
            queue: self.queue,
            name: self.name,
            payload,
            priority: self.priority,
            max_attempts: self.max_attempts,
            timeout: self.timeout,
            target: self.target,
            ..EnqueueRequest::default()
        };
        let job = request
            .validate(limits, None, now)
            .map_err(|e| e.within("job"))?;
        Ok(JobTemplate {
            queue: job.queue,
            name: job.name,
            payload: job.payload,
            priority: job.priority,
            max_attempts: job.max_attempts,
            timeout: DurationSpec(job.timeout),
            target: job.target,
        })
    }
}

impl JobTemplate {
    /// The job of one tick, due at `run_at` (a past instant means now). Built through [`EnqueueRequest`] so that
    /// fields jobs gain later take their defaults here too.
    pub fn new_job(&self, run_at: Timestamp) -> Result<NewJob, ValidationError> {
        let request = EnqueueRequest {
            queue: self.queue.clone(),
            name: self.name.clone(),
            payload: Some(self.payload.clone()),
            run_at: Some(run_at),
            priority: Some(self.priority),
            max_attempts: Some(self.max_attempts),
            timeout: Some(self.timeout),
            target: self.target.clone(),
            ..EnqueueRequest::default()
        };
        // The template passed the operator's limits when it was stored; these only keep the shape checks.
        let unbounded = Limits {
            max_payload_bytes: usize::MAX,
            max_delay: DurationSpec(Duration::MAX),
            max_attempts: u32::MAX,
            max_timeout: DurationSpec(Duration::MAX),
            ..Limits::default()
        };
        let mut job = request.validate(&unbounded, None, run_at)?;
        job.id = JobId::new();
        Ok(job)
    }
}

/// A schedule as the API (`PUT /v1/schedules/{name}`) and `[[schedule]]` entries accept it. Unknown fields are
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleSpec {
    /// The schedule's unique name; required in `offload.toml`, optional in the API body (where the path names
    /// it; if given, it must match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it fires: 5 fields (minute first), 6 (second first) or a nickname such as `@daily`.
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The job each tick creates.
    pub job: JobTemplateSpec,
    /// `allow`, `skip` (default) or `buffer_one`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// `none`, `latest` (default) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// With `catch_up = "all"`: how far back late ticks still run (default 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window: Option<DurationSpec>,
    /// Spread each tick's job start by a random delay up to this (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<DurationSpec>,
    /// Create paused, or pause/resume on replace; absent: a new schedule is active, a replaced one keeps its
    /// state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A validated schedule definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Unique name.
    pub name: String,
    /// Expression and time zone.
    pub cadence: Cadence,
    /// The job each tick creates.
    pub job: JobTemplate,
    /// Overlap policy.
    pub overlap: Overlap,
    /// Catch-up policy.
    pub catch_up: CatchUp,
    /// How far back `catch_up = "all"` reaches.
    pub catch_up_window: Duration,
    /// Largest random delay added to each tick's job start.
    pub jitter: Duration,
    /// Requested pause state; `None` keeps the current one when replacing (and means active when creating).
    pub paused: Option<bool>,
}

impl ScheduleSpec {
    /// Validates the spec into a schedule. `path_name` is the name from the URL, if any; `now` is when the
    /// schedule must still have a fire time after.
    pub fn validate(
        self,
        path_name: Option<&str>,
        limits: &Limits,
        now: Timestamp,
    ) -> Result<Schedule, ValidationError> {
        let name = match (path_name, self.name.as_deref()) {
            (Some(path), Some(body)) if path != body => {
                return Err(ValidationError::invalid(
                    "name",
                    format!(
                        "`{body}` differs from the name in the path, `{path}`; leave it out or make them equal"
                    ),
                ));
            }
            (Some(name), _) | (None, Some(name)) => name.to_owned(),
            (None, None) => return Err(ValidationError::invalid("name", "is required")),
        };
        validate_schedule_name(&name).map_err(|m| ValidationError::invalid("name", m))?;
        if self.cron.chars().count() > MAX_CRON_LEN {
            return Err(ValidationError::invalid(
                "cron",
                format!("must be at most {MAX_CRON_LEN} characters"),
            ));
        }
        let expr = CronExpr::parse(&self.cron)
            .map_err(|e| ValidationError::invalid("cron", e.to_string()))?;
        let zone = self.timezone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
        let cadence = Cadence::new(expr, zone)
            .map_err(|e| ValidationError::invalid("timezone", e.to_string()))?;
        if cadence.next_after(now).is_none() {
            return Err(ValidationError::invalid(
                "cron",
                format!(
                    "`{}` never fires: no date matches it (such as 30 February)",
                    cadence.expr()
                ),
            ));
        }
        let job = self.job.validate(limits, now)?;
        let catch_up = self.catch_up.unwrap_or_default();
        let catch_up_window = match (self.catch_up_window, catch_up) {
            (None, _) => DEFAULT_CATCH_UP_WINDOW,
            (Some(w), CatchUp::All) if !w.0.is_zero() => w.0,
            (Some(_), CatchUp::All) => {
                return Err(ValidationError::invalid(
                    "catch_up_window",
                    "must be longer than 0s; use catch_up = \"none\" to run no late tick",
                ));
            }
            (Some(_), _) => {
                return Err(ValidationError::invalid(
                    "catch_up_window",
                    "only applies with catch_up = \"all\"",
                ));
            }
        };
        let jitter = self.jitter.map(|j| j.0).unwrap_or_default();
        if !jitter.is_zero() {
            if jitter > limits.max_delay.0 {
                return Err(ValidationError::invalid(
                    "jitter",
                    format!("must be at most {}", limits.max_delay),
                ));
            }
            if let Some(interval) = shortest_interval(&cadence, now, JITTER_LOOKAHEAD)
                && jitter > interval
            {
                return Err(ValidationError::invalid(
                    "jitter",
                    format!(
                        "{} is longer than the shortest interval between two fire times of `{}` ({}); a tick's \
                         job would start after the next tick",
                        DurationSpec(jitter),
                        cadence.expr(),
                        DurationSpec(interval)
                    ),
                ));
            }
        }
        Ok(Schedule {
            name,
            cadence,
            job,
            overlap: self.overlap.unwrap_or_default(),
            catch_up,
            catch_up_window,
            jitter,
            paused: self.paused,
        })
    }
}

/// Checks a schedule name: like a queue name (1 to 128 ASCII letters, digits and `-_.:`), so it is safe in
/// URLs, logs and metric labels.
pub fn validate_schedule_name(name: &str) -> Result<(), String> {
    validate_queue_name(name)
}

/// How one tick ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TickOutcome {
    /// Its job was created.
    Fired,
    /// The overlap policy skipped it: earlier runs were unfinished.
    Skipped,
    /// It was late and the catch-up policy did not run it.
    Missed,
}

impl TickOutcome {
    /// The name used in the API, storage and the `outcome` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TickOutcome::Fired => "fired",
            TickOutcome::Skipped => "skipped",
            TickOutcome::Missed => "missed",
        }
    }
}

impl std::str::FromStr for TickOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fired" => Ok(TickOutcome::Fired),
            "skipped" => Ok(TickOutcome::Skipped),
            "missed" => Ok(TickOutcome::Missed),
            _ => Err(format!("unknown tick outcome `{s}`")),
        }
    }
}

/// One recorded tick (or, for missed ticks, a contiguous run of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tick {
    /// The fire time (the first one, for a run of missed ticks).
    pub fire_at: Timestamp,
    /// What became of it.
    pub outcome: TickOutcome,
    /// The job it created (`fired` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// Ticks this record stands for (more than 1 only for a run of missed ticks).
    pub count: u64,
    /// The last fire time of a run of missed ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fire_at: Option<Timestamp>,
    /// True for a run started by hand (`trigger`), outside the cron expression.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

/// A stored schedule with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    /// The definition (`paused` is `Some` of the current state).
    pub schedule: Schedule,
    /// Paused schedules fire nothing; their ticks are caught up per the policy on resume.
    pub paused: bool,
    /// Where it was defined.
    pub source: ScheduleSource,
    /// The next fire time not yet handled; `None` when it never fires again.
    pub next_fire_at: Option<Timestamp>,
    /// Increases with every change of definition or pause state; the engine fires only against the revision
    /// it planned with.
    pub revision: i64,
    /// When it was first created.
    pub created_at: Timestamp,
    /// When its definition or pause state last changed.
    pub updated_at: Timestamp,
    /// Most recent ticks, newest first (single reads only).
    pub recent_ticks: Option<Vec<Tick>>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleInfo {
    /// Unique name.
    pub name: String,
    /// The expression as written.
    pub cron: String,
    /// IANA time zone.
    pub timezone: String,
    /// The job each tick creates.
    pub job: JobTemplate,
    /// Overlap policy.
    pub overlap: Overlap,
    /// Catch-up policy.
    pub catch_up: CatchUp,
    /// How far back `catch_up = "all"` reaches (present with that policy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window: Option<DurationSpec>,
    /// Largest random delay of each tick's job start.
    pub jitter: DurationSpec,
    /// Paused schedules fire nothing.
    pub paused: bool,
    /// `api` or `file`.
    pub source: ScheduleSource,
    /// The next fire time not yet handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_at: Option<Timestamp>,
    /// Upcoming fire times from `next_fire_at` on (single reads only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_fire_times: Vec<Timestamp>,
    /// Most recent ticks, newest first (single reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_ticks: Option<Vec<Tick>>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its definition or pause state last changed.
    pub updated_at: Timestamp,
}

impl ScheduleRecord {
    /// The API view, with `upcoming` future fire times listed.
    pub fn info(&self, upcoming: usize) -> ScheduleInfo {
        let s = &self.schedule;
        let next_fire_times = match self.next_fire_at {
            Some(next) if upcoming > 0 => {
                s.cadence.iter_from_fire_time(next).take(upcoming).collect()
            }
            _ => Vec::new(),
        };
        ScheduleInfo {
            name: s.name.clone(),
            cron: s.cadence.expr().as_str().to_owned(),
            timezone: s.cadence.time_zone().to_owned(),
            job: s.job.clone(),
            overlap: s.overlap,
            catch_up: s.catch_up,
            catch_up_window: (s.catch_up == CatchUp::All)
                .then_some(DurationSpec(s.catch_up_window)),
            jitter: DurationSpec(s.jitter),
            paused: self.paused,
            source: self.source,
            next_fire_at: self.next_fire_at,
            next_fire_times,
            recent_ticks: self.recent_ticks.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Answer of `GET /v1/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// Schedules in name order.
    pub schedules: Vec<ScheduleInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/schedules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListSchedulesQuery {
    /// Continue after this name (a previous page's `next_cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Answer of `POST /v1/schedules/{name}/trigger`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Triggered {
    /// The job created.
    pub job_id: JobId,
    /// The instant recorded as the run's fire time.
    pub fire_at: Timestamp,
}

/// Answer of `offload schedule next` and its API counterpart: upcoming fire times of an expression.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FireTimes {
    /// The expression.
    pub cron: String,
    /// The time zone.
    pub timezone: String,
    /// Fire times, as instants.
    pub fire_times: Vec<Timestamp>,
}

/// The stored parts of a schedule, from which a store rebuilds its [`Schedule`].
#[derive(Debug, Clone)]
pub struct StoredSchedule {
    /// Name.
    pub name: String,
    /// Expression text.
    pub cron: String,
    /// Time zone name.
    pub timezone: String,
    /// Template.
    pub job: JobTemplate,
    /// Overlap policy.
    pub overlap: Overlap,
    /// Catch-up policy.
    pub catch_up: CatchUp,
    /// Catch-up window.
    pub catch_up_window: Duration,
    /// Jitter.
    pub jitter: Duration,
    /// Current pause state.
    pub paused: bool,
}

impl StoredSchedule {
    /// Rebuilds the schedule, re-parsing the expression and looking up the time zone; a failure means the
    /// stored data is not what this version writes.
    pub fn into_schedule(self) -> Result<Schedule, String> {
        let expr = CronExpr::parse(&self.cron).map_err(|e| format!("cron `{}`: {e}", self.cron))?;
        let cadence = Cadence::new(expr, &self.timezone).map_err(|e| e.to_string())?;
        Ok(Schedule {
            name: self.name,
            cadence,
            job: self.job,
            overlap: self.overlap,
            catch_up: self.catch_up,
            catch_up_window: self.catch_up_window,
            jitter: self.jitter,
            paused: Some(self.paused),
        })
    }
}
