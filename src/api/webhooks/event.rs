//! The event types Pactum sends and the envelope every webhook delivery posts
//! (`{"id", "type", "created_at", "data"}`), as the API documents and shows them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::vocab::string_enum;

string_enum!(
    /// An event type a webhook endpoint can receive.
    EventType {
        /// A buyer proposed an agreement.
        AgreementProposed = "agreement.proposed",
        /// The seller accepted; terms fixed.
        AgreementAccepted = "agreement.accepted",
        /// The seller rejected.
        AgreementRejected = "agreement.rejected",
        /// The agreement was cancelled.
        AgreementCancelled = "agreement.cancelled",
        /// Not activated in time.
        AgreementExpired = "agreement.expired",
        /// Activation queued for the relayer.
        ActivationQueued = "activation.queued",
        /// Activation broadcast.
        ActivationSubmitted = "activation.submitted",
        /// Activation confirmed on-chain.
        ActivationConfirmed = "activation.confirmed",
        /// Activation failed.
        ActivationFailed = "activation.failed",
        /// The seller recorded usage.
        UsageRecorded = "usage.recorded",
        /// A buyer's voucher was kept.
        UsageVoucherAccepted = "usage.voucher_accepted",
        /// A sponsored settlement action was queued.
        SettlementActionQueued = "settlement_action.queued",
        /// It was broadcast.
        SettlementActionSubmitted = "settlement_action.submitted",
        /// It was confirmed.
        SettlementActionConfirmed = "settlement_action.confirmed",
        /// It failed.
        SettlementActionFailed = "settlement_action.failed",
        /// A close was initiated on-chain.
        SettlementCloseInitiated = "settlement.close_initiated",
        /// The seller claimed.
        SettlementClaimed = "settlement.claimed",
        /// The buyer withdrew.
        SettlementWithdrawn = "settlement.withdrawn",
        /// Both sides are paid out.
        AgreementSettled = "agreement.settled",
        /// A reorganisation rolled the agreement back.
        AgreementReorged = "agreement.reorged",
        /// A relayer job failed for good.
        RelayerJobFailed = "relayer.job_failed",
    }
);

/// What every event's `data` holds; the event's own fields follow (and win).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    /// The agreement.
    #[schema(pattern = "^ua_[0-9A-Za-z_]+$")]
    pub agreement_id: String,
    /// Its status when the event was dispatched (or the one a chain event produced).
    pub status: String,
    /// Its activation status.
    pub activation_status: String,
    /// The buyer agent.
    pub buyer_agent_id: String,
    /// The seller agent.
    pub seller_agent_id: String,
    /// The event's own fields, which differ by type.
    #[serde(flatten)]
    pub own: Map<String, Value>,
}

/// The body every webhook delivery posts, byte for byte the same on each attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "evt_0190c5a1b2c3d4e5a1b2c3d4e5f6", "type": "agreement.accepted", "created_at": "2026-01-01T00:00:00Z", "data": {"agreement_id": "ua_0190c5a1b2c3d4e5a1b2c3d4e5f6", "status": "accepted", "activation_status": "not_started", "buyer_agent_id": "agt_0190c5a1b2c3d4e5a1b2c3d4e5f6", "seller_agent_id": "agt_0190c5a1b2c3d4e5f6a1b2c3d4e5", "agreement_key": "0x9c1f…"}}))]
pub struct WebhookEvent {
    /// The event's id (one event may be delivered to several endpoints).
    #[schema(pattern = "^evt_[0-9A-Za-z_]+$")]
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// RFC 3339.
    pub created_at: String,
    /// The agreement and the event's own fields.
    pub data: EventData,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::events::EVENT_TYPES;

    #[test]
    fn event_types_are_the_ones_pactum_sends() {
        for name in EVENT_TYPES {
            let parsed: EventType = name.parse().unwrap();
            assert_eq!(parsed.as_str(), *name);
            assert_eq!(serde_json::to_value(parsed).unwrap(), *name);
        }
        let schema = serde_json::to_value(<EventType as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["enum"].as_array().unwrap().len(), EVENT_TYPES.len());
    }
}
