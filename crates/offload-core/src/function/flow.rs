//! Flow controls of a function: `concurrency` (up to two limits, one of them keyed), `throttle`, `rate_limit` and
//! `singleton`, as users write them and validated.
//!
//! How they map onto what already exists:
//! - A function's calls are jobs on its queue, so `concurrency` and `throttle` become that queue's limits: the
//!   limit without a key is the queue's `concurrency`, the keyed one its `group_concurrency`, and `throttle` the
//!   queue's throttle (`per_group` when it has a key). A call job's `group` is the value of the key in the run's
//!   event ([`FunctionFlow::group`]). There is one group per job, so at most one key: a keyed throttle and a keyed
//!   concurrency must name the same path.
//! - `rate_limit` is decided when an event fans out: an event beyond it starts no run of the function (it is
//!   recorded on the event as skipped). Its state is one GCRA bucket per (function, key value).
//! - `singleton` allows at most one live run per key value: `skip` drops the new run, `cancel` cancels the live
//!   one and starts the new one.
//!
//! Invariant: a [`FunctionFlow`] only exists with limits of at least 1, periods of at least 1 ms, valid field
//! paths and at most one key for the call job's group, so the stores never meet a limit that admits nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::FieldPath;
use crate::duration::DurationSpec;
use crate::flow::limits::{
    MAX_GROUP_LEN, MAX_THROTTLE_PERIOD, MIN_THROTTLE_PERIOD, QueueLimits, QueueLimitsPatch,
    ThrottleSpec, validate_group,
};
use crate::spec::ValidationError;

/// Most `concurrency` entries on one function (one for the queue, one per key).
pub const MAX_CONCURRENCY: usize = 2;

/// One concurrency limit as users write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// Most running calls (at least 1).
    #[serde(deserialize_with = "crate::whole::required")]
    pub limit: u32,
    /// A field path into the event (e.g. `data.account_id`): the limit applies per value of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

crate::object::object_only!(ConcurrencySpec, "a concurrency limit");

/// A function's throttle as users write it: at most `limit` call starts per `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct FunctionThrottleSpec {
    /// Starts per period (at least 1).
    #[serde(deserialize_with = "crate::whole::required")]
    pub limit: u32,
    /// The period (at least 1 ms).
    pub period: DurationSpec,
    /// Starts allowed at once after a quiet spell (default 1).
    #[serde(
        default,
        deserialize_with = "crate::whole::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub burst: Option<u32>,
    /// A field path into the event: one throttle per value of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

crate::object::object_only!(FunctionThrottleSpec, "a throttle");

/// A rate limit as users write it: at most `limit` runs started per `period`; events beyond it start none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Runs per period (at least 1).
    #[serde(deserialize_with = "crate::whole::required")]
    pub limit: u32,
    /// The period (at least 1 ms).
    pub period: DurationSpec,
    /// A field path into the event: one limit per value of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

crate::object::object_only!(RateLimitSpec, "a rate limit");

/// What a singleton does with a new run while one of its key is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SingletonMode {
    /// The new event starts no run.
    Skip,
    /// The live run is cancelled and the new one starts.
    Cancel,
}

/// A singleton as users write it: at most one live run per key value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SingletonSpec {
    /// A field path into the event: one live run per value of it (without: one for the function).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `skip` or `cancel`.
    pub mode: SingletonMode,
}

crate::object::object_only!(SingletonSpec, "a singleton");

/// A validated rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// Runs per period.
    pub limit: u32,
    /// The period.
    pub period: Duration,
    /// One bucket per value of this path; `None`: one for the function.
    pub key: Option<FieldPath>,
}

/// A validated singleton.
#[derive(Debug, Clone, PartialEq)]
pub struct Singleton {
    /// One live run per value of this path; `None`: one for the function.
    pub key: Option<FieldPath>,
    /// What a new run does while one is live.
    pub mode: SingletonMode,
}

/// A function's validated flow controls. The default controls nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionFlow {
    /// Most running calls of the queue.
    pub concurrency: Option<u32>,
    /// Most running calls per value of [`FunctionFlow::group_key`].
    pub group_concurrency: Option<u32>,
    /// The queue's throttle (`per_group` when keyed).
    pub throttle: Option<ThrottleSpec>,
    /// The path whose value is a call job's group (the keyed concurrency's or the throttle's key).
    pub group_key: Option<FieldPath>,
    /// Runs started per period.
    pub rate_limit: Option<RateLimit>,
    /// One live run per key.
    pub singleton: Option<Singleton>,
}

/// The flow fields of a function definition, as written.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowSpecs<'a> {
    /// `concurrency`.
    pub concurrency: &'a [ConcurrencySpec],
    /// `throttle`.
    pub throttle: Option<&'a FunctionThrottleSpec>,
    /// `rate_limit`.
    pub rate_limit: Option<&'a RateLimitSpec>,
    /// `singleton`.
    pub singleton: Option<&'a SingletonSpec>,
}

fn path(field: String, text: &str) -> Result<FieldPath, ValidationError> {
    FieldPath::parse(text).map_err(|m| ValidationError::invalid(field, m))
}

fn at_least_one(field: &str, n: u32) -> Result<(), ValidationError> {
    if n == 0 {
        return Err(ValidationError::invalid(field, "must be at least 1"));
    }
    Ok(())
}

fn period(field: &str, d: DurationSpec) -> Result<Duration, ValidationError> {
    if d.0 < MIN_THROTTLE_PERIOD {
        return Err(ValidationError::invalid(field, "must be at least 1ms"));
    }
    if d.0 > MAX_THROTTLE_PERIOD {
        return Err(ValidationError::invalid(
            field,
            "must be at most 8760h (a year)",
        ));
    }
    Ok(d.0)
}

impl FlowSpecs<'_> {
    /// Validates the flow fields; errors name the field (`concurrency[1].key`, `rate_limit.period`).
    pub fn validate(&self) -> Result<FunctionFlow, ValidationError> {
        let mut flow = FunctionFlow::default();
        if self.concurrency.len() > MAX_CONCURRENCY {
            return Err(ValidationError::invalid(
                "concurrency",
                format!("must have at most {MAX_CONCURRENCY} limits"),
            ));
        }
        for (i, c) in self.concurrency.iter().enumerate() {
            at_least_one(&format!("concurrency[{i}].limit"), c.limit)?;
            match &c.key {
                None if flow.concurrency.is_some() => {
                    return Err(ValidationError::invalid(
                        format!("concurrency[{i}].key"),
                        "only one limit may go without a key",
                    ));
                }
                None => flow.concurrency = Some(c.limit),
                Some(_) if flow.group_concurrency.is_some() => {
                    return Err(ValidationError::invalid(
                        format!("concurrency[{i}].key"),
                        "only one limit may have a key",
                    ));
                }
                Some(key) => {
                    flow.group_key = Some(path(format!("concurrency[{i}].key"), key)?);
                    flow.group_concurrency = Some(c.limit);
                }
            }
        }
        if let Some(t) = self.throttle {
            at_least_one("throttle.limit", t.limit)?;
            let period = period("throttle.period", t.period)?;
            let burst = t.burst.unwrap_or(1);
            at_least_one("throttle.burst", burst)?;
            if let Some(key) = &t.key {
                let key = path("throttle.key".into(), key)?;
                match &flow.group_key {
                    Some(g) if *g != key => {
                        return Err(ValidationError::invalid(
                            "throttle.key",
                            format!(
                                "must be the keyed concurrency's key (`{}`): a call has one group",
                                g.as_str()
                            ),
                        ));
                    }
                    _ => flow.group_key = Some(key),
                }
            }
            flow.throttle = Some(ThrottleSpec {
                limit: t.limit,
                period: DurationSpec(period),
                burst,
                per_group: t.key.is_some(),
            });
        }
        if let Some(r) = self.rate_limit {
            at_least_one("rate_limit.limit", r.limit)?;
            flow.rate_limit = Some(RateLimit {
                limit: r.limit,
                period: period("rate_limit.period", r.period)?,
                key: r
                    .key
                    .as_deref()
                    .map(|k| path("rate_limit.key".into(), k))
                    .transpose()?,
            });
        }
        if let Some(s) = self.singleton {
            flow.singleton = Some(Singleton {
                key: s
                    .key
                    .as_deref()
                    .map(|k| path("singleton.key".into(), k))
                    .transpose()?,
                mode: s.mode,
            });
        }
        Ok(flow)
    }
}

impl FunctionFlow {
    /// The queue limits the function declares, or `None` when it declares neither `concurrency` nor `throttle`
    /// (its queue's limits are then left as they are).
    pub fn queue_limits(&self) -> Option<QueueLimits> {
        if self.concurrency.is_none() && self.group_concurrency.is_none() && self.throttle.is_none()
        {
            return None;
        }
        Some(QueueLimits {
            concurrency: self.concurrency,
            group_concurrency: self.group_concurrency,
            throttle: self.throttle,
            fair: false,
        })
    }

    /// The queue limits as a patch: each declared limit set, each undeclared one removed, `fair` kept.
    pub fn queue_patch(&self) -> Option<QueueLimitsPatch> {
        use crate::flow::limits::Patch;
        let limits = self.queue_limits()?;
        let patch = |v: Option<u32>| v.map_or(Patch::Clear, Patch::Set);
        Some(QueueLimitsPatch {
            concurrency: patch(limits.concurrency),
            group_concurrency: patch(limits.group_concurrency),
            throttle: limits.throttle.map_or(Patch::Clear, Patch::Set),
            fair: None,
        })
    }

    /// The group of a call of a run started by `event` (as JSON): the value at the group key, `None` without a
    /// key or when the event lacks the field (the call then counts against the queue-wide limits only).
    pub fn group(&self, event: &Value) -> Option<String> {
        key_value(self.group_key.as_ref()?, event)
    }

    /// The rate limit's bucket for `event`: the key's value, `""` without a key. `None` when the event lacks the
    /// key's field: such an event is not rate limited.
    pub fn rate_key(&self, event: &Value) -> Option<String> {
        let r = self.rate_limit.as_ref()?;
        match &r.key {
            None => Some(String::new()),
            Some(p) => key_value(p, event),
        }
    }

    /// The singleton key of a run started by `event`: the key's value, `""` without a key. `None` without a
    /// singleton, or when the event lacks the key's field (such a run is not a singleton).
    pub fn singleton_key(&self, event: &Value) -> Option<String> {
        let s = self.singleton.as_ref()?;
        match &s.key {
            None => Some(String::new()),
            Some(p) => key_value(p, event),
        }
    }
}

/// A key's value as a group name: a string as it is, any other value as its canonical JSON; a value that is
/// no valid group (empty, with control characters, longer than 128 bytes) as its canonical JSON cut to 128
/// bytes (values sharing those 128 bytes share a limit).
pub fn key_value(path: &FieldPath, event: &Value) -> Option<String> {
    let value = path.lookup(event)?;
    if let Value::String(s) = value
        && validate_group(s).is_ok()
    {
        return Some(s.clone());
    }
    let mut text = path.match_key(event)?;
    if text.len() > MAX_GROUP_LEN {
        let mut cut = MAX_GROUP_LEN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Deserialize)]
    struct Specs {
        #[serde(default)]
        concurrency: Vec<ConcurrencySpec>,
        throttle: Option<FunctionThrottleSpec>,
        rate_limit: Option<RateLimitSpec>,
        singleton: Option<SingletonSpec>,
    }

    fn flow(value: Value) -> Result<FunctionFlow, ValidationError> {
        let s: Specs = serde_json::from_value(value).unwrap();
        FlowSpecs {
            concurrency: &s.concurrency,
            throttle: s.throttle.as_ref(),
            rate_limit: s.rate_limit.as_ref(),
            singleton: s.singleton.as_ref(),
        }
        .validate()
    }

    #[test]
    fn whole_numbers_written_as_floats_are_taken() {
        let f = flow(
            json!({"concurrency": [{"limit": 4.0}, {"limit": 1.0, "key": "data.a"}],
            "throttle": {"limit": 5.0, "period": "1s", "burst": 2.0, "key": "data.a"},
            "rate_limit": {"limit": 3.0, "period": "1m"}}),
        )
        .unwrap();
        assert_eq!(f.concurrency, Some(4));
        assert_eq!(f.group_concurrency, Some(1));
        assert!(serde_json::from_value::<Specs>(json!({"concurrency": [{"limit": 1.5}]})).is_err());
    }

    #[test]
    fn concurrency_and_throttle_map_to_queue_limits_and_a_group() {
        let f = flow(json!({
            "concurrency": [{"limit": 10}, {"limit": 2, "key": "data.account_id"}],
            "throttle": {"limit": 5, "period": "1s", "key": "data.account_id"}
        }))
        .unwrap();
        let limits = f.queue_limits().unwrap();
        assert_eq!(limits.concurrency, Some(10));
        assert_eq!(limits.group_concurrency, Some(2));
        let t = limits.throttle.unwrap();
        assert!(t.per_group && t.burst == 1 && t.limit == 5);
        assert_eq!(
            f.group(&json!({"data": {"account_id": "acme"}})),
            Some("acme".into())
        );
        assert_eq!(
            f.group(&json!({"data": {"account_id": 7}})),
            Some("7".into())
        );
        assert_eq!(f.group(&json!({"data": {}})), None);
        assert_eq!(FunctionFlow::default().queue_limits(), None);
        assert_eq!(FunctionFlow::default().queue_patch(), None);
    }

    #[test]
    fn odd_key_values_become_valid_groups() {
        let f = flow(json!({"concurrency": [{"limit": 1, "key": "data.k"}]})).unwrap();
        let long = "x".repeat(300);
        let g = f.group(&json!({"data": {"k": long}})).unwrap();
        assert!(validate_group(&g).is_ok() && g.len() == MAX_GROUP_LEN);
        let g = f.group(&json!({"data": {"k": "a\nb"}})).unwrap();
        assert_eq!(g, "\"a\\nb\"");
        assert_eq!(f.group(&json!({"data": {"k": ""}})).unwrap(), "\"\"");
        assert_eq!(
            f.group(&json!({"data": {"k": {"b": 1, "a": 2}}})).unwrap(),
            r#"{"a":2,"b":1}"#
        );
    }

    #[test]
    fn rate_limit_and_singleton_keys() {
        let f = flow(json!({
            "rate_limit": {"limit": 3, "period": "1m", "key": "data.user"},
            "singleton": {"mode": "skip"}
        }))
        .unwrap();
        assert_eq!(f.queue_limits(), None);
        assert_eq!(
            f.rate_key(&json!({"data": {"user": "u1"}})),
            Some("u1".into())
        );
        assert_eq!(f.rate_key(&json!({"data": {}})), None);
        assert_eq!(f.singleton_key(&json!({"data": {}})), Some(String::new()));
        assert_eq!(f.singleton.unwrap().mode, SingletonMode::Skip);
        assert_eq!(FunctionFlow::default().rate_key(&json!({})), None);
    }

    #[test]
    fn refusals_name_their_field() {
        let cases = [
            (
                json!({"concurrency": [{"limit": 0}]}),
                "concurrency[0].limit",
            ),
            (
                json!({"concurrency": [{"limit": 1}, {"limit": 2}]}),
                "concurrency[1].key",
            ),
            (
                json!({"concurrency": [{"limit": 1, "key": "data.a"}, {"limit": 2, "key": "data.b"}]}),
                "concurrency[1].key",
            ),
            (
                json!({"concurrency": [{"limit": 1}, {"limit": 1, "key": "data.a"}, {"limit": 1}]}),
                "concurrency",
            ),
            (
                json!({"concurrency": [{"limit": 1, "key": "account"}]}),
                "concurrency[0].key",
            ),
            (
                json!({"throttle": {"limit": 0, "period": "1s"}}),
                "throttle.limit",
            ),
            (
                json!({"throttle": {"limit": 1, "period": 0}}),
                "throttle.period",
            ),
            (
                json!({"throttle": {"limit": 1, "period": "1s", "burst": 0}}),
                "throttle.burst",
            ),
            (
                json!({"concurrency": [{"limit": 1, "key": "data.a"}],
                    "throttle": {"limit": 1, "period": "1s", "key": "data.b"}}),
                "throttle.key",
            ),
            (
                json!({"rate_limit": {"limit": 0, "period": "1s"}}),
                "rate_limit.limit",
            ),
            (
                json!({"rate_limit": {"limit": 1, "period": 0}}),
                "rate_limit.period",
            ),
            (
                json!({"rate_limit": {"limit": 1, "period": "1s", "key": ""}}),
                "rate_limit.key",
            ),
            (
                json!({"singleton": {"key": "x.y", "mode": "skip"}}),
                "singleton.key",
            ),
        ];
        for (value, field) in cases {
            let err = flow(value.clone()).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_non_objects_are_refused() {
        for refused in [
            json!({"concurrency": [{"limit": 1, "scope": "fn"}]}),
            json!({"concurrency": [[1]]}),
            json!({"throttle": {"limit": 1, "period": "1s", "per_group": true}}),
            json!({"rate_limit": {"limit": 1}}),
            json!({"singleton": {"mode": "replace"}}),
            json!({"singleton": {}}),
        ] {
            assert!(
                serde_json::from_value::<Specs>(refused.clone()).is_err(),
                "{refused}"
            );
        }
    }
}
