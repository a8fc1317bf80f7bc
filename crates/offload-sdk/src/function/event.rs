//! Events as function code receives them ([`Event`], with typed `data`) and sends them ([`EventSpec`]).
//!
//! Invariant: both types have exactly the protocol's event shape (`{"name", "data", "id"?, "ts"?}`), so what
//! code sends is what the server stores and what a waiting step receives.

use offload_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event a run received: the one that started it (`ctx.event`), or one a `wait_for_event` step resolved to.
/// `D` is the type of its `data` (`serde_json::Value` for any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<D = Value> {
    /// The event's name, e.g. `app/user.signup`.
    pub name: String,
    /// Its data.
    pub data: D,
    /// The sender's de-duplication id, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it happened (the sender's `ts`, else when the server received it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
}

/// An event to send, from a client ([`crate::Client::send_event`]) or a `send_event` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    /// The event's name, e.g. `app/user.signup`.
    pub name: String,
    /// A JSON object (`{}` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// A de-duplication key: an event whose id was seen within the retention starts nothing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it happened (default: when the server receives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<Timestamp>,
}

impl EventSpec {
    /// An event named `name` with `data` (a JSON object, e.g. `json!({"user_id": 7})`).
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        Self {
            name: name.into(),
            data: Some(data),
            id: None,
            ts: None,
        }
    }

    /// Sets the de-duplication id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets when it happened.
    pub fn ts(mut self, ts: Timestamp) -> Self {
        self.ts = Some(ts);
        self
    }
}
