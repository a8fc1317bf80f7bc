//! JSON that passes through the server as text.
//!
//! Invariant: a [`Json`] holds syntactically valid JSON exactly as it arrived; it is never re-parsed or
//! re-serialized on its way from the code to the store and back, so results keep their bytes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// JSON kept as the text it arrived as (never re-parsed on its way through), compared by that text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(pub Box<RawValue>);

impl Json {
    /// Parses `text` as JSON, keeping it as written.
    pub fn from_text(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(Self)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// JSON `null`.
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
