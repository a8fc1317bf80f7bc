//! Conversions between PostgreSQL values and domain types.
//!
//! Invariant: reading never panics; a value that does not fit (a negative attempt count, a state the domain
//! does not know, JSON that does not parse) becomes [`StoreError::Internal`] through [`crate::error::corrupt`].
//! Times are `timestamptz` (whole microseconds), ids and tokens `uuid`; what every store encodes alike
//! (durations as bigint milliseconds, targets) is [`offload_store::codec`].
//!
//! [`StoreError::Internal`]: offload_store::StoreError::Internal

use std::borrow::Cow;
use std::collections::BTreeMap;

use offload_core::Timestamp;
use offload_store::Result;
pub(crate) use offload_store::codec::{backoff, state, stored_precision, target};
use serde_json::value::RawValue;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgHasArrayType, PgRow, PgTypeInfo, PgValueFormat, PgValueRef, Postgres,
};
use sqlx::{Decode, Encode, Row, Type};

use crate::error::db;

/// Microseconds between the unix epoch and PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A [`Timestamp`] as PostgreSQL's `timestamptz`: whole microseconds (finer parts are cut when encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub(crate) Timestamp);

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1184))
    }
}

impl PgHasArrayType for Ts {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1185))
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let micros = self
            .0
            .as_microsecond()
            .checked_sub(PG_EPOCH_MICROS)
            .ok_or("timestamp out of PostgreSQL's range")?;
        <i64 as Encode<'_, Postgres>>::encode(micros, buf)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let micros = <i64 as Decode<'r, Postgres>>::decode(value)?;
                let unix = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or("timestamptz out of range")?;
                Ok(Ts(Timestamp::from_microsecond(unix)?))
            }
            // `2026-01-01 00:00:00.5+00`: the ISO style PostgreSQL prints, with an hour-only offset.
            PgValueFormat::Text => {
                let text = value.as_str()?;
                Ok(Ts(text.replacen(' ', "T", 1).parse()?))
            }
        }
    }
}

/// A stored count or attempt number (an `integer` column), per [`offload_store::codec::u32_of`].
pub(crate) fn u32_of(v: i32, what: &str) -> Result<u32> {
    offload_store::codec::u32_of(v, what)
}

/// Free text as PostgreSQL can store it: `text` (and `jsonb` strings) cannot hold NUL, which becomes U+FFFD.
/// Everything else is kept as it is.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Tags as stored: a JSON object, or NULL when there are none.
pub(crate) fn tags_to_db(tags: &BTreeMap<String, String>) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let clean: BTreeMap<Cow<'_, str>, Cow<'_, str>> =
        tags.iter().map(|(k, v)| (text(k), text(v))).collect();
    serde_json::to_string(&clean).ok()
}

/// Stored tags.
pub(crate) fn tags(
    json: Option<sqlx::types::Json<BTreeMap<String, String>>>,
) -> BTreeMap<String, String> {
    json.map(|j| j.0).unwrap_or_default()
}

/// Stored JSON (`json` columns keep the text exactly), kept raw.
pub(crate) type RawJson = sqlx::types::Json<Box<RawValue>>;

/// One column of a row, with a decoding failure reported as [`StoreError::Internal`].
///
/// [`StoreError::Internal`]: offload_store::StoreError::Internal
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column).map_err(db)
}

/// A timestamp column.
pub(crate) fn ts(row: &PgRow, column: &str) -> Result<Timestamp> {
    Ok(get::<Ts>(row, column)?.0)
}

/// A nullable timestamp column.
pub(crate) fn ts_opt(row: &PgRow, column: &str) -> Result<Option<Timestamp>> {
    Ok(get::<Option<Ts>>(row, column)?.map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_times_fit_postgresql() {
        assert_eq!(tags_to_db(&BTreeMap::new()), None);
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        let tags = BTreeMap::from([("k".to_owned(), "v\0".to_owned())]);
        assert_eq!(tags_to_db(&tags).unwrap(), "{\"k\":\"v\u{FFFD}\"}");
        let t = stored_precision("2026-01-01T00:00:00.123456789Z".parse().unwrap());
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.123456Z");
    }
}
