//! The event types Pactum sends and the envelope every webhook delivery posts
//! (`{"id", "type", "created_at", "data"}`), as the API documents and shows them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use crate::store::outbox::EventType;

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

    #[test]
    fn event_types_are_the_ones_pactum_sends() {
        for name in EventType::ALL.iter().map(|t| t.as_str()) {
            let parsed: EventType = name.parse().unwrap();
            assert_eq!(parsed.as_str(), name);
            assert_eq!(serde_json::to_value(parsed).unwrap(), name);
        }
        let schema = serde_json::to_value(<EventType as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["enum"].as_array().unwrap().len(), EventType::ALL.len());
    }

    #[test]
    fn the_webhooks_page_lists_every_event_type() {
        let doc = include_str!("../../../docs/webhooks.md");
        let section = &doc[doc.find("### Event types").expect("the event types section")..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for event in EventType::ALL {
            let listed = format!("`{}`", event.as_str());
            assert!(section.contains(&listed), "docs/webhooks.md does not list {listed}");
        }
    }
}
