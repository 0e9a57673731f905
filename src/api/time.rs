//! Timestamps as the API writes them: RFC 3339 in UTC (the helper lives in [`crate::time`]).

pub(crate) use crate::time::rfc3339;
