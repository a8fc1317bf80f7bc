//! The errors function code meets: a step's recorded error ([`StepFailed`]), an error that must not be retried
//! ([`NonRetriable`]), and what a step's error becomes on the wire.
//!
//! Invariant: every error a step returns is turned into the protocol's `{name, message, retryable}` here, and
//! only here, so the name a user sees on replay is the name the server recorded.

use std::fmt;

/// Any error, as function code and step closures return it (`?` converts most errors into it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A step's final error, handed to the code when the step is replayed (its retries exhausted, or it was not
/// retryable). Catch it to handle the failure, or let it propagate with `?` to fail the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step `{step}` failed: {name}: {message}")]
pub struct StepFailed {
    /// The step's id (numbered, as recorded: `send:1`).
    pub step: String,
    /// The error's class, e.g. `CardDeclined` (a step's error type name, or the name given to
    /// [`NonRetriable`]).
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// Wrap an error in this to fail a step at once, without the function's retries: the error is recorded and
/// handed to the code on the next call.
///
/// ```
/// use offload_sdk::function::NonRetriable;
/// let e = NonRetriable::new("CardDeclined", "the card was declined");
/// assert_eq!(e.to_string(), "CardDeclined: the card was declined");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonRetriable {
    /// The error's class, recorded as the step error's `name`.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

impl NonRetriable {
    /// A non-retriable error with a name and a message.
    pub fn new(name: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            name: name.into(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for NonRetriable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for NonRetriable {}

/// An error a step closure returned, as the protocol reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub(crate) name: String,
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl WireError {
    /// The wire form of `error`, a step closure's error of type `E` (whose short type name is the default
    /// error name).
    pub(crate) fn from_step<E: Into<BoxError>>(error: E) -> Self {
        let default_name = short_type_name(std::any::type_name::<E>());
        let error: BoxError = error.into();
        if let Some(e) = error.downcast_ref::<NonRetriable>() {
            return Self {
                name: nonempty(&e.name),
                message: e.message.clone(),
                retryable: false,
            };
        }
        if let Some(e) = error.downcast_ref::<StepFailed>() {
            return Self {
                name: nonempty(&e.name),
                message: e.message.clone(),
                retryable: true,
            };
        }
        Self {
            name: default_name,
            message: error.to_string(),
            retryable: true,
        }
    }

    /// The `error` object of a `run` op.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "message": self.message, "retryable": self.retryable})
    }
}

/// The error's name when it has none: the protocol needs 1 to 256 bytes.
fn nonempty(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        "Error".to_owned()
    } else {
        name.chars().take(256).collect()
    }
}

/// `std::io::Error` → `Error`, `my_app::CardError<T>` → `CardError`, `Box<dyn Error>` → `Error`.
pub(crate) fn short_type_name(full: &str) -> String {
    if full.starts_with("alloc::boxed::Box<dyn ") || full.starts_with("Box<dyn ") {
        return "Error".to_owned();
    }
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    nonempty(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("declined")]
    struct CardDeclined;

    #[test]
    fn names_come_from_the_type_or_the_wrapper() {
        let e = WireError::from_step(CardDeclined);
        assert_eq!(
            (e.name.as_str(), e.message.as_str(), e.retryable),
            ("CardDeclined", "declined", true)
        );
        let e = WireError::from_step(NonRetriable::new("Gone", "no such user"));
        assert_eq!((e.name.as_str(), e.retryable), ("Gone", false));
        let boxed: BoxError = "plain".into();
        let e = WireError::from_step(boxed);
        assert_eq!((e.name.as_str(), e.message.as_str()), ("Error", "plain"));
        let io = std::io::Error::other("disk");
        assert_eq!(WireError::from_step(io).name, "Error");
        let failed = StepFailed {
            step: "a".into(),
            name: "Upstream".into(),
            message: "m".into(),
        };
        assert_eq!(WireError::from_step(failed).name, "Upstream");
        assert_eq!(short_type_name("a::b::Thing<c::D>"), "Thing");
    }
}
