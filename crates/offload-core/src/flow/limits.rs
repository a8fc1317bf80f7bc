//! Queue limits as users set them (`PATCH /v1/queues/{queue}`, `[[queue]]` in `offload.toml`, the CLI), and
//! their validation.
//!
//! Invariant: a [`QueueLimits`] only exists with positive limits, a throttle period of at least 1 ms and a burst
//! of at least 1, so admission never divides by zero nor meets a limit that admits nothing.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::DurationSpec;
use crate::spec::ValidationError;

/// Longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 128;
/// Shortest throttle period.
pub const MIN_THROTTLE_PERIOD: Duration = Duration::from_millis(1);
/// Longest throttle (and function rate limit) period: a year.
pub const MAX_THROTTLE_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// Checks a job's `group` (its tenant, user or account): 1 to 128 bytes without control characters.
pub fn validate_group(group: &str) -> Result<(), String> {
    if group.is_empty() {
        return Err("must not be empty".into());
    }
    if group.len() > MAX_GROUP_LEN {
        return Err(format!("must be at most {MAX_GROUP_LEN} bytes"));
    }
    if group.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A change to one setting: left as it is (absent), removed (`null`), or set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(untagged)]
pub enum Patch<T> {
    /// The field was absent: keep the current value.
    #[default]
    Keep,
    /// The field was `null`: remove the limit.
    Clear,
    /// The new value.
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only called when the field is present (absent fields take `Default`): `null` clears.
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Patch::Clear,
            Some(value) => Patch::Set(value),
        })
    }
}

/// `deserialize_with` for a patched integer: a whole number (`6` or `6.0`) sets, `null` clears.
fn whole_patch<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Patch<u32>, D::Error> {
    Ok(match crate::whole::option(deserializer)? {
        None => Patch::Clear,
        Some(value) => Patch::Set(value),
    })
}

impl<T> Patch<T> {
    fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(value) => Some(value),
        }
    }
}

/// A change to a queue's limits, exactly as `PATCH /v1/queues/{queue}` accepts it. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLimitsPatch {
    /// Most running jobs of the queue, across every worker and server.
    #[serde(default, deserialize_with = "whole_patch")]
    pub concurrency: Patch<u32>,
    /// Most running jobs per group.
    #[serde(default, deserialize_with = "whole_patch")]
    pub group_concurrency: Patch<u32>,
    /// Most job starts per period.
    #[serde(default)]
    pub throttle: Patch<ThrottleSpec>,
    /// Claims take groups in turn.
    #[serde(default)]
    pub fair: Option<bool>,
}

/// A throttle as users write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ThrottleSpec {
    /// Starts per period.
    #[serde(deserialize_with = "crate::whole::required")]
    pub limit: u32,
    /// The period (at least 1 ms).
    pub period: DurationSpec,
    /// Starts allowed at once after a quiet spell (default 1).
    #[serde(default = "one", deserialize_with = "crate::whole::required")]
    pub burst: u32,
    /// One throttle per group instead of one for the queue.
    #[serde(default)]
    pub per_group: bool,
}

crate::object::object_only!(ThrottleSpec, "a throttle");

fn one() -> u32 {
    1
}

/// A queue's validated limits. The default limits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueLimits {
    /// Most running jobs of the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Most running jobs per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_concurrency: Option<u32>,
    /// Most starts per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSpec>,
    /// Claims take groups in turn.
    #[serde(default)]
    pub fair: bool,
}

impl QueueLimits {
    /// Whether any limit applies (a queue without limits claims on the fast path).
    pub fn is_unlimited(&self) -> bool {
        *self == QueueLimits::default()
    }

    /// The limits in words, one phrase per limit (`concurrency 10`, `2 per group`, `5 starts per 1s, burst 3,
    /// per group`, `fair`): the one wording the dashboard and the CLI show. Empty when nothing limits the queue.
    pub fn phrases(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = self.concurrency {
            out.push(format!("concurrency {c}"));
        }
        if let Some(c) = self.group_concurrency {
            out.push(format!("{c} per group"));
        }
        if let Some(t) = &self.throttle {
            let mut text = format!("{} starts per {}", t.limit, t.period);
            if t.burst > 1 {
                text.push_str(&format!(", burst {}", t.burst));
            }
            if t.per_group {
                text.push_str(", per group");
            }
            out.push(text);
        }
        if self.fair {
            out.push("fair".to_owned());
        }
        out
    }

    /// Applies `patch` and validates the result; errors name the field.
    pub fn patched(self, patch: QueueLimitsPatch) -> Result<QueueLimits, ValidationError> {
        let limits = QueueLimits {
            concurrency: patch.concurrency.apply(self.concurrency),
            group_concurrency: patch.group_concurrency.apply(self.group_concurrency),
            throttle: patch.throttle.apply(self.throttle),
            fair: patch.fair.unwrap_or(self.fair),
        };
        limits.validate()?;
        Ok(limits)
    }

    /// Checks every limit.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.concurrency == Some(0) {
            return Err(ValidationError::invalid(
                "concurrency",
                "must be at least 1 (or null for no limit)",
            ));
        }
        if self.group_concurrency == Some(0) {
            return Err(ValidationError::invalid(
                "group_concurrency",
                "must be at least 1 (or null for no limit)",
            ));
        }
        if let Some(t) = &self.throttle {
            if t.limit == 0 {
                return Err(ValidationError::invalid(
                    "throttle.limit",
                    "must be at least 1",
                ));
            }
            if t.period.0 < MIN_THROTTLE_PERIOD {
                return Err(ValidationError::invalid(
                    "throttle.period",
                    "must be at least 1ms",
                ));
            }
            if t.period.0 > MAX_THROTTLE_PERIOD {
                return Err(ValidationError::invalid(
                    "throttle.period",
                    "must be at most 8760h (a year)",
                ));
            }
            if t.burst == 0 {
                return Err(ValidationError::invalid(
                    "throttle.burst",
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(value: serde_json::Value) -> QueueLimitsPatch {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn whole_numbers_written_as_floats_are_limits() {
        let limits = QueueLimits::default()
            .patched(patch(json!({"concurrency": 10.0, "group_concurrency": 2,
                "throttle": {"limit": 5.0, "period": "1s", "burst": 3.0}})))
            .unwrap();
        assert_eq!(limits.concurrency, Some(10));
        assert_eq!(limits.throttle.unwrap().burst, 3);
        assert!(serde_json::from_value::<QueueLimitsPatch>(json!({"concurrency": 1.5})).is_err());
        let err = QueueLimits::default()
            .patched(patch(
                json!({"throttle": {"limit": 1, "period": 31_536_000_001_u64}}),
            ))
            .unwrap_err();
        assert_eq!(err.field, "throttle.period");
        let cleared = limits.patched(patch(json!({"concurrency": null}))).unwrap();
        assert_eq!(cleared.concurrency, None);
    }

    #[test]
    fn limits_read_as_one_phrase_each() {
        assert!(QueueLimits::default().phrases().is_empty());
        let all = QueueLimits::default()
            .patched(patch(
                json!({"concurrency": 10, "group_concurrency": 2, "fair": true,
                "throttle": {"limit": 5, "period": "1s", "burst": 3, "per_group": true}}),
            ))
            .unwrap();
        assert_eq!(
            all.phrases(),
            [
                "concurrency 10",
                "2 per group",
                "5 starts per 1s, burst 3, per group",
                "fair"
            ]
        );
        let plain = QueueLimits::default()
            .patched(patch(json!({"throttle": {"limit": 100, "period": "1m"}})))
            .unwrap();
        assert_eq!(plain.phrases(), ["100 starts per 1m"]);
    }

    #[test]
    fn a_patch_keeps_absent_fields_clears_nulls_and_sets_values() {
        let start = QueueLimits::default()
            .patched(patch(
                json!({"concurrency": 10, "group_concurrency": 2, "fair": true}),
            ))
            .unwrap();
        assert_eq!(
            (start.concurrency, start.group_concurrency, start.fair),
            (Some(10), Some(2), true)
        );
        let next = start
            .patched(patch(
                json!({"concurrency": null, "throttle": {"limit": 5, "period": "1s"}}),
            ))
            .unwrap();
        assert_eq!(next.concurrency, None);
        assert_eq!(next.group_concurrency, Some(2));
        assert_eq!(next.throttle.unwrap().burst, 1);
        assert!(next.fair);
        assert!(!next.is_unlimited());
        assert!(QueueLimits::default().is_unlimited());
    }

    #[test]
    fn bad_limits_are_refused_with_the_field_named() {
        let cases = [
            (json!({"concurrency": 0}), "concurrency"),
            (json!({"group_concurrency": 0}), "group_concurrency"),
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
        ];
        for (value, field) in cases {
            let err = QueueLimits::default()
                .patched(patch(value.clone()))
                .unwrap_err();
            assert_eq!(err.field, field, "{value}");
        }
        for refused in [
            json!({"concurrency": -1}),
            json!({"throttle": {"limit": 1}}),
            json!({"throttle": {"limit": 1, "period": "1s", "per_tenant": true}}),
            json!({"max": 1}),
        ] {
            assert!(
                serde_json::from_value::<QueueLimitsPatch>(refused.clone()).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn groups_are_short_printable_text() {
        assert_eq!(validate_group("acme-corp"), Ok(()));
        assert!(validate_group("").is_err());
        assert!(validate_group(&"g".repeat(129)).is_err());
        assert!(validate_group("a\tb").is_err());
    }
}
