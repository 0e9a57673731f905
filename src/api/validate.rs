//! Field checks shared by the resource modules: wallet addresses, short texts and prose. Each
//! refusal is a 422 `validation_error` naming the field in `details.field`.

use alloy::primitives::Address;

use super::error::{ApiError, ApiResult};

/// Parses a wallet address field; the zero address is refused.
pub(crate) fn wallet(field: &str, value: &str) -> ApiResult<Address> {
    let address: Address = value.parse().map_err(|_| {
        ApiError::validation(field, format!("`{field}` is not a 20-byte hex address"))
    })?;
    if address.is_zero() {
        return Err(ApiError::validation(field, format!("`{field}` is the zero address")));
    }
    Ok(address)
}

/// Checks a short identifier-like text field: 1 to `max` characters, no control characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(field, format!("`{field}` holds control characters")));
    }
    Ok(())
}

/// Checks free prose (a description, a reason): at most `max` characters and no NUL, which no
/// text needs and some databases refuse.
pub(crate) fn prose(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.chars().count() > max {
        return Err(ApiError::validation(field, format!("`{field}` is over {max} characters")));
    }
    if value.contains('\0') {
        return Err(ApiError::validation(field, format!("`{field}` holds a NUL character")));
    }
    Ok(())
}
