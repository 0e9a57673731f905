//! What the reservation routes take and answer: capture and release bodies, a reservation with
//! its lifecycle events, the answer to a new reservation, and the list and its query.

use serde::{Deserialize, Serialize};

use crate::store::governance::holds::{self, Hold, HoldChange, HoldSource, HoldStatus};

/// The body of capture: how much of the hold was spent (default: all of it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Cents spent, at most what is held; the rest is released.
    #[serde(default)]
    pub amount_cents: Option<u64>,
}

/// The optional body of release.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why (kept in the reservation's events; at most 1,000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// One change of a reservation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservationEventView {
    /// `pending_approval`, `reserved`, `captured`, `released`, `expired`, `rejected`,
    /// `reheld` or `credited`.
    pub event: holds::HoldEvent,
    /// The cents it concerned.
    pub amount_cents: u64,
    /// `owner`, `agent` or `system`.
    pub actor: String,
    /// Whatever else it carried (a reason, the approval).
    pub detail: serde_json::Value,
    /// When (UTC, RFC 3339).
    pub at: String,
}

/// A reservation as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservationView {
    /// `rsv_…`.
    pub id: String,
    /// The agent whose budgets it holds.
    pub agent_id: String,
    /// `pending_approval`, `reserved`, `captured`, `released`, `expired` or `rejected`.
    pub status: HoldStatus,
    /// `api`, `activation` (an escrow activation's deposit plus fee) or `lease` (capacity
    /// leased to a child agent).
    pub source: HoldSource,
    /// The agreement (activation) or lease (lease) it holds for.
    pub subject_id: Option<String>,
    /// Cents held.
    pub amount_cents: u64,
    /// Cents captured.
    pub captured_cents: Option<u64>,
    /// Cents that count toward the agent's budgets now.
    pub counted_cents: u64,
    /// The action type.
    pub action_type: String,
    /// `USD` or `USDC`.
    pub currency: String,
    /// Who is paid.
    pub counterparty: Option<String>,
    /// What is bought.
    pub category: Option<String>,
    /// The caller's metadata.
    pub metadata: Option<serde_json::Value>,
    /// The mandate it spends under.
    pub mandate_id: Option<String>,
    /// The budget lease it spends under.
    pub lease_id: Option<String>,
    /// The approval it waits (or waited) for.
    pub approval_id: Option<String>,
    /// The decision (`GET /v1/checks/{check_id}`) that let it through or escalated it.
    pub check_id: Option<String>,
    /// When an unresolved hold is released by the sweeper.
    pub expires_at: Option<String>,
    /// The time budget periods count it at.
    pub counted_at: String,
    /// When it was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Its lifecycle, oldest first (single reads and lists alike).
    pub events: Vec<ReservationEventView>,
}

impl ReservationView {
    pub(super) fn new(hold: &Hold, events: &[HoldChange]) -> Self {
        ReservationView {
            id: hold.id.to_string(),
            agent_id: hold.agent_id.clone(),
            status: hold.status,
            source: hold.source,
            subject_id: hold.subject_id.clone(),
            amount_cents: hold.amount_cents,
            captured_cents: hold.captured_cents,
            counted_cents: hold.counted_cents,
            action_type: hold.action_type.clone(),
            currency: hold.currency.clone(),
            counterparty: hold.counterparty.clone(),
            category: hold.category.clone(),
            metadata: hold.metadata.clone(),
            mandate_id: hold.mandate_id.clone(),
            lease_id: hold.lease_id.clone(),
            approval_id: hold.approval_id.clone(),
            check_id: hold.check_id.clone(),
            expires_at: hold.expires_at.map(crate::time::rfc3339),
            counted_at: crate::time::rfc3339(hold.counted_at),
            created_at: crate::time::rfc3339(hold.created_at),
            updated_at: crate::time::rfc3339(hold.updated_at),
            events: events
                .iter()
                .map(|e| ReservationEventView {
                    event: e.event,
                    amount_cents: e.amount_cents,
                    actor: e.actor.clone(),
                    detail: e.detail.clone(),
                    at: crate::time::rfc3339(e.created_at),
                })
                .collect(),
        }
    }
}

/// The answer to a reservation: the hold and the decision that made it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservationCreated {
    /// The reservation.
    #[serde(flatten)]
    pub reservation: ReservationView,
    /// The policy's decision (`allow` → `reserved`, `escalate` → `pending_approval`).
    pub decision: crate::api::spend_gate::CheckResponse,
}

/// A page of reservations, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReservationList {
    /// The reservations.
    pub data: Vec<ReservationView>,
    /// The `cursor` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of the reservation list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationQuery {
    /// Only reservations in this status.
    pub status: Option<String>,
    /// Only this agent's (an agent key sees only its own anyway).
    pub agent_id: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
