//! The spend guard (`/v1/spend-guard/…`): ask before spending (estimate, authorize), hold
//! budget while working (reservations, captured or released), lease bounded budget to child
//! agents, and summarise it all. Agents call it as themselves, owners for any agent of their
//! account ([`crate::api::auth::Checker`]); lease writes are the owner's.
//!
//! Everything that binds is a reservation row made in the transaction of its policy decision
//! ([`crate::api::spend_gate`]), so two callers can never both take the last dollar; estimate
//! and authorize read the same counts and change nothing.

pub mod estimate;
pub mod leases;
pub mod reservations;
pub mod summary;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult, ErrorCode};
use super::spend_request;
use crate::api::auth::ExecutionGrant;
use crate::governance::{ActionType, Request};

/// What a spend-guard request spends, for whom and on what: the body of authorize and of
/// reservations (`ttl_seconds` and `lease_id` matter to reservations only).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendFields {
    /// The agent spending: an agent key may name only itself (or leave it out); the owner
    /// names any agent of its account.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Cents, 1 to $10 billion.
    pub amount_cents: u64,
    /// `refund`, `credit`, `discount` or `spend`.
    pub action_type: ActionType,
    /// Who is paid: customer, vendor, agent id or wallet address.
    pub counterparty: Option<String>,
    /// What is bought (matched by category rules and mandates).
    #[serde(default)]
    pub category: Option<String>,
    /// `USD` (default) or `USDC`.
    #[serde(default)]
    pub currency: Option<String>,
    /// The mandate the spend is made under (an execution token minted for a mandate names it
    /// by itself).
    #[serde(default)]
    pub mandate_id: Option<String>,
    /// `days_since_purchase`, `discount_percent`, `country`, `category`, and anything else
    /// (kept with the reservation; at most 4 KiB as JSON).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Reservations: seconds the hold lives unless captured or released (default 900, at most
    /// 86,400).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Reservations: the agent's active budget lease, to make sure the hold counts against it
    /// (the agent's active lease is used whether named or not).
    #[serde(default)]
    pub lease_id: Option<String>,
}

impl SpendFields {
    /// The engine's request at `at`, or 422 naming the field at fault.
    pub(crate) fn request(&self, at: i64) -> ApiResult<Request> {
        if self.amount_cents == 0 || self.amount_cents > spend_request::MAX_CENTS {
            return Err(ApiError::validation(
                "amount_cents",
                "`amount_cents` must be 1 to 1,000,000,000,000",
            ));
        }
        let counterparty = self.counterparty.as_deref().map(str::trim).unwrap_or_default();
        if counterparty.is_empty() || counterparty.len() > 256 {
            return Err(ApiError::validation(
                "counterparty",
                "`counterparty` must be 1 to 256 characters",
            ));
        }
        if self.category.as_ref().is_some_and(|c| c.trim().is_empty() || c.len() > 256) {
            return Err(ApiError::validation("category", "`category` must be 1 to 256 characters"));
        }
        let size = self.metadata.as_ref().map_or(0, |m| Value::Object(m.clone()).to_string().len());
        if size > 4_096 {
            return Err(ApiError::validation("metadata", "`metadata` is at most 4 KiB of JSON"));
        }
        let (metadata, country, category) = spend_request::metadata_of(self.metadata.as_ref())?;
        let categories = self.category.iter().cloned().chain(category).collect();
        Ok(Request {
            action_type: self.action_type,
            amount_cents: self.amount_cents,
            counterparties: vec![counterparty.to_owned()],
            categories,
            country: country.map(|c| c.to_uppercase()),
            at,
            metadata,
        })
    }

    /// The currency, `USD` when not given.
    pub(crate) fn currency(&self) -> ApiResult<String> {
        spend_request::currency_of(self.currency.as_deref().unwrap_or("USD"))
    }
}

/// The mandate a spend is made under: the one an execution token was minted for (naming
/// another is 403), else the one the body names.
pub(crate) fn grant_mandate(
    grant: Option<&ExecutionGrant>,
    named: Option<&str>,
) -> ApiResult<Option<String>> {
    let granted = grant.and_then(|g| g.mandate_id.as_ref()).map(ToString::to_string);
    match (granted, named) {
        (Some(granted), Some(named)) if granted != named => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this execution token spends only under the mandate it was minted for",
        )
        .with_details(serde_json::json!({ "mandate_id": granted }))),
        (Some(granted), _) => Ok(Some(granted)),
        (None, named) => Ok(named.map(str::to_owned)),
    }
}
