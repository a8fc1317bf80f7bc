//! Trigger filters: the small `if` syntax that decides whether an event starts a function's run.
//!
//! ```json
//! {"event": "app/order.paid", "if": {"data.plan": "pro", "data.amount": {"gte": 100}, "data.region": {"in": ["eu", "us"]}}}
//! ```
//!
//! A filter maps field paths ([`FieldPath`]) to conditions, and an event passes when every condition holds. A
//! condition is a plain JSON value (equality) or an object of operators: `eq`, `ne`, `gt`, `gte`, `lt`, `lte`,
//! `in` (a list of values), `exists` (`true` or `false`). To compare with an object, write `{"eq": {...}}`.
//! Numbers compare by value (`1` equals `1.0`); `gt`/`gte`/`lt`/`lte` compare two numbers or two strings and are
//! false otherwise. A missing (or `null`) field satisfies only `ne` and `exists: false`.
//!
//! Invariant: a [`Filter`] is validated when the function is registered; evaluating it is pure, total and linear
//! in the size of the filter, so no event can make fan-out fail or loop.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::path::FieldPath;

/// Most fields one filter compares (each with at most the eight operators, so evaluation stays small).
pub const MAX_CONDITIONS: usize = 32;
/// Most values in one `in` list.
pub const MAX_IN_VALUES: usize = 100;

/// A validated trigger filter: every condition must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    conditions: Vec<(FieldPath, Condition)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Exists(bool),
}

impl Filter {
    /// Parses the `if` object of a trigger. Errors say which path or operator is wrong.
    pub fn parse(spec: &Value) -> Result<Self, String> {
        let Value::Object(map) = spec else {
            return Err("must be an object mapping field paths to conditions".into());
        };
        if map.len() > MAX_CONDITIONS {
            return Err(format!("must have at most {MAX_CONDITIONS} conditions"));
        }
        let mut conditions = Vec::with_capacity(map.len());
        for (path, condition) in map {
            let field = FieldPath::parse(path).map_err(|e| format!("`{path}`: {e}"))?;
            match condition {
                Value::Object(ops) => {
                    if ops.is_empty() {
                        return Err(format!("`{path}`: an operator object must not be empty"));
                    }
                    for (op, operand) in ops {
                        let parsed =
                            parse_operator(op, operand).map_err(|e| format!("`{path}`: {e}"))?;
                        conditions.push((field.clone(), parsed));
                    }
                }
                value => conditions.push((field, Condition::Eq(value.clone()))),
            }
        }
        Ok(Self { conditions })
    }

    /// Whether `event` (as JSON: `{"name", "data", "id", "ts"}`) passes every condition.
    pub fn matches(&self, event: &Value) -> bool {
        self.conditions
            .iter()
            .all(|(path, condition)| holds(condition, path.lookup(event)))
    }
}

fn parse_operator(op: &str, operand: &Value) -> Result<Condition, String> {
    Ok(match op {
        "eq" => Condition::Eq(operand.clone()),
        "ne" => Condition::Ne(operand.clone()),
        "gt" | "gte" | "lt" | "lte" => {
            if !(operand.is_number() || operand.is_string()) {
                return Err(format!("`{op}` compares with a number or a string"));
            }
            match op {
                "gt" => Condition::Gt(operand.clone()),
                "gte" => Condition::Gte(operand.clone()),
                "lt" => Condition::Lt(operand.clone()),
                _ => Condition::Lte(operand.clone()),
            }
        }
        "in" => match operand {
            Value::Array(values) if values.len() <= MAX_IN_VALUES => Condition::In(values.clone()),
            Value::Array(_) => return Err(format!("`in` takes at most {MAX_IN_VALUES} values")),
            _ => return Err("`in` takes a list of values".into()),
        },
        "exists" => match operand {
            Value::Bool(b) => Condition::Exists(*b),
            _ => return Err("`exists` takes true or false".into()),
        },
        other => {
            return Err(format!(
                "unknown operator `{other}`; use eq, ne, gt, gte, lt, lte, in or exists (to compare with an object, write {{\"eq\": {{...}}}})"
            ));
        }
    })
}

fn holds(condition: &Condition, value: Option<&Value>) -> bool {
    match (condition, value) {
        (Condition::Exists(want), v) => v.is_some() == *want,
        (Condition::Ne(expected), v) => v.is_none_or(|v| !json_eq(v, expected)),
        (_, None) => false,
        (Condition::Eq(expected), Some(v)) => json_eq(v, expected),
        (Condition::In(values), Some(v)) => values.iter().any(|e| json_eq(v, e)),
        (Condition::Gt(bound), Some(v)) => compare(v, bound) == Some(Ordering::Greater),
        (Condition::Gte(bound), Some(v)) => {
            matches!(compare(v, bound), Some(Ordering::Greater | Ordering::Equal))
        }
        (Condition::Lt(bound), Some(v)) => compare(v, bound) == Some(Ordering::Less),
        (Condition::Lte(bound), Some(v)) => {
            matches!(compare(v, bound), Some(Ordering::Less | Ordering::Equal))
        }
    }
}

/// JSON equality where numbers compare by value, at every depth.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => objects_eq(xs, ys),
        _ => a == b,
    }
}

fn objects_eq(xs: &Map<String, Value>, ys: &Map<String, Value>) -> bool {
    xs.len() == ys.len()
        && xs
            .iter()
            .all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y)))
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(data: Value) -> Value {
        json!({"name": "app/order.paid", "data": data})
    }

    #[test]
    fn plain_values_mean_equality_and_all_conditions_must_hold() {
        let filter = Filter::parse(&json!({"data.plan": "pro", "data.seats": 3})).unwrap();
        assert!(filter.matches(&event(json!({"plan": "pro", "seats": 3.0}))));
        assert!(!filter.matches(&event(json!({"plan": "pro", "seats": 4}))));
        assert!(!filter.matches(&event(json!({"plan": "free", "seats": 3}))));
        assert!(!filter.matches(&event(json!({"seats": 3}))));
    }

    #[test]
    fn operators_compare_numbers_and_strings() {
        let filter = Filter::parse(&json!({"data.amount": {"gte": 100, "lt": 200}})).unwrap();
        assert!(filter.matches(&event(json!({"amount": 100}))));
        assert!(filter.matches(&event(json!({"amount": 199.5}))));
        assert!(!filter.matches(&event(json!({"amount": 200}))));
        assert!(
            !filter.matches(&event(json!({"amount": "150"}))),
            "a string is not a number"
        );
        let by_name = Filter::parse(&json!({"data.tier": {"gt": "b"}})).unwrap();
        assert!(by_name.matches(&event(json!({"tier": "c"}))));
        assert!(!by_name.matches(&event(json!({"tier": "a"}))));
    }

    #[test]
    fn in_ne_and_exists() {
        let filter = Filter::parse(&json!({
            "data.region": {"in": ["eu", "us"]},
            "data.test": {"ne": true},
            "data.user_id": {"exists": true},
            "data.deleted_at": {"exists": false}
        }))
        .unwrap();
        assert!(filter.matches(&event(json!({"region": "eu", "user_id": 1}))));
        assert!(filter.matches(&event(json!({"region": "us", "user_id": 1, "test": false}))));
        assert!(!filter.matches(&event(json!({"region": "ap", "user_id": 1}))));
        assert!(!filter.matches(&event(json!({"region": "eu", "user_id": 1, "test": true}))));
        assert!(!filter.matches(&event(json!({"region": "eu"}))));
        assert!(!filter.matches(&event(
            json!({"region": "eu", "user_id": 1, "deleted_at": "x"})
        )));
    }

    #[test]
    fn objects_compare_with_eq_by_value() {
        let filter = Filter::parse(&json!({"data.meta": {"eq": {"a": 1, "b": [2]}}})).unwrap();
        assert!(filter.matches(&event(json!({"meta": {"b": [2.0], "a": 1}}))));
        assert!(!filter.matches(&event(json!({"meta": {"a": 1}}))));
    }

    #[test]
    fn bad_filters_are_refused_with_the_path_named() {
        let cases = [
            (json!([1]), "object"),
            (json!({"user.id": 1}), "`user.id`"),
            (json!({"data.x": {"like": "a%"}}), "unknown operator `like`"),
            (json!({"data.x": {}}), "must not be empty"),
            (json!({"data.x": {"gt": [1]}}), "number or a string"),
            (json!({"data.x": {"in": 3}}), "list"),
            (json!({"data.x": {"exists": "yes"}}), "true or false"),
        ];
        for (spec, needle) in cases {
            let err = Filter::parse(&spec).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
        let many: Map<String, Value> = (0..33).map(|i| (format!("data.f{i}"), json!(1))).collect();
        assert!(Filter::parse(&Value::Object(many)).is_err());
    }
}
