//! What the endpoint routes answer: endpoints, with the signing secret only where it is
//! revealed.

use serde::Serialize;
use utoipa::ToSchema;

use super::event::EventType;
use crate::store::webhooks::Endpoint;
use crate::vocab::string_enum;
use crate::webhooks::dispatcher::rfc3339;

string_enum!(
    /// Whether an endpoint receives deliveries.
    WebhookStatus {
        /// It receives them.
        Active = "active",
        /// Its deliveries wait until it is active again.
        Paused = "paused",
        /// Turned off by Pactum (its receiver answered 410 Gone); `PATCH` it `active` again.
        Disabled = "disabled",
    }
);

/// A webhook endpoint (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Webhook)]
pub struct WebhookView {
    /// Its id.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The agent whose events it receives.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub agent_id: String,
    /// Where deliveries go.
    #[schema(format = "uri")]
    pub url: String,
    /// A note.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Event types received (empty: all).
    #[schema(value_type = Vec<EventType>)]
    pub event_types: Vec<String>,
    /// Whether it receives deliveries.
    #[schema(value_type = WebhookStatus)]
    pub status: String,
    /// Why it is disabled.
    #[schema(required = true)]
    pub status_reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Endpoint> for WebhookView {
    fn from(endpoint: &Endpoint) -> Self {
        WebhookView {
            id: endpoint.id.clone(),
            agent_id: endpoint.agent_id.clone(),
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            event_types: endpoint.event_types.clone(),
            status: endpoint.status.clone(),
            status_reason: endpoint.status_reason.clone(),
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
        }
    }
}

/// An endpoint with its signing secret, shown once at creation and at rotation (`null` on an
/// idempotent replay).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookWithSecret {
    /// Its id.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The agent whose events it receives.
    #[schema(pattern = "^agt_[0-9A-Za-z_]+$")]
    pub agent_id: String,
    /// Where deliveries go.
    #[schema(format = "uri")]
    pub url: String,
    /// A note.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Event types received (empty: all).
    #[schema(value_type = Vec<EventType>)]
    pub event_types: Vec<String>,
    /// Whether it receives deliveries.
    #[schema(value_type = WebhookStatus)]
    pub status: String,
    /// Why it is disabled.
    #[schema(required = true)]
    pub status_reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// After a rotation: until when the previous secret also signs (RFC 3339); absent at
    /// creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<String>,
    /// The signing secret; `null` on an idempotent replay.
    #[schema(required = true)]
    pub secret: Option<String>,
}

impl WebhookWithSecret {
    /// `endpoint` with `secret` (`None` for the copy the idempotency store keeps) and, after
    /// a rotation, the previous secret's expiry.
    pub fn new(endpoint: &Endpoint, previous_until: Option<i64>, secret: Option<String>) -> Self {
        let view = WebhookView::from(endpoint);
        WebhookWithSecret {
            id: view.id,
            agent_id: view.agent_id,
            url: view.url,
            description: view.description,
            event_types: view.event_types,
            status: view.status,
            status_reason: view.status_reason,
            created_at: view.created_at,
            updated_at: view.updated_at,
            previous_secret_expires_at: previous_until.map(rfc3339),
            secret,
        }
    }
}

/// The agent's webhook endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookList {
    /// Oldest first.
    pub data: Vec<WebhookView>,
}

/// `DELETE …/webhooks/{webhook_id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeleted {
    /// The endpoint.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}
