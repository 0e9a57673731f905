//! Timestamps as the API writes them: RFC 3339 in UTC (the helper lives in [`crate::time`]).

pub(crate) use crate::time::rfc3339;

/// An optional RFC 3339 query or body field as unix seconds; 422 naming `field` when it does
/// not parse.
pub(crate) fn time_param(field: &str, value: Option<&str>) -> super::error::ApiResult<Option<i64>> {
    value
        .map(|text| {
            text.parse::<jiff::Timestamp>().map(|t| t.as_second()).map_err(|_| {
                super::error::ApiError::validation(
                    field,
                    format!("`{field}` must be an RFC 3339 time"),
                )
            })
        })
        .transpose()
}
