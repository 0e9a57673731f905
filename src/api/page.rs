//! Paging of list endpoints: the `limit` rule, the `created_at.id` cursor, and cutting one page
//! from a query that fetched one row more than `limit` (the extra row tells whether another page
//! exists, so a list that is an exact multiple of `limit` does not end with an empty page).

use super::error::{ApiError, ApiResult};

/// `limit` of a list query: 1 to 100, 50 when left out.
pub fn limit(limit: Option<u32>) -> ApiResult<u32> {
    let limit = limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "`limit` must be 1 to 100"));
    }
    Ok(limit)
}

/// The `status` filter of a list query: one of `all` by its `name`, `None` when left out, 422
/// on `status` naming every allowed value otherwise.
pub fn status_filter<T: Copy>(
    value: Option<&str>,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> ApiResult<Option<T>> {
    let Some(value) = value else { return Ok(None) };
    all.iter().copied().find(|status| name(*status) == value).map(Some).ok_or_else(|| {
        let names: Vec<String> = all.iter().map(|s| format!("`{}`", name(*s))).collect();
        ApiError::validation("status", format!("`status` must be one of {}", names.join(", ")))
    })
}

/// A `created_at.id` cursor as [`cursor_of`] writes it.
pub fn decode_cursor(cursor: &str) -> ApiResult<(i64, String)> {
    cursor
        .split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| ApiError::validation("cursor", "`cursor` is not a cursor this API issued"))
}

/// The cursor after a row created at `created_at` with `id`.
pub fn cursor_of(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

/// Cuts `rows` (fetched with `limit + 1`) to one page; returns the cursor of the next page,
/// `None` when this is the last.
pub fn cut<T>(rows: &mut Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Option<String> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if more { rows.last().map(cursor) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        assert_eq!(limit(None).unwrap(), 50);
        assert!(limit(Some(0)).is_err() && limit(Some(101)).is_err());
        assert_eq!(decode_cursor(&cursor_of(7, "agt_1")).unwrap(), (7, "agt_1".to_owned()));
        assert!(decode_cursor("x").is_err());
        let mut rows = vec![1, 2, 3];
        assert_eq!(cut(&mut rows, 2, |n| n.to_string()), Some("2".into()));
        assert_eq!(rows, [1, 2]);
        assert_eq!(cut(&mut rows, 2, |n| n.to_string()), None);
    }
}
