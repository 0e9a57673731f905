//! The bodies the mandate routes take, and their validation into [`Terms`]: each refusal is a
//! 422 `validation_error` naming its field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ApiResult};
use crate::api::time::parse_rfc3339;
use crate::api::validate::{prose, text};
use crate::governance::ActionType;

/// How many counterparties, and how many categories, one mandate may list.
const MAX_LISTED: usize = 100;

/// The body of `POST /v1/mandates`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent_id": "agt_0195c2a1b9e8d7c6b5a49381", "max_total_cents": 50000, "per_tx_max_cents": 5000, "valid_until": "2026-12-31T00:00:00Z", "action_types": ["spend"], "counterparties": ["vendor_42"], "purpose": "Search API credits for Q4"}))]
pub struct CreateMandate {
    /// The agent it is granted to: an active, not halted agent of the caller's account.
    pub agent_id: String,
    /// The most its spends may add up to, in cents (at least 1).
    #[schema(minimum = 1)]
    pub max_total_cents: u64,
    /// The most one spend may be, in cents (1 to `max_total_cents`).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub per_tx_max_cents: Option<u64>,
    /// From when it may be spent (RFC 3339); default: at once.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// From when it may no longer be spent (RFC 3339, in the future, after `valid_from`);
    /// default: until revoked.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// The action types it covers (`refund`, `credit`, `discount`, `spend`); empty: any.
    #[serde(default)]
    #[schema(value_type = Vec<ActionType>)]
    pub action_types: Vec<String>,
    /// The counterparties it may pay (at most 100 identifiers of 1–128 characters); empty:
    /// any.
    #[serde(default)]
    pub counterparties: Vec<String>,
    /// The categories it covers (at most 100, 1–64 characters each); empty: any.
    #[serde(default)]
    pub categories: Vec<String>,
    /// What it is for (at most 1,000 characters).
    #[serde(default)]
    pub purpose: Option<String>,
}

/// The body of `PUT /v1/mandates/{mandate_id}`: every editable field, replaced as a whole (a
/// field left out takes its default, as at creation). The agent cannot change.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_total_cents": 80000, "per_tx_max_cents": 5000, "valid_until": "2026-12-31T00:00:00Z", "action_types": ["spend"], "counterparties": ["vendor_42", "vendor_43"], "purpose": "Search API credits for Q4"}))]
pub struct UpdateMandate {
    /// As at creation.
    #[schema(minimum = 1)]
    pub max_total_cents: u64,
    /// As at creation.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub per_tx_max_cents: Option<u64>,
    /// As at creation.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// As at creation.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// As at creation.
    #[serde(default)]
    #[schema(value_type = Vec<ActionType>)]
    pub action_types: Vec<String>,
    /// As at creation.
    #[serde(default)]
    pub counterparties: Vec<String>,
    /// As at creation.
    #[serde(default)]
    pub categories: Vec<String>,
    /// As at creation.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// The optional body of `POST /v1/mandates/{mandate_id}/revoke`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeMandate {
    /// Why (kept with the mandate and in the audit log; at most 1,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A mandate's editable fields, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Cents, at least 1.
    pub max_total_cents: u64,
    /// Cents, 1 to `max_total_cents`.
    pub per_tx_max_cents: Option<u64>,
    /// Unix seconds.
    pub valid_from: Option<i64>,
    /// Unix seconds, after `valid_from` and after now.
    pub valid_until: Option<i64>,
    /// Without repeats, in the order given.
    pub action_types: Vec<ActionType>,
    /// Trimmed, without repeats (case-insensitively).
    pub counterparties: Vec<String>,
    /// Trimmed, without repeats (case-insensitively).
    pub categories: Vec<String>,
    /// Trimmed; `None` when blank.
    pub purpose: Option<String>,
}

impl CreateMandate {
    /// The validated terms, at `now` (unix seconds).
    pub fn terms(&self, now: i64) -> ApiResult<Terms> {
        UpdateMandate {
            max_total_cents: self.max_total_cents,
            per_tx_max_cents: self.per_tx_max_cents,
            valid_from: self.valid_from.clone(),
            valid_until: self.valid_until.clone(),
            action_types: self.action_types.clone(),
            counterparties: self.counterparties.clone(),
            categories: self.categories.clone(),
            purpose: self.purpose.clone(),
        }
        .terms(now)
    }
}

impl UpdateMandate {
    /// The validated terms, at `now` (unix seconds).
    pub fn terms(&self, now: i64) -> ApiResult<Terms> {
        let max_total_cents = cents("max_total_cents", self.max_total_cents)?;
        let per_tx_max_cents =
            self.per_tx_max_cents.map(|c| cents("per_tx_max_cents", c)).transpose()?;
        if per_tx_max_cents.is_some_and(|per_tx| per_tx > max_total_cents) {
            return Err(ApiError::validation(
                "per_tx_max_cents",
                "`per_tx_max_cents` must not be above `max_total_cents`",
            ));
        }
        let valid_from =
            self.valid_from.as_deref().map(|t| parse_rfc3339("valid_from", t)).transpose()?;
        let valid_until =
            self.valid_until.as_deref().map(|t| parse_rfc3339("valid_until", t)).transpose()?;
        if let (Some(from), Some(until)) = (valid_from, valid_until)
            && from >= until
        {
            return Err(ApiError::validation(
                "valid_until",
                "`valid_until` must be after `valid_from`",
            ));
        }
        if valid_until.is_some_and(|until| until <= now) {
            return Err(ApiError::validation("valid_until", "`valid_until` must be in the future"));
        }
        let mut action_types = Vec::new();
        for name in &self.action_types {
            let action = ActionType::parse(name).ok_or_else(|| {
                ApiError::validation(
                    "action_types",
                    "each of `action_types` must be `refund`, `credit`, `discount` or `spend`",
                )
            })?;
            if !action_types.contains(&action) {
                action_types.push(action);
            }
        }
        let purpose = self.purpose.as_deref().map(str::trim).filter(|p| !p.is_empty());
        if let Some(purpose) = purpose {
            prose("purpose", purpose, 1_000)?;
        }
        Ok(Terms {
            max_total_cents,
            per_tx_max_cents,
            valid_from,
            valid_until,
            action_types,
            counterparties: listed("counterparties", &self.counterparties, 128)?,
            categories: listed("categories", &self.categories, 64)?,
            purpose: purpose.map(str::to_owned),
        })
    }
}

/// A positive amount of cents that fits a BIGINT.
fn cents(field: &str, value: u64) -> ApiResult<u64> {
    if value == 0 || i64::try_from(value).is_err() {
        return Err(ApiError::validation(
            field,
            format!("`{field}` must be a positive number of cents below 2^63"),
        ));
    }
    Ok(value)
}

/// A list of identifiers: at most [`MAX_LISTED`], each 1 to `max` characters, trimmed, without
/// repeats (case-insensitively).
fn listed(field: &str, values: &[String], max: usize) -> ApiResult<Vec<String>> {
    if values.len() > MAX_LISTED {
        return Err(ApiError::validation(
            field,
            format!("`{field}` may list at most {MAX_LISTED} entries"),
        ));
    }
    let mut kept: Vec<String> = Vec::new();
    for value in values {
        text(field, value, max)?;
        let value = value.trim();
        if !kept.iter().any(|k| k.to_lowercase() == value.to_lowercase()) {
            kept.push(value.to_owned());
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn body() -> UpdateMandate {
        UpdateMandate {
            max_total_cents: 10_000,
            per_tx_max_cents: Some(10_000),
            valid_from: Some("2027-01-15T08:00:00Z".into()),
            valid_until: Some("2027-01-15T08:00:01Z".into()),
            action_types: vec!["spend".into(), "refund".into(), "spend".into()],
            counterparties: vec![" vendor_42 ".into(), "VENDOR_42".into()],
            categories: vec![],
            purpose: Some("  ".into()),
        }
    }

    fn field(result: ApiResult<Terms>) -> String {
        let error = result.unwrap_err();
        error.details.unwrap()["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn valid_terms_are_normalised() {
        let terms = body().terms(NOW).unwrap();
        assert_eq!(terms.per_tx_max_cents, Some(10_000));
        assert_eq!(terms.valid_until.unwrap() - terms.valid_from.unwrap(), 1);
        assert_eq!(terms.action_types, [ActionType::Spend, ActionType::Refund]);
        assert_eq!(terms.counterparties, ["vendor_42"]);
        assert_eq!(terms.purpose, None);
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases: Vec<(UpdateMandate, &str)> = vec![
            (UpdateMandate { max_total_cents: 0, ..body() }, "max_total_cents"),
            (UpdateMandate { max_total_cents: u64::MAX, ..body() }, "max_total_cents"),
            (UpdateMandate { per_tx_max_cents: Some(0), ..body() }, "per_tx_max_cents"),
            (UpdateMandate { per_tx_max_cents: Some(10_001), ..body() }, "per_tx_max_cents"),
            (UpdateMandate { valid_from: Some("tomorrow".into()), ..body() }, "valid_from"),
            (
                UpdateMandate { valid_until: Some("2027-01-15T08:00:00Z".into()), ..body() },
                "valid_until",
            ),
            (
                UpdateMandate {
                    valid_from: None,
                    valid_until: Some("2020-01-01T00:00:00Z".into()),
                    ..body()
                },
                "valid_until",
            ),
            (UpdateMandate { action_types: vec!["bribe".into()], ..body() }, "action_types"),
            (UpdateMandate { counterparties: vec!["".into()], ..body() }, "counterparties"),
            (UpdateMandate { categories: vec!["x".repeat(65)], ..body() }, "categories"),
            (UpdateMandate { categories: vec!["c".into(); 101], ..body() }, "categories"),
            (UpdateMandate { purpose: Some("p".repeat(1_001)), ..body() }, "purpose"),
        ];
        for (case, expected) in cases {
            assert_eq!(field(case.terms(NOW)), expected);
        }
    }
}
