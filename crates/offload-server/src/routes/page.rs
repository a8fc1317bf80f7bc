//! Paging shared by the list routes: the page size check and the cursor a full page hands back.
//!
//! A page carries `next_cursor` only when it is full (exactly `limit` items); the cursor is the key of its
//! last item, which the next request passes back as `cursor`/`before`.

use offload_core::api::MAX_PAGE_LIMIT;

use crate::error::{AppError, Result};

/// Checks a page size: `default` when none is asked for, refused outside `1..=MAX_PAGE_LIMIT`.
pub(crate) fn page_limit(limit: Option<u32>, default: u32) -> Result<u32> {
    let limit = limit.unwrap_or(default);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// Checks a `cursor` with the validator of the key it stands for, so a made-up one is refused as such.
pub(crate) fn check_cursor<E>(
    cursor: Option<&str>,
    validate: impl FnOnce(&str) -> std::result::Result<(), E>,
) -> Result<()> {
    match cursor {
        Some(cursor) => validate(cursor)
            .map_err(|_| AppError::invalid("cursor", "is not a cursor from a previous page")),
        None => Ok(()),
    }
}

/// Checks a filter with the validator of the value it compares, so a value no record can hold is refused
/// (`invalid_field` naming the parameter) rather than answered with an empty page.
pub(crate) fn check_filter(
    field: &str,
    value: Option<&str>,
    validate: impl FnOnce(&str) -> std::result::Result<(), String>,
) -> Result<()> {
    match value {
        Some(value) => validate(value).map_err(|m| AppError::invalid(field, m)),
        None => Ok(()),
    }
}

/// The cursor of the next page: the key of the last record when the page is full, else none.
pub(crate) fn next_cursor<T, K>(records: &[T], limit: u32, key: impl FnOnce(&T) -> K) -> Option<K> {
    if records.len() == limit as usize {
        records.last().map(key)
    } else {
        None
    }
}
