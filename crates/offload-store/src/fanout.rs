//! What a new event does, decided from the facts a store read: which functions start a run (and which a
//! `rate_limit` skips), which waiting steps it resolves, which runs it cancels through `cancel_on`. Also how a wait's match is kept in two nullable
//! columns, so both stores store and compare waits the same way.
//!
//! Invariant: pure; the answer depends only on the event and the facts given, so every store (and every server
//! sharing a database) fans an event out the same way. A store writes the plan in the transaction that stores
//! the event; deleting a wait row is its claim on resolving it.

use jiff::Timestamp;
use offload_core::flow::gcra::Gcra;
use offload_core::function::definition::{CancelOn, Function};
use offload_core::function::event::{EventId, NewEvent};
use offload_core::function::path::FieldPath;
use offload_core::function::record::WaitMatch;
use serde_json::Value;

/// An event as the code (and filters, matches and waits) see it: `{"name", "data", "id", "ts"}`, where `id` is the
/// sender's de-duplication id, else the server's id (as [`crate::EventRecord::as_json`]).
pub fn event_json(id: EventId, event: &NewEvent) -> Value {
    serde_json::json!({
        "name": event.name,
        "data": serde_json::from_str::<Value>(event.data.get()).unwrap_or(Value::Null),
        "id": event.id.clone().unwrap_or_else(|| id.to_string()),
        "ts": event.ts.to_string(),
    })
}

/// The `match_key` column of a wait that no event can match ([`WaitMatch::Never`]); no canonical JSON is empty.
pub const NEVER_KEY: &str = "";

/// A wait's match as stored: `(match_path, match_key)`. Any event: both `None`; a field: both set; never:
/// no path and [`NEVER_KEY`].
pub fn wait_columns(matching: &WaitMatch) -> (Option<String>, Option<String>) {
    match matching {
        WaitMatch::Any => (None, None),
        WaitMatch::Field { path, key } => (Some(path.as_str().to_owned()), Some(key.clone())),
        WaitMatch::Never => (None, Some(NEVER_KEY.to_owned())),
    }
}

/// Whether `event` (as JSON) resolves a wait stored with these columns (the event's name already matched).
pub fn wait_matches(path: Option<&str>, key: Option<&str>, event: &Value) -> bool {
    match (path, key) {
        (None, None) => true,
        (Some(path), Some(key)) => FieldPath::parse(path)
            .ok()
            .and_then(|p| p.match_key(event))
            .is_some_and(|k| k == key),
        _ => false,
    }
}

/// Whether a `cancel_on` rule of a run's function cancels the run when `event` (named `name`) arrives;
/// `run_event` is the run's own event.
pub fn cancels(rule: &CancelOn, name: &str, event: &Value, run_event: &Value) -> bool {
    if rule.event != name {
        return false;
    }
    match &rule.match_path {
        None => true,
        Some(path) => match (path.match_key(event), path.match_key(run_event)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

/// How a live run is found by the events that cancel it, one per `cancel_on` rule of its function: the event's
/// name, the rule's path (`""`: any event of the name) and the run's event's value there (`""` for any). A rule
/// whose path the run's event lacks gives no key: no event can cancel through it. A store keeps these while the
/// run lives and looks a new event up with [`cancel_lookup`]; a key matches exactly when [`cancels`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelKey {
    /// The cancelling event's name.
    pub event: String,
    /// The compared path, `""` for any.
    pub path: String,
    /// The run's event's value at the path (canonical JSON), `""` for any.
    pub key: String,
}

/// The cancel keys of a run whose function has these rules and whose event is `run_event`.
pub fn cancel_keys(rules: &[CancelOn], run_event: &Value) -> Vec<CancelKey> {
    rules
        .iter()
        .filter_map(|rule| {
            let (path, key) = match &rule.match_path {
                None => (String::new(), String::new()),
                Some(p) => (p.as_str().to_owned(), p.match_key(run_event)?),
            };
            Some(CancelKey {
                event: rule.event.clone(),
                path,
                key,
            })
        })
        .collect()
}

/// The `(path, key)` a cancelling `event` is looked up with for a rule's path (`None`: the event lacks the
/// field, so it cancels nothing through that path).
pub fn cancel_lookup(path: Option<&FieldPath>, event: &Value) -> Option<(String, String)> {
    match path {
        None => Some((String::new(), String::new())),
        Some(p) => Some((p.as_str().to_owned(), p.match_key(event)?)),
    }
}

/// A stored wait for the event's name, as read.
#[derive(Debug, Clone, Copy)]
pub struct WaitFact<'a> {
    /// Its `match_path` column.
    pub path: Option<&'a str>,
    /// Its `match_key` column.
    pub key: Option<&'a str>,
}

/// A live run of a function whose `cancel_on` names the event, as read.
#[derive(Debug, Clone, Copy)]
pub struct CancelFact<'a> {
    /// The run's function's rules.
    pub rules: &'a [CancelOn],
    /// The run's event.
    pub run_event: &'a Value,
}

/// The rate limit of a triggered function as read for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateFact {
    /// The function has no rate limit, or the event lacks its key's field: not limited.
    Unlimited,
    /// The TAT of the event's bucket (`None`: never used).
    Bucket(Option<Timestamp>),
}

/// Why an event started no run of a function it triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The function's `rate_limit` was reached.
    RateLimit,
    /// A run of the function's singleton key was live (`mode: skip`).
    Singleton,
}

/// The facts about one new event.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    /// The store's time.
    pub now: Timestamp,
    /// Its name.
    pub name: &'a str,
    /// The event as the code sees it (`{"name", "data", "id", "ts"}`).
    pub event: &'a Value,
    /// Registered (not removed) functions; a store may pass only those with a trigger of this name.
    pub functions: &'a [&'a Function],
    /// Each function's rate limit bucket for this event, by the index of `functions` (missing: unlimited). A
    /// store reads the bucket of [`offload_core::function::flow::FunctionFlow::rate_key`].
    pub rates: &'a [RateFact],
    /// Waits for this name.
    pub waits: &'a [WaitFact<'a>],
    /// Live runs that might be cancelled (read before the event's own runs are created, so an event never
    /// cancels a run it starts).
    pub cancel: &'a [CancelFact<'a>],
}

/// What the event does, as indices into the facts' slices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanoutPlan {
    /// Functions that start one run each.
    pub start: Vec<usize>,
    /// Triggered functions that start no run, and why (only [`SkipReason::RateLimit`] is decided here; a
    /// store adds singleton skips when its unique index refuses a run).
    pub skipped: Vec<(usize, SkipReason)>,
    /// New TATs of the rate limit buckets the started runs used, by function index.
    pub rated: Vec<(usize, Timestamp)>,
    /// Waits it resolves.
    pub resolve: Vec<usize>,
    /// Runs it cancels.
    pub cancel: Vec<usize>,
}

/// Whether a run may start under a rate limit whose bucket's TAT is `tat`: `Ok` with the new TAT to store,
/// `Err` when the event is beyond the limit (the bucket is left as it is).
pub fn rate_check(
    limit: &offload_core::function::flow::RateLimit,
    tat: Option<Timestamp>,
    now: Timestamp,
) -> Result<Timestamp, Timestamp> {
    // A rate limit has no burst beyond its limit: `limit` starts in a quiet period, then one per interval.
    Gcra::new(limit.limit, limit.period, limit.limit).check(tat, now)
}

/// Decides the fan-out of one event.
pub fn fanout(facts: &EventFacts<'_>) -> FanoutPlan {
    let mut start = Vec::new();
    let mut skipped = Vec::new();
    let mut rated = Vec::new();
    for (i, f) in facts.functions.iter().enumerate() {
        if !f.is_triggered_by(facts.name, facts.event) {
            continue;
        }
        match (
            &f.flow.rate_limit,
            facts.rates.get(i).copied().unwrap_or(RateFact::Unlimited),
        ) {
            (Some(limit), RateFact::Bucket(tat)) => match rate_check(limit, tat, facts.now) {
                Ok(next) => {
                    rated.push((i, next));
                    start.push(i);
                }
                Err(_) => skipped.push((i, SkipReason::RateLimit)),
            },
            _ => start.push(i),
        }
    }
    let resolve = facts
        .waits
        .iter()
        .enumerate()
        .filter(|(_, w)| wait_matches(w.path, w.key, facts.event))
        .map(|(i, _)| i)
        .collect();
    let cancel = facts
        .cancel
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.rules
                .iter()
                .any(|r| cancels(r, facts.name, facts.event, c.run_event))
        })
        .map(|(i, _)| i)
        .collect();
    FanoutPlan {
        start,
        skipped,
        rated,
        resolve,
        cancel,
    }
}

#[cfg(test)]
mod tests {
    use offload_core::function::definition::FunctionSpec;
    use serde_json::json;

    use super::*;

    fn function(spec: Value) -> Function {
        serde_json::from_value::<FunctionSpec>(spec)
            .unwrap()
            .validate(None)
            .unwrap()
    }

    #[test]
    fn wait_columns_round_trip_through_matching() {
        let event = json!({"name": "app/up", "data": {"user": 7}});
        let path = FieldPath::parse("data.user").unwrap();
        let field = WaitMatch::Field {
            path: path.clone(),
            key: path.match_key(&json!({"data": {"user": 7}})).unwrap(),
        };
        let other = WaitMatch::Field {
            path: path.clone(),
            key: path.match_key(&json!({"data": {"user": "7"}})).unwrap(),
        };
        for (matching, expected) in [
            (WaitMatch::Any, true),
            (field, true),
            (other, false),
            (WaitMatch::Never, false),
        ] {
            let (p, k) = wait_columns(&matching);
            assert_eq!(
                wait_matches(p.as_deref(), k.as_deref(), &event),
                expected,
                "{matching:?}"
            );
        }
    }

    #[test]
    fn an_event_starts_matching_functions_resolves_waits_and_cancels_runs() {
        let signup = function(json!({"id": "welcome", "triggers": [{"event": "app/signup"}]}));
        let filtered = function(json!({"id": "vip", "triggers": [{"event": "app/signup",
            "if": {"data.plan": "pro"}}]}));
        let other = function(json!({"id": "other", "triggers": [{"event": "app/other"}]}));
        let rules = [CancelOn {
            event: "app/signup".into(),
            match_path: Some(FieldPath::parse("data.user").unwrap()),
        }];
        let same_user = json!({"name": "app/start", "data": {"user": 1}});
        let other_user = json!({"name": "app/start", "data": {"user": 2}});
        let event = json!({"name": "app/signup", "data": {"user": 1, "plan": "free"}});
        let functions = [&signup, &filtered, &other];
        let waits = [
            WaitFact {
                path: Some("data.user"),
                key: Some("1"),
            },
            WaitFact {
                path: Some("data.user"),
                key: Some("2"),
            },
            WaitFact {
                path: None,
                key: None,
            },
        ];
        let cancel = [
            CancelFact {
                rules: &rules,
                run_event: &same_user,
            },
            CancelFact {
                rules: &rules,
                run_event: &other_user,
            },
        ];
        let plan = fanout(&EventFacts {
            now: "2026-12-03T10:00:00Z".parse().unwrap(),
            rates: &[],
            name: "app/signup",
            event: &event,
            functions: &functions,
            waits: &waits,
            cancel: &cancel,
        });
        assert_eq!(
            plan,
            FanoutPlan {
                start: vec![0],
                resolve: vec![0, 2],
                cancel: vec![0],
                ..FanoutPlan::default()
            }
        );
    }

    #[test]
    fn a_rate_limit_starts_limit_runs_per_period_then_skips() {
        let f = function(json!({"id": "r", "triggers": [{"event": "app/x"}],
            "rate_limit": {"limit": 2, "period": "1m"}}));
        let now: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let event = json!({"name": "app/x", "data": {}});
        let functions = [&f];
        let plan_at = |tat: Option<Timestamp>, now: Timestamp| {
            fanout(&EventFacts {
                now,
                name: "app/x",
                event: &event,
                functions: &functions,
                rates: &[RateFact::Bucket(tat)],
                waits: &[],
                cancel: &[],
            })
        };
        let first = plan_at(None, now);
        assert_eq!(first.start, vec![0]);
        let tat = first.rated[0].1;
        let second = plan_at(Some(tat), now);
        assert_eq!(second.start, vec![0]);
        let third = plan_at(Some(second.rated[0].1), now);
        assert_eq!(third.start, Vec::<usize>::new());
        assert_eq!(third.skipped, vec![(0, SkipReason::RateLimit)]);
        assert!(third.rated.is_empty());
        // Half a period later one more run may start (one per interval of 30 s).
        let later = now + jiff::SignedDuration::from_secs(30);
        assert_eq!(plan_at(Some(second.rated[0].1), later).start, vec![0]);
        // Without a bucket (the event lacks the key) the function is not limited.
        let free = fanout(&EventFacts {
            now,
            name: "app/x",
            event: &event,
            functions: &functions,
            rates: &[RateFact::Unlimited],
            waits: &[],
            cancel: &[],
        });
        assert_eq!((free.start, free.rated), (vec![0], vec![]));
    }

    #[test]
    fn cancel_keys_match_exactly_when_the_rule_cancels() {
        let rules = [
            CancelOn {
                event: "app/stop".into(),
                match_path: None,
            },
            CancelOn {
                event: "app/stop".into(),
                match_path: Some(FieldPath::parse("data.user").unwrap()),
            },
        ];
        let run_event = json!({"data": {"user": 7}});
        let keys = cancel_keys(&rules, &run_event);
        assert_eq!(keys.len(), 2);
        for event in [
            json!({"data": {"user": 7}}),
            json!({"data": {"user": 8}}),
            json!({"data": {}}),
        ] {
            for rule in &rules {
                let found =
                    cancel_lookup(rule.match_path.as_ref(), &event).is_some_and(|(p, k)| {
                        keys.iter()
                            .any(|c| c.event == rule.event && c.path == p && c.key == k)
                    });
                assert_eq!(
                    found,
                    cancels(rule, "app/stop", &event, &run_event),
                    "{rule:?} {event}"
                );
            }
        }
        assert_eq!(cancel_keys(&rules[1..], &json!({"data": {}})), []);
    }

    #[test]
    fn cancel_on_without_match_cancels_every_run_and_missing_fields_cancel_none() {
        let any = CancelOn {
            event: "app/stop".into(),
            match_path: None,
        };
        let by_user = CancelOn {
            event: "app/stop".into(),
            match_path: Some(FieldPath::parse("data.user").unwrap()),
        };
        let run_event = json!({"data": {}});
        let event = json!({"data": {"user": 1}});
        assert!(cancels(&any, "app/stop", &event, &run_event));
        assert!(!cancels(&any, "app/go", &event, &run_event));
        assert!(!cancels(&by_user, "app/stop", &event, &run_event));
        assert!(!cancels(&by_user, "app/stop", &run_event, &run_event));
    }
}
