//! Function definitions: what an app registers (`PUT /v1/functions/{id}`, `[[function]]` in `offload.toml`, or
//! an app's whole set in one sync) and its validation into a [`Function`].
//!
//! Invariant: a [`Function`] only exists if every field passed these checks, so fan-out, cron and the call
//! queue never meet an invalid trigger, filter, path or target. Every refusal names its field, e.g.
//! `triggers[1].if`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::Filter;
use super::flow::{
    ConcurrencySpec, FlowSpecs, FunctionFlow, FunctionThrottleSpec, RateLimitSpec, SingletonSpec,
};
use super::names::{validate_event_name, validate_function_id};
use super::path::FieldPath;
use crate::backoff::Backoff;
use crate::cron::{Cadence, CronExpr};
use crate::duration::DurationSpec;
use crate::push::Target;
use crate::spec::{MAX_NAME_LEN, ValidationError, validate_queue_name};

/// Most triggers on one function.
pub const MAX_TRIGGERS: usize = 10;
/// Most `cancel_on` rules on one function.
pub const MAX_CANCEL_ON: usize = 5;
/// Retries of a step (and of a call) when the function does not say: 4, so 5 attempts in all.
pub const DEFAULT_RETRIES: u32 = 4;
/// Most retries a function may ask for.
pub const MAX_RETRIES: u32 = 100;
/// Lease of one call when the function does not say (5 minutes).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A function definition exactly as the API and `offload.toml` accept it. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Stable id (required in an app sync and in `offload.toml`; in `PUT /v1/functions/{id}` it may be left out,
    /// and must equal the path when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human name shown in the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What starts a run: events by name (with an optional filter) or a cron schedule. At least one.
    pub triggers: Vec<TriggerSpec>,
    /// Push: the endpoint each call is delivered to, signed like every delivery. Without it, pull workers claim
    /// the calls from `queue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Queue of the function's calls (default: the function id). Queue limits and pause apply to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Retries of a failed step, and of a call that failed outside any step (default 4). A whole float
    /// (`3.0`) counts as its integer, as everywhere in the API.
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retries: Option<u32>,
    /// Delay between retries (the job backoff policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Lease of one call: a pull worker must heartbeat within it, a push endpoint must answer within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Events that cancel a running, sleeping or waiting run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel_on: Vec<CancelOnSpec>,
    /// Most running calls: up to two limits, at most one without a key (the queue's `concurrency`) and one with
    /// (`group_concurrency`, per value of the key in the run's event). See [`super::flow`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concurrency: Vec<ConcurrencySpec>,
    /// Most call starts per period (the queue's throttle; per key value when keyed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<FunctionThrottleSpec>,
    /// Most runs started per period; events beyond it start no run and are recorded as skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// At most one live run per key value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleton: Option<SingletonSpec>,
}

/// One trigger: exactly one of `event` or `cron`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// An event name that starts a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A filter the event must pass (see [`Filter`]); only with `event`.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// A cron expression that starts a run on every tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default UTC); only with `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Cancels a run when an event named `event` arrives whose `match` field equals the run's event's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelOnSpec {
    /// The cancelling event's name.
    pub event: String,
    /// A field path compared between the cancelling event and the run's event, e.g. `data.user_id`. Without
    /// it, any event of that name cancels every run of the function.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_path: Option<String>,
}

/// A validated function.
#[derive(Debug, Clone)]
pub struct Function {
    /// Stable id.
    pub id: String,
    /// Human name, if given.
    pub name: Option<String>,
    /// What starts runs.
    pub triggers: Vec<Trigger>,
    /// Where calls run.
    pub runs_on: RunsOn,
    /// Queue of the calls.
    pub queue: String,
    /// Retries of a step or a call.
    pub retries: u32,
    /// Delay between retries.
    pub backoff: Backoff,
    /// Lease of one call.
    pub timeout: Duration,
    /// Events that cancel runs.
    pub cancel_on: Vec<CancelOn>,
    /// Concurrency, throttle, rate limit and singleton.
    pub flow: FunctionFlow,
}

/// A validated trigger.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// An event name, with an optional filter.
    Event {
        /// The event name.
        name: String,
        /// The filter it must pass.
        filter: Option<Filter>,
    },
    /// A cron schedule (one run per tick, with the schedules' overlap and catch-up rules).
    Cron(Cadence),
}

/// Where a function's calls are executed.
#[derive(Debug, Clone, PartialEq)]
pub enum RunsOn {
    /// Delivered to an HTTP endpoint.
    Push(Target),
    /// Claimed by pull workers from the function's queue.
    Pull,
}

/// A validated `cancel_on` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelOn {
    /// The cancelling event's name.
    pub event: String,
    /// The field compared between the two events; `None`: every run of the function.
    pub match_path: Option<FieldPath>,
}

impl Function {
    /// Whether `event` (as JSON: `{"name", "data", "id", "ts"}`) named `name` starts a run of this function.
    pub fn is_triggered_by(&self, name: &str, event: &Value) -> bool {
        self.triggers.iter().any(|t| match t {
            Trigger::Event { name: n, filter } => {
                n == name && filter.as_ref().is_none_or(|f| f.matches(event))
            }
            Trigger::Cron(_) => false,
        })
    }

    /// The cron trigger, if the function has one.
    pub fn cadence(&self) -> Option<&Cadence> {
        self.triggers.iter().find_map(|t| match t {
            Trigger::Cron(c) => Some(c),
            Trigger::Event { .. } => None,
        })
    }
}

impl FunctionSpec {
    /// Validates the definition. `path_id` is the id from the URL (`PUT /v1/functions/{id}`), if any; the body's
    /// `id` must then be absent or equal. The push `target` is checked here for shape only; the server checks it
    /// against its outbound address policy too.
    pub fn validate(self, path_id: Option<&str>) -> Result<Function, ValidationError> {
        let id = match (path_id, self.id) {
            (Some(p), Some(b)) if p != b => {
                return Err(ValidationError::invalid(
                    "id",
                    format!("`{b}` differs from the id in the path (`{p}`)"),
                ));
            }
            (Some(p), _) => p.to_owned(),
            (None, Some(b)) => b,
            (None, None) => return Err(ValidationError::invalid("id", "is required")),
        };
        validate_function_id(&id).map_err(|m| ValidationError::invalid("id", m))?;
        if let Some(name) = &self.name
            && (name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control))
        {
            return Err(ValidationError::invalid(
                "name",
                format!("must be 1 to {MAX_NAME_LEN} bytes without control characters"),
            ));
        }
        if self.triggers.is_empty() {
            return Err(ValidationError::invalid(
                "triggers",
                "must have at least one trigger",
            ));
        }
        if self.triggers.len() > MAX_TRIGGERS {
            return Err(ValidationError::invalid(
                "triggers",
                format!("must have at most {MAX_TRIGGERS} triggers"),
            ));
        }
        let triggers = self
            .triggers
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                t.validate()
                    .map_err(|e| e.within(&format!("triggers[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if triggers
            .iter()
            .filter(|t| matches!(t, Trigger::Cron(_)))
            .count()
            > 1
        {
            return Err(ValidationError::invalid(
                "triggers",
                "may have at most one cron trigger",
            ));
        }
        let queue = self.queue.unwrap_or_else(|| id.clone());
        validate_queue_name(&queue).map_err(|m| ValidationError::invalid("queue", m))?;
        let runs_on = match self.target {
            Some(target) => RunsOn::Push(target.validate()?),
            None => RunsOn::Pull,
        };
        let retries = self.retries.unwrap_or(DEFAULT_RETRIES);
        if retries > MAX_RETRIES {
            return Err(ValidationError::invalid(
                "retries",
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        let timeout = self.timeout.map_or(DEFAULT_CALL_TIMEOUT, |t| t.0);
        if timeout < crate::spec::MIN_TIMEOUT {
            return Err(ValidationError::invalid("timeout", "must be at least 1s"));
        }
        if self.cancel_on.len() > MAX_CANCEL_ON {
            return Err(ValidationError::invalid(
                "cancel_on",
                format!("must have at most {MAX_CANCEL_ON} rules"),
            ));
        }
        let cancel_on = self
            .cancel_on
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let field = |f: &str| format!("cancel_on[{i}].{f}");
                validate_event_name(&c.event)
                    .map_err(|m| ValidationError::invalid(field("event"), m))?;
                let match_path = c
                    .match_path
                    .map(|p| FieldPath::parse(&p))
                    .transpose()
                    .map_err(|m| ValidationError::invalid(field("match"), m))?;
                Ok(CancelOn {
                    event: c.event,
                    match_path,
                })
            })
            .collect::<Result<Vec<_>, ValidationError>>()?;
        let flow = FlowSpecs {
            concurrency: &self.concurrency,
            throttle: self.throttle.as_ref(),
            rate_limit: self.rate_limit.as_ref(),
            singleton: self.singleton.as_ref(),
        }
        .validate()?;
        Ok(Function {
            id,
            name: self.name,
            triggers,
            runs_on,
            queue,
            retries,
            backoff: self.backoff.unwrap_or_default(),
            timeout,
            cancel_on,
            flow,
        })
    }
}

impl TriggerSpec {
    fn validate(self) -> Result<Trigger, ValidationError> {
        match (self.event, self.cron) {
            (Some(name), None) => {
                if self.timezone.is_some() {
                    return Err(ValidationError::invalid(
                        "timezone",
                        "only goes with `cron`",
                    ));
                }
                validate_event_name(&name).map_err(|m| ValidationError::invalid("event", m))?;
                let filter = self
                    .filter
                    .map(|f| Filter::parse(&f))
                    .transpose()
                    .map_err(|m| ValidationError::invalid("if", m))?;
                Ok(Trigger::Event { name, filter })
            }
            (None, Some(cron)) => {
                if self.filter.is_some() {
                    return Err(ValidationError::invalid("if", "only goes with `event`"));
                }
                let expr = CronExpr::parse(&cron)
                    .map_err(|e| ValidationError::invalid("cron", e.to_string()))?;
                let tz = self.timezone.as_deref().unwrap_or("UTC");
                let cadence = Cadence::new(expr, tz)
                    .map_err(|e| ValidationError::invalid("timezone", e.to_string()))?;
                Ok(Trigger::Cron(cadence))
            }
            (Some(_), Some(_)) => Err(ValidationError::invalid(
                "cron",
                "give either `event` or `cron`, not both",
            )),
            (None, None) => Err(ValidationError::invalid("event", "give `event` or `cron`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> FunctionSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_pull_function_with_defaults() {
        let f = spec(json!({"triggers": [{"event": "app/user.signup"}]}))
            .validate(Some("welcome"))
            .unwrap();
        assert_eq!(f.id, "welcome");
        assert_eq!(f.queue, "welcome");
        assert_eq!(f.runs_on, RunsOn::Pull);
        assert_eq!(f.retries, DEFAULT_RETRIES);
        assert_eq!(f.timeout, DEFAULT_CALL_TIMEOUT);
        assert!(f.is_triggered_by("app/user.signup", &json!({"data": {}})));
        assert!(!f.is_triggered_by("app/user.deleted", &json!({"data": {}})));
    }

    #[test]
    fn filters_and_cron_triggers() {
        let f = spec(json!({
            "id": "pro-welcome",
            "triggers": [
                {"event": "app/user.signup", "if": {"data.plan": "pro"}},
                {"cron": "0 9 * * *", "timezone": "Europe/Berlin"}
            ],
            "target": {"url": "https://app.example.com/api/offload"},
            "cancel_on": [{"event": "app/user.deleted", "match": "data.user_id"}]
        }))
        .validate(None)
        .unwrap();
        assert!(matches!(f.runs_on, RunsOn::Push(_)));
        assert!(f.is_triggered_by("app/user.signup", &json!({"data": {"plan": "pro"}})));
        assert!(!f.is_triggered_by("app/user.signup", &json!({"data": {"plan": "free"}})));
        assert_eq!(f.cadence().unwrap().time_zone(), "Europe/Berlin");
        assert_eq!(
            f.cancel_on[0].match_path.as_ref().unwrap().as_str(),
            "data.user_id"
        );
    }

    #[test]
    fn refusals_name_their_field() {
        let cases = [
            (json!({"triggers": []}), Some("f"), "triggers"),
            (
                json!({"id": "g", "triggers": [{"event": "a"}]}),
                Some("f"),
                "id",
            ),
            (json!({"triggers": [{"event": "a"}]}), None, "id"),
            (
                json!({"triggers": [{"event": "/bad"}]}),
                Some("f"),
                "triggers[0].event",
            ),
            (
                json!({"triggers": [{"event": "a", "if": {"x": 1}}]}),
                Some("f"),
                "triggers[0].if",
            ),
            (
                json!({"triggers": [{"cron": "61 * * * *"}]}),
                Some("f"),
                "triggers[0].cron",
            ),
            (
                json!({"triggers": [{"cron": "* * * * *", "timezone": "Mars/Base"}]}),
                Some("f"),
                "triggers[0].timezone",
            ),
            (
                json!({"triggers": [{"event": "a", "cron": "* * * * *"}]}),
                Some("f"),
                "triggers[0].cron",
            ),
            (json!({"triggers": [{}]}), Some("f"), "triggers[0].event"),
            (
                json!({"triggers": [{"cron": "* * * * *"}, {"cron": "0 * * * *"}]}),
                Some("f"),
                "triggers",
            ),
            (
                json!({"triggers": [{"event": "a"}], "queue": "a b"}),
                Some("f"),
                "queue",
            ),
            (
                json!({"triggers": [{"event": "a"}], "retries": 101}),
                Some("f"),
                "retries",
            ),
            (
                json!({"triggers": [{"event": "a"}], "timeout": "10ms"}),
                Some("f"),
                "timeout",
            ),
            (
                json!({"triggers": [{"event": "a"}], "cancel_on": [{"event": "b", "match": "user"}]}),
                Some("f"),
                "cancel_on[0].match",
            ),
            (
                json!({"triggers": [{"event": "a"}], "concurrency": [{"limit": 1}, {"limit": 0, "key": "data.a"}]}),
                Some("f"),
                "concurrency[1].limit",
            ),
            (
                json!({"triggers": [{"event": "a"}], "rate_limit": {"limit": 1, "period": "0s"}}),
                Some("f"),
                "rate_limit.period",
            ),
            (
                json!({"triggers": [{"event": "a"}], "target": {"url": "ftp://x"}}),
                Some("f"),
                "target.url",
            ),
        ];
        for (value, path_id, field) in cases {
            let err = spec(value.clone()).validate(path_id).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_value::<FunctionSpec>(json!({"triggers": [], "retry": 1})).is_err()
        );
        assert!(
            serde_json::from_value::<FunctionSpec>(
                json!({"triggers": [{"event": "a", "when": 1}]})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<FunctionSpec>(
                json!({"triggers": [{"event": "a"}], "singleton": {"mode": "skip", "scope": 1}})
            )
            .is_err()
        );
    }
}
