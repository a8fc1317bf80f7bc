//! Conversions between database values and domain types.
//!
//! Invariant: reading never panics; a value that does not fit (a negative attempt count, a token of the wrong
//! length, JSON that does not parse) becomes [`StoreError::Internal`] through [`crate::error::corrupt`].
//! Times are unix microseconds, ids and tokens 16-byte BLOBs; what every store encodes alike (durations,
//! timestamp precision, targets) is [`offload_store::codec`].

use std::collections::BTreeMap;

use offload_core::{JobId, Timestamp};
pub(crate) use offload_store::codec::{backoff, state, target};
use offload_store::{Result, StoreError};
use serde_json::value::RawValue;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

use crate::error::db;

/// A timestamp as stored.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// A stored timestamp.
pub(crate) fn timestamp(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::corrupt(format!("timestamp {us}: {e}")))
}

/// A stored job id.
pub(crate) fn job_id(bytes: &[u8]) -> Result<JobId> {
    <[u8; 16]>::try_from(bytes)
        .map(JobId::from_bytes)
        .map_err(|_| StoreError::corrupt("job id is not 16 bytes"))
}

/// An id or token written by SQLite's `hex()` (32 hex digits).
pub(crate) fn hex_uuid(hex: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::try_parse(hex).map_err(|e| StoreError::corrupt(format!("id {hex}: {e}")))
}

/// A stored count or attempt number (an `INTEGER` column), per [`offload_store::codec::u32_of`].
pub(crate) fn u32_of(v: i64, what: &str) -> Result<u32> {
    offload_store::codec::u32_of(v, what)
}

/// Stored JSON text kept raw (validated, not re-serialized).
pub(crate) fn raw_json(text: String) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(|e| StoreError::corrupt(format!("JSON: {e}")))
}

/// Tags as stored: a JSON object, or NULL when there are none.
pub(crate) fn tags_to_db(tags: &BTreeMap<String, String>) -> Option<String> {
    if tags.is_empty() {
        None
    } else {
        serde_json::to_string(tags).ok()
    }
}

/// Stored tags.
pub(crate) fn tags(text: Option<&str>) -> Result<BTreeMap<String, String>> {
    match text {
        None => Ok(BTreeMap::new()),
        Some(t) => serde_json::from_str(t).map_err(|e| StoreError::corrupt(format!("tags: {e}"))),
    }
}

/// One column of a row, with a database-level decoding failure reported as [`StoreError::Internal`].
///
/// [`StoreError::Internal`]: offload_store::StoreError::Internal
pub(crate) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(db)
}
