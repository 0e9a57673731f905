//! What every spending request (a check, a reservation, an estimate) reads the same way:
//! dollars to exact cents, the currency, and the seed's metadata fields.

use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use crate::governance::Metadata;

/// The largest amount a spend takes: $10 billion, in cents.
pub(crate) const MAX_CENTS: u64 = 1_000_000_000_000;

/// Dollars as a JSON number to exact cents, refusing fractions of a cent and negatives.
pub(crate) fn cents_of(amount: &serde_json::Number) -> ApiResult<u64> {
    let refuse = || {
        ApiError::validation(
            "amount",
            "`amount` must be a non-negative number of dollars with at most two decimals",
        )
    };
    if let Some(dollars) = amount.as_u64() {
        return dollars.checked_mul(100).filter(|c| *c <= MAX_CENTS).ok_or_else(refuse);
    }
    let value = amount.as_f64().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(refuse)?;
    // The shortest decimal that reads back as this number: exact cents have at most two
    // fractional digits.
    let text = format!("{value}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if fraction.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let whole: u64 = whole.parse().map_err(|_| refuse())?;
    let fraction: u64 = format!("{fraction:0<2}").parse().map_err(|_| refuse())?;
    whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(fraction))
        .filter(|c| *c <= MAX_CENTS)
        .ok_or_else(refuse)
}

/// A metadata field of the expected type, or 422 naming it.
pub(crate) fn metadata_field<T: serde::de::DeserializeOwned>(
    metadata: &Map<String, Value>,
    key: &str,
    what: &str,
) -> ApiResult<Option<T>> {
    match metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone()).map(Some).map_err(|_| {
            ApiError::validation(
                &format!("metadata.{key}"),
                format!("`metadata.{key}` must be {what}"),
            )
        }),
    }
}

/// `USD` or `USDC` (any case), upper-cased; 422 naming `currency` otherwise.
pub(crate) fn currency_of(currency: &str) -> ApiResult<String> {
    let currency = currency.trim().to_uppercase();
    if currency != "USD" && currency != "USDC" {
        return Err(ApiError::validation("currency", "`currency` must be `USD` or `USDC`"));
    }
    Ok(currency)
}

/// The seed's metadata fields the rules read, and the country and category it names.
pub(crate) fn metadata_of(
    metadata: Option<&Map<String, Value>>,
) -> ApiResult<(Metadata, Option<String>, Option<String>)> {
    let empty = Map::new();
    let metadata = metadata.unwrap_or(&empty);
    let country: Option<String> = metadata_field(metadata, "country", "a two-letter country code")?;
    if country.as_ref().is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(ApiError::validation(
            "metadata.country",
            "`metadata.country` must be an ISO 3166-1 alpha-2 code",
        ));
    }
    let category: Option<String> = metadata_field(metadata, "category", "a string")?;
    let discount_percent: Option<f64> = metadata_field(metadata, "discount_percent", "a number")?;
    if discount_percent.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        return Err(ApiError::validation(
            "metadata.discount_percent",
            "`metadata.discount_percent` must be 0 to 100",
        ));
    }
    let fields = Metadata {
        days_since_purchase: metadata_field(
            metadata,
            "days_since_purchase",
            "a whole number of days",
        )?,
        discount_percent,
    };
    Ok((fields, country, category))
}
