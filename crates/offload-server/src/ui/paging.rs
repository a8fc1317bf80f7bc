//! Keyset paging shared by the dashboard's list pages (jobs, dead jobs, runs, events): the page links, the
//! cursor read back from them, and the "older page" link.
//!
//! Invariant: a list page asks the store for one row more than it shows; only that extra row proves an older
//! page exists, so a page of exactly [`PAGE_SIZE`]-many rows links to no empty page.

use std::fmt::Display;
use std::str::FromStr;

/// Rows per page of every list page.
pub(crate) const PAGE_SIZE: u32 = 50;

/// The store limit for one page: one more than shown, to tell whether an older page exists.
pub(crate) const FETCH_LIMIT: u32 = PAGE_SIZE + 1;

/// `path?a&b`, leaving out empty parts.
pub(crate) fn with_query(path: &str, a: &str, b: &str) -> String {
    let parts: Vec<&str> = [a, b].into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// The set filters as a query string (empty ones left out), for the page links.
pub(crate) fn filter_query(filters: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in filters {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// The page link's cursor: the key to list before, or (when it is not one) none and the notice saying the
/// newest `what` are shown instead.
pub(crate) fn page_cursor<K: FromStr>(cursor: &str, what: &str) -> (Option<K>, Option<String>) {
    match cursor {
        "" => (None, None),
        c => match c.parse::<K>() {
            Ok(key) => (Some(key), None),
            Err(_) => (
                None,
                Some(format!(
                    "The page link is not valid; showing the newest {what}."
                )),
            ),
        },
    }
}

/// Cuts a page fetched with [`FETCH_LIMIT`] to [`PAGE_SIZE`] rows; the link to the older page when there is
/// one, keyed by the last row shown.
pub(crate) fn older_page<T, K: Display>(
    rows: &mut Vec<T>,
    path: &str,
    filter: &str,
    key: impl FnOnce(&T) -> K,
) -> Option<String> {
    if rows.len() <= PAGE_SIZE as usize {
        return None;
    }
    rows.truncate(PAGE_SIZE as usize);
    rows.last()
        .map(|last| with_query(path, filter, &format!("cursor={}", key(last))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_leave_out_empty_parts() {
        assert_eq!(with_query("/ui/runs", "", ""), "/ui/runs");
        assert_eq!(with_query("/ui/runs", "a=1", ""), "/ui/runs?a=1");
        assert_eq!(with_query("/ui/runs", "", "cursor=x"), "/ui/runs?cursor=x");
        assert_eq!(
            filter_query(&[("name", "a b"), ("state", ""), ("tag", "k:v")]),
            "name=a+b&tag=k%3Av"
        );
    }

    #[test]
    fn a_bad_cursor_shows_the_newest_page() {
        assert_eq!(page_cursor::<u32>("", "runs"), (None, None));
        assert_eq!(page_cursor::<u32>("7", "runs"), (Some(7), None));
        let (key, error) = page_cursor::<u32>("x", "runs");
        assert_eq!(key, None);
        assert_eq!(
            error.as_deref(),
            Some("The page link is not valid; showing the newest runs.")
        );
    }

    #[test]
    fn only_the_extra_row_links_an_older_page() {
        let mut rows: Vec<u32> = (0..PAGE_SIZE).collect();
        assert_eq!(older_page(&mut rows, "/ui/x", "", |r| *r), None);
        assert_eq!(rows.len(), PAGE_SIZE as usize);
        let mut rows: Vec<u32> = (0..FETCH_LIMIT).collect();
        let link = older_page(&mut rows, "/ui/x", "a=1", |r| *r);
        assert_eq!(rows.len(), PAGE_SIZE as usize);
        assert_eq!(link, Some(format!("/ui/x?a=1&cursor={}", PAGE_SIZE - 1)));
    }
}
