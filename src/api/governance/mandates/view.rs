//! What the mandate routes answer: a mandate with what it has spent and what is left of it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::time::rfc3339;
use crate::governance::{ActionType, Mandate, MandateStatus};

/// A mandate as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Mandate, example = json!({"id": "mdt_0195c2a1b9e8d7c6b5a49382", "agent_id": "agt_0195c2a1b9e8d7c6b5a49381", "status": "active", "max_total_cents": 50000, "per_tx_max_cents": 5000, "valid_from": null, "valid_until": "2026-12-31T00:00:00Z", "action_types": ["spend"], "counterparties": ["vendor_42"], "categories": [], "purpose": "Search API credits for Q4", "spent_cents": 1200, "remaining_cents": 48800, "revoked_at": null, "revoke_reason": null, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}))]
pub struct MandateView {
    /// `mdt_…`.
    #[schema(pattern = "^mdt_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The one agent it is granted to.
    pub agent_id: String,
    /// `active` or `revoked` (revocation is final).
    pub status: MandateStatus,
    /// The most its spends may add up to, in cents.
    pub max_total_cents: u64,
    /// The most one spend may be, in cents; `null`: only the total bounds it.
    #[schema(required = true)]
    pub per_tx_max_cents: Option<u64>,
    /// From when it may be spent (RFC 3339); `null`: from its creation.
    #[schema(required = true)]
    pub valid_from: Option<String>,
    /// From when it may no longer be spent (RFC 3339); `null`: until revoked.
    #[schema(required = true)]
    pub valid_until: Option<String>,
    /// The action types it covers; empty: any.
    pub action_types: Vec<ActionType>,
    /// The counterparties it may pay (any identifier, case-insensitive); empty: any.
    pub counterparties: Vec<String>,
    /// The categories it covers; empty: any.
    pub categories: Vec<String>,
    /// What it is for.
    #[schema(required = true)]
    pub purpose: Option<String>,
    /// What its reservations count now: held, or captured, in cents.
    pub spent_cents: u64,
    /// What is left of `max_total_cents` (0 once reached). A revoked or expired mandate
    /// admits nothing, whatever is left.
    pub remaining_cents: u64,
    /// When it was revoked (RFC 3339).
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// Why: the owner's reason, or `agent_revoked` / `agent_halted`.
    #[schema(required = true)]
    pub revoke_reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl MandateView {
    /// `mandate` with the `spent_cents` its reservations count.
    pub fn new(mandate: &Mandate, spent_cents: u64) -> Self {
        MandateView {
            id: mandate.id.to_string(),
            agent_id: mandate.agent_id.clone(),
            status: mandate.status,
            max_total_cents: mandate.max_total_cents,
            per_tx_max_cents: mandate.per_tx_max_cents,
            valid_from: mandate.valid_from.map(rfc3339),
            valid_until: mandate.valid_until.map(rfc3339),
            action_types: mandate.action_types.clone(),
            counterparties: mandate.counterparties.clone(),
            categories: mandate.categories.clone(),
            purpose: mandate.purpose.clone(),
            spent_cents,
            remaining_cents: mandate.remaining_cents(spent_cents),
            revoked_at: mandate.revoked_at.map(rfc3339),
            revoke_reason: mandate.revoke_reason.clone(),
            created_at: rfc3339(mandate.created_at),
            updated_at: rfc3339(mandate.updated_at),
        }
    }
}

/// A page of mandates, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MandateList {
    /// The mandates.
    pub data: Vec<MandateView>,
    /// The `cursor` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/mandates`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MandateQuery {
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only mandates in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
