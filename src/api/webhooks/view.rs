//! What the webhook routes answer: endpoints (with the signing secret only where it is
//! revealed), deliveries and their attempts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::{EventType, WebhookEvent};
use crate::agreement::status::{UnknownStatus, string_enum};
use crate::store::webhooks::{Attempt, Delivery, Endpoint};
use crate::webhooks::dispatcher::rfc3339;

string_enum!(
    /// Whether an endpoint receives deliveries.
    #[derive(ToSchema)]
    WebhookStatus {
        /// It receives them.
        Active = "active",
        /// Its deliveries wait until it is active again.
        Paused = "paused",
        /// Turned off by Pactum (its receiver answered 410 Gone); `PATCH` it `active` again.
        Disabled = "disabled",
    }
);

string_enum!(
    /// Where a delivery stands.
    #[derive(ToSchema)]
    DeliveryStatus {
        /// Still to be made.
        Pending = "pending",
        /// A receiver accepted it with a 2xx.
        Succeeded = "succeeded",
        /// Its schedule ran out, or its endpoint was disabled or deleted.
        Failed = "failed",
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

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    /// Its id, sent as the `webhook-id` header on every attempt and replay.
    #[schema(pattern = "^msg_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The endpoint.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub webhook_id: String,
    /// The event delivered (the payload's `id`).
    #[schema(pattern = "^evt_[0-9A-Za-z_]+$")]
    pub event_id: String,
    /// The event type.
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// Where it stands.
    #[schema(value_type = DeliveryStatus)]
    pub status: String,
    /// Attempts so far.
    #[schema(minimum = 0)]
    pub attempt_count: i64,
    /// RFC 3339; `null` when none is scheduled.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// The last HTTP status received.
    #[schema(required = true)]
    pub last_status_code: Option<i64>,
    /// The last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    #[schema(required = true)]
    pub completed_at: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(delivery: &Delivery) -> Self {
        let millis = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        };
        DeliveryView {
            id: delivery.id.clone(),
            webhook_id: delivery.endpoint_id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            status: delivery.status.clone(),
            attempt_count: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at_ms.and_then(millis),
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error.clone(),
            created_at: rfc3339(delivery.created_at),
            updated_at: rfc3339(delivery.updated_at),
            completed_at: delivery.completed_at.map(rfc3339),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The HTTP status received; `null` when none was (a connection error, a timeout).
    #[schema(required = true)]
    pub status_code: Option<i64>,
    /// What went wrong; `null` on success.
    #[schema(required = true)]
    pub error: Option<String>,
    /// How long the request took.
    pub latency_ms: i64,
    /// The response's first KiB.
    #[schema(required = true)]
    pub response_body: Option<String>,
    /// Unix milliseconds.
    pub attempted_at_ms: i64,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            attempt: a.number,
            status_code: a.status_code,
            error: a.error.clone(),
            latency_ms: a.latency_ms,
            response_body: a.response_body.clone(),
            attempted_at_ms: a.attempted_at_ms,
        }
    }
}

/// `GET …/deliveries/{delivery_id}`: a delivery with the exact body it posts and every attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDetail {
    /// Its id, sent as the `webhook-id` header on every attempt and replay.
    #[schema(pattern = "^msg_[0-9A-Za-z_]+$")]
    pub id: String,
    /// The endpoint.
    #[schema(pattern = "^whk_[0-9A-Za-z_]+$")]
    pub webhook_id: String,
    /// The event delivered (the payload's `id`).
    #[schema(pattern = "^evt_[0-9A-Za-z_]+$")]
    pub event_id: String,
    /// The event type.
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// Where it stands.
    #[schema(value_type = DeliveryStatus)]
    pub status: String,
    /// Attempts so far.
    #[schema(minimum = 0)]
    pub attempt_count: i64,
    /// RFC 3339; `null` when none is scheduled.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// The last HTTP status received.
    #[schema(required = true)]
    pub last_status_code: Option<i64>,
    /// The last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    #[schema(required = true)]
    pub completed_at: Option<String>,
    /// The exact JSON body posted.
    #[schema(required = true)]
    pub payload: Option<WebhookEvent>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

impl DeliveryDetail {
    /// `delivery` with its stored payload and its `attempts`.
    pub fn new(delivery: &Delivery, attempts: &[Attempt]) -> Self {
        let view = DeliveryView::from(delivery);
        DeliveryDetail {
            id: view.id,
            webhook_id: view.webhook_id,
            event_id: view.event_id,
            event_type: view.event_type,
            status: view.status,
            attempt_count: view.attempt_count,
            next_attempt_at: view.next_attempt_at,
            last_status_code: view.last_status_code,
            last_error: view.last_error,
            created_at: view.created_at,
            updated_at: view.updated_at,
            completed_at: view.completed_at,
            payload: serde_json::from_str(&delivery.payload).ok(),
            attempts: attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

/// Deliveries, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveryList {
    /// The deliveries.
    pub data: Vec<DeliveryView>,
}
