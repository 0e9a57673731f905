//! Timestamps as the API writes and reads them: RFC 3339 in UTC (the writer lives in
//! [`crate::time`]).

pub(crate) use crate::time::rfc3339;

use super::error::{ApiError, ApiResult};

/// Parses the RFC 3339 time `text` of `field` (a query parameter or a body field) as unix
/// seconds; 422 `validation_error` naming the field otherwise.
pub(crate) fn parse_rfc3339(field: &str, text: &str) -> ApiResult<i64> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| ApiError::validation(field, format!("`{field}` must be an RFC 3339 time")))
}

/// An optional RFC 3339 query or body field as unix seconds; 422 naming `field` when it does
/// not parse.
pub(crate) fn time_param(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value.map(|text| parse_rfc3339(field, text)).transpose()
}
